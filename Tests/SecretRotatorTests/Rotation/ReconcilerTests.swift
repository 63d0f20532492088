import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Synchronization
import Testing

@testable import SecretRotator

/// Engine v2's promises, each a reported fault turned into a test (see the Architecture article):
/// one backoff for every step, level-triggered outputs, schedule semantics, durable first,
/// GenAuth's current secret wins, continuous scheduling.
@Suite(.tags(.addressSanitizer)) struct ReconcilerTests {
    static let app0 = GenAuthHarness.appId
    static let app1 = GenAuthHarness.otherAppId

    func runDaemonTime(_ engine: RotationEngine, _ fixture: EngineFixture, seconds span: TimeInterval) async {
        await fixture.runDaemonTime(engine, seconds: span)
    }

    /// Runs the daemon's scheduling (`startDue`, nothing waits for a batch) on the real clock
    /// until `condition` holds; false after 10 s.
    func scheduleOnTheRealClock(_ engine: RotationEngine, until condition: () async -> Bool) async -> Bool {
        (try? await waitUntil(deadline: .seconds(10)) {
            await engine.startDue()
            return await condition()
        }) != nil
    }

    func requests(_ harness: GenAuthHarness, app: String, since sequence: Int = -1) -> [MockRequestRecord] {
        harness.state.requestLog().filter { $0.appId == app && $0.sequence > sequence }
    }

    func lastSequence(_ harness: GenAuthHarness) -> Int { harness.state.requestLog().map(\.sequence).max() ?? -1 }

    // MARK: - One backoff (fault 2)

    /// An output replaced by a directory: repair attempts follow the backoff, not a hot loop.
    @Test func outputReplacedByADirectoryIsRetriedOnTheBackoffOnly() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            fixture.expectInvariant()
            let output = fixture.directory.appendingPathComponent("drop/app0").path
            try FileManager.default.removeItem(atPath: output)
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
            await engine.checkOutputs()
            await runDaemonTime(engine, fixture, seconds: 20)
            // retry.initial = 2 s: at most ⌈log2(20 s / 2 s)⌉ + 2 = 6 attempts in 20 s.
            let attempts = harness.capture.events("output_write_failed").filter { $0.metadata["app_name"] == "app0" }.count
            #expect(attempts >= 2, "the repair was retried at all: \(attempts)")
            #expect(attempts <= 6, "attempts in 20 s: \(attempts)")
            #expect(await engine.state(of: Self.app0)?.consecutiveFailures == attempts)
            // Once the directory is gone, the output is repaired from the held secret.
            try FileManager.default.removeItem(atPath: output)
            let retry = try #require(await engine.state(of: Self.app0)?.nextAttempt)
            fixture.clock.set(retry)
            await engine.runDue()
            fixture.expectInvariant()
        }
    }

    /// After an unknown outcome, reconcile waits out a 429's Retry-After, and a 503 backs off.
    @Test func reconcileHonoursRetryAfterAndBacksOff() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: Self.app0, count: 1, fault: .dropAfterProcessing))
            harness.state.inject(MockFaultRule(endpoint: .getApplicationSecret, appId: Self.app0, count: 1, fault: .throttledHTTP(retryAfterSeconds: 30)))
            harness.state.inject(MockFaultRule(endpoint: .getApplicationSecret, appId: Self.app0, count: 1, fault: .httpStatus(503, jsonBody: false)))
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(await engine.state(of: Self.app0)?.intent == .refresh)
            let settle = RotationPlanner.seconds(EnginePolicy(config: fixture.config()).settlePeriod)
            fixture.clock.advance(by: .seconds(settle))
            let before429 = lastSequence(harness)
            await engine.runDue()
            #expect(requests(harness, app: Self.app0, since: before429).map(\.fault) == ["throttled-http"])
            let throttled = try #require(await engine.state(of: Self.app0)?.nextAttempt)
            #expect(throttled >= fixture.clock.now().addingTimeInterval(30))
            fixture.clock.set(throttled.addingTimeInterval(-1))
            await engine.runDue()
            #expect(requests(harness, app: Self.app0, since: before429).count == 1, "no read before Retry-After")
            fixture.clock.set(throttled)
            await engine.runDue()
            #expect(requests(harness, app: Self.app0, since: before429).count == 2)
            let afterUnavailable = try #require(await engine.state(of: Self.app0))
            #expect(afterUnavailable.consecutiveFailures == 2)
            await engine.runDue()
            #expect(requests(harness, app: Self.app0, since: before429).count == 2, "a 503 backs off too")
            fixture.clock.set(try #require(afterUnavailable.nextAttempt))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: Self.app0) == 1)
            fixture.expectInvariant()
        }
    }

    // MARK: - Level-triggered outputs (fault 3)

    @Test func deletedOutputIsRestoredOnReloadWithoutCallingGenAuth() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            let mark = lastSequence(harness)
            try FileManager.default.removeItem(at: fixture.directory.appendingPathComponent("drop/app0"))
            await engine.apply(fixture.config())  // what SIGHUP does
            await engine.runDue()
            fixture.expectInvariant()
            #expect(requests(harness, app: Self.app0, since: mark).isEmpty)
            let state = try #require(await engine.state(of: Self.app0))
            #expect(state.lastRepair?.causes == ["missing"])
            #expect(await engine.status().apps[0].lastRepair?.causes == ["missing"])
            #expect(harness.capture.events("output_drift").filter { $0.metadata["cause"] == "missing" }.count == 1)
        }
    }

    @Test func outputAddedByReloadAndChangedModeAreAppliedAtOnce() async throws {
        let hooks = RecordingHookRunner()
        try await withEngineFixture(hooks: hooks) { harness, fixture in
            let engine = try await fixture.startedEngine(hook: ["/bin/true"])
            let hookRuns = hooks.invocations.count
            let mark = lastSequence(harness)
            var config = fixture.config(hook: ["/bin/true"])
            let added = fixture.directory.appendingPathComponent("drop/app0.json").path
            config.apps[0].outputs.append(
                OutputConfig(
                    path: added, format: .json, envKey: nil, templatePath: nil, mode: FileMode(rawValue: 0o600), owner: nil,
                    group: nil, trailingNewline: true, allowWorldReadable: false, allowUnsafeDirectory: false,
                    inDropDirectory: true))
            config.apps[1].outputs[0].mode = FileMode(rawValue: 0o640)
            await engine.apply(config)
            await engine.runDue()
            #expect(requests(harness, app: Self.app0, since: mark).isEmpty && requests(harness, app: Self.app1, since: mark).isEmpty)
            let json = try String(contentsOfFile: added, encoding: .utf8)
            #expect(json.contains(try #require(harness.state.currentSecret(appId: Self.app0))))
            let mode = try FileManager.default.attributesOfItem(atPath: fixture.directory.appendingPathComponent("drop/app1").path)[.posixPermissions] as? Int
            #expect(mode == 0o640)
            #expect(await engine.state(of: Self.app1)?.lastRepair?.causes.first?.hasPrefix("mode") == true)
            // The new file changed what a consumer can read (hook); a mode change did not.
            #expect(hooks.invocations.count == hookRuns + 1)
            #expect(hooks.invocations.last?.environment["ROTATOR_APP_ID"] == Self.app0)
            fixture.expectInvariant()
        }
    }

    @Test func overwrittenOutputIsRepairedByFetch() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            try Data("stale-or-tampered\n".utf8).write(to: fixture.directory.appendingPathComponent("drop/app1"))
            #expect(await engine.request(.fetch, forApp: "app1"))
            #expect(await engine.settle(appID: Self.app1))
            fixture.expectInvariant()
            #expect(await engine.state(of: Self.app1)?.lastRepair?.causes == ["content"])
            #expect(harness.state.rotationCount(appId: Self.app1) == 0)
        }
    }

    // MARK: - Schedule semantics (fault 4)

    /// `fetch` every 3 s does not stop a rotation due every 8 s.
    @Test func frequentFetchesDoNotPostponeRotation() async throws {
        try await withEngineFixture { harness, fixture in
            var config = fixture.config()
            config.apps = config.apps.map { app in
                var app = app
                app.interval = .seconds(8)
                return app
            }
            config.defaults.verifyInterval = .zero
            let engine = try await fixture.startedEngine(config: config, seed: 3)
            let start = fixture.clock.now()
            for second in 1...40 {
                fixture.clock.set(start.addingTimeInterval(TimeInterval(second)))
                if second % 3 == 0 { _ = await engine.request(.fetch, forApp: "app0") }
                await engine.runDue()
            }
            #expect(harness.state.rotationCount(appId: Self.app0) == 5, "rotations at 8, 16, 24, 32 and 40 s")
            #expect(harness.state.rotationCount(appId: Self.app1) == 5)
            let state = try #require(await engine.state(of: Self.app0))
            #expect(state.secretObtainedAt == start.addingTimeInterval(40))
            #expect(state.lastChecked == start.addingTimeInterval(40))
            fixture.expectInvariant()
        }
    }

    // MARK: - GenAuth's current secret wins (fault 7)

    /// The mock applies the refresh after the client gave up: the engine waits a settle period,
    /// finds the new secret, and never refreshes a second time; meanwhile the output kept the
    /// old secret (no second dead one was written).
    @Test func timeoutAfterSendIsReconciledWithOneRotation() async throws {
        try await withEngineFixture(requestTimeout: .seconds(1)) { harness, fixture in
            var config = fixture.config()
            config.genauth.requestTimeout = .seconds(1)
            config.defaults.verifyInterval = .seconds(600)
            let engine = try await fixture.startedEngine(config: config, seed: 5)
            let original = try #require(fixture.outputSecret(0))
            harness.state.inject(
                // 5 s: the checks below must run before the mock applies it, also under
                // AddressSanitizer on a loaded machine (2.5 s was once not enough there).
                MockFaultRule(endpoint: .refreshApplicationSecret, appId: Self.app0, count: 1, fault: .delay(milliseconds: 5_000)))
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(await engine.state(of: Self.app0)?.intent == .refresh, "outcome unknown after the client's deadline")
            #expect(harness.state.rotationCount(appId: Self.app0) == 0, "not yet applied by the server")
            // An early read would see the old secret: the engine does not take one.
            await engine.runDue()
            #expect(fixture.outputSecret(0) == original)
            try await waitUntil { harness.state.rotationCount(appId: Self.app0) == 1 }
            fixture.clock.advance(by: .seconds(RotationPlanner.seconds(EnginePolicy(config: config).settlePeriod)))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: Self.app0) == 1, "no second refresh")
            #expect(await engine.state(of: Self.app0)?.version == 2)
            fixture.expectInvariant()

            // An out-of-band rotation (the console, another tool) is adopted within one verify_interval.
            _ = try await harness.client.refreshApplicationSecret(appId: Self.app0)
            fixture.clock.advance(by: .seconds(RotationPlanner.seconds(config.defaults.verifyInterval)))
            await engine.runDue()
            fixture.expectInvariant()
            #expect(harness.capture.contains(event: "changed_upstream"))
        }
    }

    /// The old secret found twice, a settle period apart: the refresh did not happen.
    @Test func refreshThatNeverLandedIsRetriedAfterAConfirmingRead() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine()
            harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: Self.app0, count: 1, fault: .dropBeforeProcessing))
            fixture.clock.advance(by: .seconds(3_600))
            // dropBeforeProcessing is "not sent" for the client, so force an unknown outcome instead:
            // an intent left by a crash right after sending.
            var state = try #require(await engine.state(of: Self.app0))
            state.intent = .refresh
            state.intentStartedAt = fixture.clock.now()
            try StateDirectory(path: fixture.config().defaults.stateDirectory).saveState(state)
            harness.state.clearFaults()
            let restarted = try fixture.engine()
            try await restarted.start()
            let mark = lastSequence(harness)
            await runDaemonTime(restarted, fixture, seconds: 14)
            #expect(requests(harness, app: Self.app0, since: mark).isEmpty, "no read within the settle period")
            await runDaemonTime(restarted, fixture, seconds: 16)
            #expect(requests(harness, app: Self.app0, since: mark).count == 2, "one read, one confirming read")
            #expect(harness.state.rotationCount(appId: Self.app0) == 0)
            let retry = try #require(await restarted.state(of: Self.app0)?.nextAttempt)
            fixture.clock.set(retry)
            await restarted.runDue()
            #expect(harness.state.rotationCount(appId: Self.app0) == 1)
            fixture.expectInvariant()
        }
    }

    // MARK: - Continuous scheduling (fault 8)

    /// A hook that sleeps does not hold back another app's step: app1's requested rotation
    /// completes while app0's hook is still running.
    @Test func slowHookDoesNotDelayAnotherApp() async throws {
        let hooks = GatedHookRunner(blockedApp: GenAuthHarness.appId)
        try await withEngineFixture { harness, fixture in
            var config = fixture.config(hook: ["/bin/true"])
            config.apps[1].onRotate = nil
            let engine = fixture.engine(config: config, hooks: hooks, realClock: true)
            try await engine.start()
            await engine.startDue()
            try await waitUntil { hooks.isBlocked }
            // app0 is inside its hook; app1 has finished its first fetch. Ask app1 to rotate.
            try await waitUntil { harness.state.requestLog().contains { $0.appId == Self.app1 } }
            _ = await engine.request(.refresh, forApp: "app1")
            let rotated = await scheduleOnTheRealClock(engine) { await engine.state(of: Self.app1)?.version == 2 }
            #expect(rotated)
            #expect(hooks.isBlocked, "app1 rotated while app0's hook was still running")
            hooks.release()
            await engine.drain()
            #expect(await engine.state(of: Self.app0)?.hookDoneVersion == 1)
        }
    }

    // MARK: - Durable first (fault 5)

    /// The state directory on a full tmpfs: no refresh is sent (its intent cannot be made
    /// durable), the failure names ENOSPC, and after space returns exactly one rotation.
    @Test func fullStateDirectoryFailsTheStepAndConvergesWithOneRotation() async throws {
        try await withEngineFixture { harness, fixture in
            let state = fixture.directory.appendingPathComponent("state").path
            try await TestMount.withTmpfs(at: state) {
                let engine = try await fixture.startedEngine()
                fixture.expectInvariant()
                // Fill every block.
                let filler = TestMount.fill(state)
                fixture.clock.advance(by: .seconds(3_600))
                await engine.runDue()
                let failing = try #require(await engine.state(of: Self.app0))
                #expect(failing.consecutiveFailures == 1)
                #expect(failing.lastError?.contains("ENOSPC") == true, "\(failing.lastError ?? "")")
                #expect(harness.state.rotationCount(appId: Self.app0) == 0, "no refresh without a durable intent")
                #expect(StatusReport.read(config: fixture.config(), stateDirectory: StateDirectory(path: state), now: fixture.clock.now()).needsAttention)
                unlink(filler)
                fixture.clock.set(try #require(failing.nextAttempt))
                await engine.runDue()
                #expect(harness.state.rotationCount(appId: Self.app0) == 1)
                fixture.expectInvariant()
            }
        }
    }
}

extension ReconcilerTests {
    /// A hook that always fails must never stop rotations: the due rotation goes first, and an
    /// operator's rotate overtakes the owed hook.
    @Test func failingHookDoesNotStopRotations() async throws {
        let hooks = RecordingHookRunner(failures: 1_000)
        try await withEngineFixture(hooks: hooks) { harness, fixture in
            let engine = try await fixture.startedEngine(hook: ["/bin/false"])
            #expect(await engine.state(of: Self.app0)?.hookDoneVersion == 0)
            // Due at 1 h; the hook's backoff (at most retry.max = 10 min) may hold it that long.
            await fixture.runDaemonTime(engine, seconds: 3_600 + 600)
            #expect(harness.state.rotationCount(appId: Self.app0) == 1, "the scheduled rotation happened despite the hook")
            #expect(await engine.request(.refresh, forApp: "app0"))
            #expect(await engine.settle(appID: Self.app0) == false, "the hook still fails")
            #expect(harness.state.rotationCount(appId: Self.app0) == 2, "the operator's rotate ran before the owed hook")
            fixture.expectInvariant()
        }
    }

    /// Hooks do not hold a `max_concurrent` slot: with one slot and app0 inside its hook, app1's
    /// requested rotation still runs.
    @Test func hooksDoNotOccupyConcurrencySlots() async throws {
        let hooks = GatedHookRunner(blockedApp: GenAuthHarness.appId)
        try await withEngineFixture { harness, fixture in
            var config = fixture.config(hook: ["/bin/true"])
            config.defaults.maxConcurrent = 1
            config.apps[1].onRotate = nil
            let engine = fixture.engine(config: config, hooks: hooks, realClock: true)
            try await engine.start()
            await engine.startDue()
            try await waitUntil { hooks.isBlocked }
            _ = await engine.request(.refresh, forApp: "app1")
            let rotated = await scheduleOnTheRealClock(engine) { await engine.state(of: Self.app1)?.version == 2 }
            #expect(rotated && hooks.isBlocked, "app1 rotated while app0's hook held the only slot's app")
            hooks.release()
            await engine.drain()
        }
    }

    /// A secret adopted while the state directory is full is on the outputs but not in the
    /// record: a repair must compare with it, never write the older (dead) record back.
    @Test func repairNeverWritesBackAnOlderSecretThanTheUnsavedOne() async throws {
        try await withEngineFixture { harness, fixture in
            let state = fixture.directory.appendingPathComponent("state").path
            try await TestMount.withTmpfs(at: state) {
                let engine = try await fixture.startedEngine(action: .follow)
                fixture.expectInvariant()
                let filler = TestMount.fill(state)
                _ = try await harness.client.refreshApplicationSecret(appId: Self.app0)
                fixture.clock.advance(by: .seconds(3_600))
                await engine.runDue()
                let current = harness.state.currentSecret(appId: Self.app0)
                #expect(fixture.outputSecret(0) == current, "the follower wrote the new secret although it could not record it")
                await engine.checkOutputs()
                await fixture.runDaemonTime(engine, seconds: 120)
                #expect(fixture.outputSecret(0) == current, "a repair wrote the older, dead secret back")
                unlink(filler)
                await fixture.runDaemonTime(engine, seconds: 1_200)
                fixture.expectInvariant()
            }
        }
    }
}

/// Blocks one app's hook until the test releases it.
final class GatedHookRunner: HookRunning {
    private let blockedApp: String
    private let state = Mutex<(blocked: Bool, released: Bool)>((false, false))
    init(blockedApp: String) { self.blockedApp = blockedApp }
    var isBlocked: Bool { state.withLock { $0.blocked } }
    func release() { state.withLock { $0.released = true } }
    func run(_ invocation: HookInvocation) async -> HookOutcome {
        guard invocation.environment["ROTATOR_APP_ID"] == blockedApp else { return HookOutcome(status: .exited(0), output: "") }
        state.withLock { $0.blocked = true }
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while !state.withLock({ $0.released }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        state.withLock { $0.blocked = false }
        return HookOutcome(status: .exited(0), output: "")
    }
}
