import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Synchronization
import Testing

@testable import SecretRotator

@Suite(.tags(.addressSanitizer)) struct RotationEngineTests {
    /// Fetch on first start, then advance to the schedule and rotate; no extra rotations.
    @Test func firstStartFetchesThenRotatesOnSchedule() async throws {
        try await withFakeEngineFixture { genauth, fixture in
            let engine = try fixture.engine()
            try await engine.start()
            let wake = await engine.runDue()
            fixture.expectInvariant()
            #expect(genauth.rotationCount(appId: GenAuthHarness.appId) == 0)
            #expect(wake == fixture.clock.now().addingTimeInterval(3_600))

            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            fixture.expectInvariant()
            #expect(genauth.rotationCount(appId: GenAuthHarness.appId) == 1)
            #expect(await engine.state(of: GenAuthHarness.appId)?.version == 2)
            // Nothing else is due: running again changes nothing.
            await engine.runDue()
            #expect(genauth.rotationCount(appId: GenAuthHarness.appId) == 1)
        }
    }

    enum Expected: Sendable { case retriedAfterBackoff, reconciledWithoutExtraRotation, longBackoff }

    static let faults: [(String, MockFault, Expected)] = [
        ("HTTP 500 with body", .httpStatus(500, jsonBody: true), .retriedAfterBackoff),
        ("HTTP 502 without body", .httpStatus(502, jsonBody: false), .retriedAfterBackoff),
        ("HTTP 503", .httpStatus(503, jsonBody: true), .retriedAfterBackoff),
        ("429 in the body", .throttledInBody, .retriedAfterBackoff),
        ("HTTP 429 with Retry-After", .throttledHTTP(retryAfterSeconds: 120), .retriedAfterBackoff),
        ("connection dropped before processing", .dropBeforeProcessing, .retriedAfterBackoff),
        ("lost response after the rotation", .dropAfterProcessing, .reconciledWithoutExtraRotation),
        ("malformed JSON after the rotation", .malformedJSON, .reconciledWithoutExtraRotation),
        ("HTML page", .htmlPage, .retriedAfterBackoff),
        ("oversize answer after the rotation", .oversizeBody(bytes: 200_000), .reconciledWithoutExtraRotation),
        ("invalid secret after the rotation", .invalidSecret, .reconciledWithoutExtraRotation),
        // The old client wrote the decoy (the first of two "secret" keys): a dead secret.
        ("secret key twice after the rotation", .duplicateSecretKey, .reconciledWithoutExtraRotation),
        ("expired token", .expiredToken, .reconciledWithoutExtraRotation),
        ("app not found (404/2011)", .businessError(statusCode: 404, apiCode: 2011, message: "app not found"), .longBackoff),
        ("forbidden (403)", .businessError(statusCode: 403, apiCode: nil, message: "forbidden"), .longBackoff),
    ]

    @Test(arguments: faults)
    func refreshFaultEndsWithDiskEqualToServer(name: String, fault: MockFault, expected: Expected) async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            fixture.expectInvariant()

            let id = GenAuthHarness.appId
            harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: id, count: 1, fault: fault))
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            let afterFault = try #require(await engine.state(of: id))

            let refreshes = { harness.state.requestLog().filter { $0.appId == id && $0.path.hasSuffix("refresh-application-secret") }.count }
            switch expected {
            case .reconciledWithoutExtraRotation:
                // The rotation happened (or the token was refetched): exactly one, and on disk
                // once reconcile has read GenAuth a settle period later.
                #expect(harness.state.rotationCount(appId: id) == 1)
                await fixture.runDaemonTime(engine, seconds: 60)
                let settled = try #require(await engine.state(of: id))
                #expect(settled.consecutiveFailures == 0 && settled.intent == nil, "\(settled)")
                #expect(harness.state.rotationCount(appId: id) == 1)
            case .retriedAfterBackoff:
                // Either refused before processing (a failure with a backoff) or an unknown
                // outcome (reconciled: two reads a settle period apart, then a retry).
                #expect(afterFault.consecutiveFailures == 1 || afterFault.intent == .refresh, "\(afterFault)")
                if case .throttledHTTP(let seconds) = fault {
                    let retry = try #require(afterFault.nextAttempt)
                    #expect(retry >= fixture.clock.now().addingTimeInterval(TimeInterval(seconds)))
                    fixture.clock.set(retry.addingTimeInterval(-1))
                    await engine.runDue()
                    #expect(refreshes() == 1, "not before Retry-After")
                }
                await fixture.runDaemonTime(engine, seconds: 300)
                #expect(harness.state.rotationCount(appId: id) == 1)
                #expect(refreshes() == 2, "one refused, one retried: no storm")
            case .longBackoff:
                #expect(afterFault.consecutiveFailures == 1)
                #expect(afterFault.nextAttempt == fixture.clock.now().addingTimeInterval(600))
                #expect(afterFault.lastError?.isEmpty == false)
                #expect(harness.state.rotationCount(appId: id) == 0)
                fixture.clock.advance(by: .seconds(599))
                await engine.runDue()
                #expect(refreshes() == 1, "no storm")
                fixture.clock.advance(by: .seconds(1))
                await engine.runDue()
                #expect(harness.state.rotationCount(appId: id) == 1)
            }
            fixture.expectInvariant()
        }
    }

    @Test func badCredentialsBackOffWithoutALoop() async throws {
        try await withEngineFixture(accessKeySecret: "wrong-access-key-secret") { harness, fixture in
            let engine = try await fixture.startedEngine()
            let state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.consecutiveFailures == 1)
            #expect(state.nextAttempt == fixture.clock.now().addingTimeInterval(600))
            await engine.runDue()
            let tokenRequests = harness.state.requestLog().filter { $0.path.hasSuffix("get-management-token") }.count
            #expect(tokenRequests <= 2, "one token attempt per app, no loop: \(tokenRequests)")
            #expect(fixture.outputSecret(0) == nil)
        }
    }

    /// Crash after the new secret was journalled but before the outputs were written: the next
    /// start finishes from the journal and does not rotate again.
    @Test func pendingSecretIsFinishedAfterRestartWithoutRefresh() async throws {
        try await withFakeEngineFixture { genauth, fixture in
            let first = try await fixture.startedEngine()
            let id = GenAuthHarness.appId
            let rotated = try await genauth.refreshApplicationSecret(appId: id)
            let store = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            var state = try #require(await first.state(of: id))
            state.intent = .refresh
            try store.saveState(state)
            try store.saveSecret(CurrentSecret(appID: id, version: state.version + 1, obtainedAt: fixture.clock.now(), secret: rotated))

            let second = try await fixture.startedEngine()
            fixture.expectInvariant()
            #expect(genauth.rotationCount(appId: id) == 1)
            #expect(await second.state(of: id)?.version == 2)
        }
    }

    /// Crash after the refresh was sent but before the answer was journalled: reconcile.
    @Test func intentWithoutSecretIsReconciledAfterRestart() async throws {
        try await withFakeEngineFixture { genauth, fixture in
            let first = try await fixture.startedEngine()
            let id = GenAuthHarness.appId
            let store = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            var state = try #require(await first.state(of: id))
            state.intent = .refresh
            try store.saveState(state)
            _ = try await genauth.refreshApplicationSecret(appId: id)

            let second = try await fixture.startedEngine()
            fixture.expectInvariant()
            #expect(genauth.rotationCount(appId: id) == 1)

            // And when the refresh had not happened, reconcile retries it later, once.
            state = try #require(await second.state(of: id))
            state.intent = .refresh
            try store.saveState(state)
            let third = try await fixture.startedEngine()
            #expect(genauth.rotationCount(appId: id) == 1)
            let retry = try #require(await third.state(of: id)?.nextAttempt)
            fixture.clock.set(retry)
            await third.runDue()
            #expect(genauth.rotationCount(appId: id) == 2)
            fixture.expectInvariant()
        }
    }

    @Test func failingHookIsRetriedWithoutANewRotation() async throws {
        let hooks = RecordingHookRunner(failures: 2)
        try await withFakeEngineFixture(hooks: hooks) { genauth, fixture in
            let engine = try await fixture.startedEngine(hook: ["/bin/true"])
            let id = GenAuthHarness.appId
            for _ in 0..<4 {
                if let retry = await engine.state(of: id)?.nextAttempt { fixture.clock.set(max(retry, fixture.clock.now())) }
                await engine.runDue()
            }
            let state = try #require(await engine.state(of: id))
            #expect(state.hookDoneVersion == state.version)
            #expect(genauth.rotationCount(appId: id) == 0)
            let forApp = hooks.invocations.filter { $0.environment["ROTATOR_APP_ID"] == id }
            #expect(forApp.count >= 2)
            #expect(forApp.allSatisfy { $0.environment["ROTATOR_VERSION"] == "1" })
            #expect(forApp.allSatisfy { invocation in !invocation.environment.values.contains { $0.contains(genauth.currentSecret(appId: id) ?? "?") } })
            fixture.expectInvariant()
        }
    }

    /// A corrupt JSON record of the file-based store is moved to `corrupt/` by the import.
    @Test func corruptStateIsMovedAsideAndReported() async throws {
        try await withFakeEngineFixture { _, fixture in
            let store = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            let id = GenAuthHarness.appId
            try FileManager.default.createDirectory(atPath: store.path + "/apps", withIntermediateDirectories: true)
            try Data("{ not json".utf8).write(to: URL(fileURLWithPath: store.statePath(id)))
            let engine = try fixture.engine()
            try await engine.start()
            let corrupt = try FileManager.default.contentsOfDirectory(atPath: fixture.directory.appendingPathComponent("state/corrupt").path)
            #expect(corrupt.count == 1)
            #expect(corrupt.first?.hasPrefix("\(StateDirectory.fileName(for: id)).json.") == true)
            #expect(fixture.capture.contains(event: "state_corrupt"))
            await engine.runDue()
            fixture.expectInvariant()
        }
    }

    /// An undecodable row is moved to `corrupt_record`; the app starts over. A version of 'x'
    /// once read as 0 through a cursor's type coercion, unreported.
    @Test(arguments: ["intent = 'sideways'", "version = 'x'", "appID = 7"])
    func corruptRowIsMovedAsideAndReported(_ damage: String) async throws {
        try await withFakeEngineFixture { _, fixture in
            let store = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            try store.prepare()
            let id = GenAuthHarness.appId
            try store.saveState(AppState(appID: id))
            if damage.hasPrefix("appID") {
                // A key of another type is skipped, never trapped on; the app starts over.
                try StateTampering.execute(store, "UPDATE app_state SET \(damage) WHERE appID = ?", [id])
                _ = try await fixture.startedEngine()
                fixture.expectInvariant()
                return
            }
            try StateTampering.execute(store, "UPDATE app_state SET \(damage) WHERE appID = ?", [id])
            let engine = try fixture.engine()
            try await engine.start()
            #expect(try StateTampering.count(store, "SELECT COUNT(*) FROM corrupt_record WHERE appID = '\(id)'") == 1)
            #expect(try StateTampering.count(store, "SELECT COUNT(*) FROM app_state WHERE appID = '\(id)'") == 0)
            #expect(fixture.capture.contains(event: "state_corrupt"))
            await engine.runDue()
            fixture.expectInvariant()
        }
    }

    /// A state database SQLite cannot read is moved to `corrupt/` with its WAL; a new one starts.
    @Test func corruptDatabaseIsMovedAsideAndReported() async throws {
        try await withFakeEngineFixture { _, fixture in
            let store = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            try FileManager.default.createDirectory(atPath: store.path, withIntermediateDirectories: true)
            try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: store.databasePath))
            let engine = try fixture.engine()
            try await engine.start()
            let corrupt = try FileManager.default.contentsOfDirectory(atPath: store.path + "/corrupt")
            #expect(corrupt.contains { $0.hasPrefix("state.sqlite.") }, "\(corrupt)")
            #expect(fixture.capture.contains(event: "state_corrupt"))
            await engine.runDue()
            fixture.expectInvariant()
        }
    }

    /// Reconcile needs get-application-secret; when that is forbidden the engine falls back to
    /// a fresh refresh (and says so) rather than leaving the outputs on a dead secret.
    @Test func forbiddenReconcileFallsBackToAFreshRefresh() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            let id = GenAuthHarness.appId
            harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: id, count: 1, fault: .dropAfterProcessing))
            harness.state.inject(
                MockFaultRule(
                    endpoint: .getApplicationSecret, appId: id, count: 1,
                    fault: .businessError(statusCode: 403, apiCode: nil, message: "no permission")))
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            // The read comes a settle period after the lost refresh, never earlier.
            #expect(harness.state.rotationCount(appId: id) == 1)
            fixture.clock.advance(by: .seconds(RotationPlanner.seconds(EnginePolicy(config: fixture.config()).settlePeriod)))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 2)
            // The line has no event of its own (its fields are the GenAuth error's): its text is the fact.
            #expect(harness.capture.renderedText.contains { $0.contains("falling back to a fresh refresh") })
            fixture.expectInvariant()
        }
    }

    /// A follower never refreshes; it writes (and runs its hook) only when the secret changed.
    @Test func followerWritesOnlyWhenTheSecretChanged() async throws {
        let hooks = RecordingHookRunner()
        try await withFakeEngineFixture(hooks: hooks) { genauth, fixture in
            let engine = try await fixture.startedEngine(hook: ["/bin/true"], action: .follow)
            let id = GenAuthHarness.appId
            fixture.expectInvariant()
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(await engine.state(of: id)?.version == 1)
            #expect(hooks.invocations.filter { $0.environment["ROTATOR_APP_ID"] == id }.count == 1)

            _ = try await genauth.refreshApplicationSecret(appId: id)
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(await engine.state(of: id)?.version == 2)
            #expect(hooks.invocations.filter { $0.environment["ROTATOR_APP_ID"] == id }.count == 2)
            #expect(genauth.rotationCount(appId: id) == 1, "only the test rotated")
            fixture.expectInvariant()
        }
    }

    /// The due-date index is rebuilt before stale entries pile up: every 5-minute re-check
    /// plans each app again, and far-off rotation dates would otherwise stay in the heap.
    @Test func dueOrderStaysBoundedAcrossRepeatedReChecks() async throws {
        try await withFakeEngineFixture { _, fixture in
            let engine = try await fixture.startedEngine()
            for _ in 0..<2_000 {
                await engine.checkOutputs()
                _ = await engine.nextWake()
            }
            let count = await engine.dueOrderCount
            #expect(count <= 2 * 2 + 64 + 1, "\(count) entries for 2 apps")
            #expect(await engine.nextWake() == fixture.clock.now(), "the re-check is due at once")
        }
    }

    /// Found by the benchmark helper: after an operator's `rotate` failed (GenAuth refusing
    /// connections), the request stayed asked for and ran again at once, thousands of times a
    /// second, although the log named the next attempt. A request now waits for the backoff
    /// like every other step; only its one override skips it.
    @Test func failedOperatorRequestWaitsForTheBackoff() async throws {
        try await withFakeEngineFixture { genauth, fixture in
            let engine = try await fixture.startedEngine()
            let id = GenAuthHarness.appId
            let refreshes = { genauth.calls(.refresh, appId: id) }
            genauth.failNext(100, .refresh, appId: id, httpStatus: 503)

            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue(maxStepsPerApp: 8)
            #expect(refreshes() == 1, "a failed request was retried before its backoff")
            let failed = try #require(await engine.state(of: id))
            let retry = try #require(failed.nextAttempt)
            #expect(failed.consecutiveFailures == 1 && retry > fixture.clock.now())
            #expect(await engine.startDue() == retry)

            // Still asked for: it runs again once the backoff allows, once.
            fixture.clock.set(retry)
            await engine.runDue(maxStepsPerApp: 8)
            #expect(refreshes() == 2)
            // A second operator request overrides the pending backoff once, and only once.
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue(maxStepsPerApp: 8)
            #expect(refreshes() == 3)
        }
    }

    /// An operator's rotation whose hook then fails is not rotated again: the new version is
    /// written, only the hook is retried (two refreshes were once sent for one `rotate`).
    @Test func answeredRequestIsNotRepeatedWhenItsHookFails() async throws {
        try await withFakeEngineFixture { genauth, fixture in
            let engine = try await fixture.startedEngine(hook: ["/bin/true"])
            let id = GenAuthHarness.appId
            fixture.hooks.failNext(1)
            let hooksBefore = fixture.hooks.invocations.count
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue(maxStepsPerApp: 8)
            for _ in 0..<6 {
                fixture.clock.advance(by: .seconds(120))  // past every backoff, not the 1 h interval
                await engine.runDue(maxStepsPerApp: 8)
            }
            #expect(genauth.rotationCount(appId: id) == 1, "one rotate, one refresh")
            #expect(await engine.state(of: id)?.version == 2)
            #expect(fixture.hooks.invocations.count > hooksBefore)
        }
    }

    /// `rotate` on an app that was never fetched: the first fetch runs first, and the request
    /// survives it, so the operator still gets a rotation.
    @Test func operatorRotateOnAFreshAppFetchesThenRotates() async throws {
        try await withFakeEngineFixture { genauth, fixture in
            let engine = try fixture.engine()
            try await engine.start()
            let id = GenAuthHarness.appId
            #expect(await engine.request(.refresh, forApp: "app0"))
            #expect(await engine.settle(appID: id))
            #expect(genauth.rotationCount(appId: id) == 1)
            #expect(await engine.state(of: id)?.version == 2)
            #expect(await engine.request(.refresh, forApp: "no-such-app") == false)
        }
    }
}
