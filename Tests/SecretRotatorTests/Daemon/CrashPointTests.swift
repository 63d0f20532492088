import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// The daemon killed (SIGKILL) exactly at each point where the order of durable
/// writes matters, then started again: every output ends with GenAuth's current secret, the
/// hook runs for the new version, and GenAuth sees exactly one rotation. Debug builds stop
/// themselves at `SECRET_ROTATOR_TEST_CRASH_AT` (`CrashPoint`); the .deb's release build
/// has no such switch.
@Suite(.serialized) struct CrashPointTests {
    @Test(arguments: CrashPoint.allCases)
    func killedAtAnOrderingPointRecoversWithOneRotation(_ point: CrashPoint) async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        let id = DaemonHarness.appID(0)
        // request_timeout 1s: a refresh whose outcome is unknown is settled 7 s after it was sent.
        try harness.writeConfig(apps: [0], interval: "1h", requestTimeout: "1s")
        let (first, firstOutput) = try await harness.run(["run", "--once"])
        #expect(first == 0, "\(firstOutput)")
        let before = try #require(harness.savedState(0))
        let rotationsBefore = harness.state.rotationCount(appId: id)

        // The operator asks for a rotation; the process dies at `point`.
        let (killed, killedLog) = try harness.start(["rotate", "app0"], extraEnvironment: [CrashPoint.variable: point.rawValue])
        try await waitUntil(deadline: .seconds(30), "the process switched to crash never ended") { !killed.isRunning }
        #expect(
            killed.terminationReason == .uncaughtSignal && killed.terminationStatus == SIGKILL,
            "did not stop at \(point.rawValue): \((try? String(contentsOf: killedLog, encoding: .utf8)) ?? "")")
        let sentBeforeKill = harness.state.rotationCount(appId: id) - rotationsBefore
        #expect(sentBeforeKill == (point == .intentDurable ? 0 : 1))

        // A start without the switch finishes what the kill left.
        let (daemon, log) = try harness.start(["run"])
        let settled = (try? await waitUntil(deadline: .seconds(60)) {
            guard let state = harness.savedState(0) else { return false }
            return state.version == before.version + 1 && state.intent == nil && state.hookDoneVersion == state.version
                && state.consecutiveFailures == 0 && harness.violations([0]).isEmpty && harness.unfinishedRollouts([0]).isEmpty
        }) != nil
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(settled, "\(point.rawValue): did not settle: \((try? String(contentsOf: log, encoding: .utf8))?.suffix(3000) ?? "")")
        #expect(harness.state.rotationCount(appId: id) - rotationsBefore == 1, "\(point.rawValue): not exactly one rotation")
        #expect(harness.violations([0]).isEmpty)
        #expect(harness.hookVersions(0).contains(before.version + 1))
    }

    /// With `first_start = "rotate"` a kill after the first intent was durable
    /// left nothing to compare the read-back with, and any secret read was taken as the
    /// rotation having happened: version 1 logged as rotated, GenAuth never rotated. Now the
    /// read secret is written and the rotation stays owed: exactly one rotation.
    @Test func firstStartRotationKilledBeforeItsRefreshIsStillMade() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        let id = DaemonHarness.appID(0)
        try harness.writeConfig(apps: [0], interval: "1h", extra: "first_start = \"rotate\"", requestTimeout: "1s")
        let (killed, _) = try harness.start(["run", "--once"], extraEnvironment: [CrashPoint.variable: CrashPoint.intentDurable.rawValue])
        try await waitUntil(deadline: .seconds(30), "the process switched to crash never ended") { !killed.isRunning }
        #expect(killed.terminationReason == .uncaughtSignal)
        #expect(harness.state.rotationCount(appId: id) == 0)

        let (daemon, log) = try harness.start(["run"])
        let settled = (try? await waitUntil(deadline: .seconds(60)) {
            guard let state = harness.savedState(0) else { return false }
            return state.intent == nil && !state.rotationOwed && state.consecutiveFailures == 0
                && harness.state.rotationCount(appId: id) == 1 && harness.violations([0]).isEmpty
        }) != nil
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(settled, "did not settle: \((try? String(contentsOf: log, encoding: .utf8))?.suffix(3000) ?? "")")
        #expect(harness.state.rotationCount(appId: id) == 1)
        #expect(harness.violations([0]).isEmpty)
    }
}
