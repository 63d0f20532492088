import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// What an app keeps and loses across a reload, a journal failure and GenAuth's recovery:
/// a fleet hand-over survives a remove and re-add, an operator's rotate survives a refresh
/// whose intent could not be recorded but not the app's removal, and other apps' recovery
/// waits until the answered secret is durable.
@Suite struct EngineContinuityTests {
    let id = GenAuthHarness.appId

    /// Fleet hand-over (exactly one rotator): another leader's refresh may still land until a
    /// settle period after its intent, so the new leader must not rotate before. A remove and
    /// re-add (an apps.d file being edited, two SIGHUPs) inside the settle period must not
    /// forget the hand-over, or the old leader's late refresh lands as a second rotation and
    /// the fleet holds a dead secret.
    @Test func handOverSurvivesARemoveAndReAddWithinItsSettlePeriod() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await FleetEngineTests.started(fixture)
            fixture.clock.advance(by: .seconds(3_600))  // due now
            let intentAt = fixture.clock.now()
            await engine.leadershipChanged(leading: true, intents: [id: intentAt])
            fixture.clock.advance(by: .seconds(1))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 0, "no refresh within the settle period")
            // A reload drops the app, the next brings it back (still inside the settle period).
            let config = fixture.config()
            var reduced = config
            reduced.apps.removeAll { $0.id == id }
            await engine.apply(reduced)
            await engine.apply(config)
            fixture.clock.advance(by: .seconds(1))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 0, "rotated inside the old leader's settle period after a re-add")
            // The old leader's request lands now, late.
            _ = try await harness.client.refreshApplicationSecret(appId: id)
            fixture.clock.set(
                intentAt.addingTimeInterval(RotationPlanner.seconds(EnginePolicy.settlePeriod(requestTimeout: .seconds(5))) + 1))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 1, "two rotations in one hand-over")
            fixture.expectInvariant()
        }
    }

    /// An operator's rotate that failed before it was answered stays asked for, also when the
    /// failure was the refresh's own intent not being recorded (a journal failure: the intent
    /// never reached `rotationOwed`) while a hook of the current version is owed; the CLI's
    /// reading of the same records would take that failure for the hook's retry.
    @Test func rotateRequestIsKeptWhenItsIntentCannotBeRecordedWhileAHookIsOwed() {
        let start = Date(timeIntervalSince1970: 1_900_000_000)
        var before = AppState(appID: "app")
        before.version = 1
        before.secretFingerprint = "fp"
        before.hookDoneVersion = 0  // the hook of version 1 failed: owed
        before.consecutiveFailures = 1
        before.nextAttempt = start.addingTimeInterval(2)
        before.lastFailureKind = .local
        var after = before  // journalFailed on `refreshStarting`: the old state, one more failure
        after.consecutiveFailures = 2
        after.nextAttempt = start.addingTimeInterval(4)
        var runtime = AppRuntime(heldVersion: 1)
        runtime.request = .refresh
        let plan = AppDecisions.Plan(.refresh, isRequest: true)
        AppDecisions.stepStarting(plan, runtime: &runtime)
        AppDecisions.stepFinished(plan, startedAt: start, before: before, after: after, runtime: &runtime)
        #expect(runtime.request == .refresh, "the operator's rotate was lost")
    }

    /// The same through the engine: a full state directory refuses the refresh's intent while
    /// the hook of the current version is owed; once space is back and the backoff is over, the
    /// operator's rotate runs instead of being forgotten.
    @Test func rotateRequestRunsAfterAJournalFailureWhileAHookIsOwed() async throws {
        let hooks = RecordingHookRunner(failures: 2)  // both apps' first hooks fail
        try await withEngineFixture(hooks: hooks) { harness, fixture in
            let stateDirectory = fixture.directory.appendingPathComponent("state").path
            try await TestMount.withTmpfs(at: stateDirectory) {
                let engine = try fixture.engine(hook: ["/bin/true"])
                try await engine.start()
                await engine.runDue()
                let owed = try #require(await engine.state(of: id))
                try #require(owed.version == 1 && owed.hookDoneVersion == 0 && owed.consecutiveFailures == 1)
                let filler = TestMount.fill(stateDirectory)
                #expect(await engine.request(.refresh, forApp: id))
                await engine.runDue(maxStepsPerApp: 1)
                unlink(filler)
                #expect(fixture.refreshRequests(id) == 0, "the intent was not durable, nothing was sent")
                #expect((await engine.state(of: id))?.consecutiveFailures == 2)
                fixture.clock.advance(by: .seconds(30))  // past the backoff, far from the interval
                await engine.runDue()
                #expect(fixture.refreshRequests(id) == 1, "the operator's rotate was forgotten after the journal failure")
            }
        }
    }

    /// A rotate asked for just before the app's removal (while a step of it ran) must not fire
    /// when the app is re-added, possibly much later: an unrequested outage for its consumers.
    @Test func removedWhileRunningDoesNotKeepAStaleRotateRequest() async throws {
        let hooks = GatedHookRunner(blockedApp: id)
        try await withGenAuthHarness { harness in
            let fixture = try EngineFixture(harness: harness)
            defer { fixture.cleanUp() }
            let config = fixture.config(hook: ["/bin/true"])
            let engine = fixture.engine(config: config, hooks: hooks, realClock: true)
            try await engine.start()
            let pass = Task { await engine.runDue() }
            #expect((try? await waitUntil { hooks.isBlocked }) != nil, "app0's hook runs")
            #expect(await engine.request(.refresh, forApp: id))
            var reduced = config
            reduced.apps.removeAll { $0.id == id }
            await engine.apply(reduced)
            hooks.release()
            _ = await pass.value
            // Re-added later: it resumes from its records, with no operator request pending.
            await engine.apply(config)
            await engine.runDue()
            #expect(fixture.refreshRequests(id) == 0, "a request made before the removal rotated the re-added app")
        }
    }

    /// A received secret is durable before anything else happens, and the exposure window stays
    /// short: the first refresh answered after an outage does not wait, with the old secret
    /// already dead, for the commit of every app in a transient backoff (O(N) states) before
    /// its own secret is kept and written. Observed by the order of the two journal events.
    @Test func recoveryBookkeepingWaitsForTheAnsweredSecret() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try fixture.engine()
            try await engine.start()
            await engine.runDue()
            // app1's read fails transiently: GenAuth counts as failing, app1 waits on a backoff.
            harness.state.inject(
                MockFaultRule(
                    endpoint: .getApplicationSecret, appId: GenAuthHarness.otherAppId, count: 100_000,
                    fault: .httpStatus(503, jsonBody: true)))
            #expect(await engine.request(.fetch, forApp: GenAuthHarness.otherAppId))
            await engine.runDue()
            // A second failure: a backoff longer than the first step, which a recovery cuts short.
            fixture.clock.advance(by: .seconds(10))
            await engine.runDue()
            let waiting = try #require(await engine.state(of: GenAuthHarness.otherAppId))
            try #require(waiting.consecutiveFailures > 1 && waiting.lastFailureKind == .transient, "\(waiting)")
            try #require((waiting.nextAttempt?.timeIntervalSince(fixture.clock.now()) ?? 0) > 2, "\(waiting)")
            // app0's rotation is GenAuth's first answer since.
            #expect(await engine.request(.refresh, forApp: id))
            await engine.runDue(maxStepsPerApp: 1)
            #expect(harness.state.rotationCount(appId: id) == 1)
            let entries = fixture.capture.entries
            let rotated = try #require(entries.firstIndex { $0.metadata["event"]?.description == "rotated" })
            let recovered = try #require(entries.firstIndex { $0.metadata["event"]?.description == "genauth_recovered" })
            #expect(rotated < recovered, "other apps' recovery was committed before the answered secret was durable")
        }
    }
}
