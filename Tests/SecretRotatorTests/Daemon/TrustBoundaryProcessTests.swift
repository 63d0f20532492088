import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// The trust boundary against real processes: one writer per app across state directories, a reload
/// that cannot move the state directory or crash the daemon, and bounded requests.
@Suite struct TrustBoundaryProcessTests {
    private func log(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    private func refreshes(_ harness: DaemonHarness) -> Int {
        harness.state.requestLog().filter { $0.path.hasSuffix("refresh-application-secret") }.count
    }

    /// `rotate --state-dir OTHER` took OTHER's lock and rotated an app the daemon manages.
    @Test func anotherStateDirectoryCannotWriteADaemonsApp() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        let (daemon, _) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0, 1]).isEmpty }
        let other = harness.directory.appendingPathComponent("other-state").path

        harness.state.clearRequestLog()
        for arguments in [["rotate", "--state-dir", other, "app0"], ["run", "--once", "--state-dir", other]] {
            let (status, output) = try await harness.run(arguments)
            #expect(status == 75, "\(arguments): \(output)")
            #expect(output.contains("is managed by another secret-rotator (PID \(daemon.processIdentifier) with state directory \(harness.stateDirectory))"), "\(output)")
        }
        #expect(refreshes(harness) == 0)
        #expect(harness.violations([0, 1]).isEmpty)

        // Through the daemon it works, as the message says.
        let (status, output) = try await harness.run(["rotate", "app0"])
        #expect(status == 0, "\(output)")
        #expect(refreshes(harness) == 1)

        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
        // Released with the process: now the other state directory may take the apps.
        let (after, afterOutput) = try await harness.run(["fetch", "--state-dir", other, "app1"])
        #expect(after == 0, "\(afterOutput)")
    }

    @Test func reloadRefusesAChangedStateDirectory() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h")
        let original = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        let (daemon, daemonLog) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0]).isEmpty }

        let moved = harness.directory.appendingPathComponent("moved-state").path
        try Data(original.replacingOccurrences(of: harness.stateDirectory, with: moved).utf8)
            .write(to: URL(fileURLWithPath: harness.configPath))
        kill(daemon.processIdentifier, SIGHUP)
        try await waitUntil(deadline: .seconds(30)) { log(daemonLog).contains("state_directory changed") }
        #expect(log(daemonLog).contains("a running daemon cannot apply this, restart it"))
        #expect(daemon.isRunning)
        #expect(!FileManager.default.fileExists(atPath: moved))
        #expect(StateDirectoryLock.holder(stateDirectory: harness.stateDirectory) == daemon.processIdentifier)

        // The old directory is still locked: no second daemon can start on it.
        try Data(original.utf8).write(to: URL(fileURLWithPath: harness.configPath))
        let (second, _) = try await harness.run(["run"])
        #expect(second == 75)

        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    /// Each hostile file on SIGHUP: rejected with a reason, the daemon keeps rotating on the
    /// old config. The dotted header crashed toml++ (SIGSEGV) in the daemon before the limits.
    @Test func reloadWithHostileConfigsKeepsTheOldOne() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1s")
        let (daemon, daemonLog) = try harness.start()
        let app0 = DaemonHarness.appID(0)
        try await waitUntil(deadline: .seconds(30)) { harness.state.rotationCount(appId: app0) >= 1 }

        let dotted = { (bytes: Int) in "[" + Array(repeating: "a", count: bytes / 2).joined(separator: ".") + "]\n" }
        let hostile: [(String, String)] = [
            ("dotted 60 KB", dotted(60_000)), ("dotted 600 KB", dotted(600_000)),
            ("10 MB", "# " + String(repeating: "x", count: 10 << 20) + "\n"),
            ("100,000 apps", "[genauth]\naccess_key_id = \"a\"\n" + String(repeating: "[[app]]\n", count: 100_000)),
        ]
        for (index, (name, text)) in hostile.enumerated() {
            try Data(text.utf8).write(to: URL(fileURLWithPath: harness.configPath))
            kill(daemon.processIdentifier, SIGHUP)
            try await waitUntil(deadline: .seconds(30), "\(name): no rejection logged") {
                log(daemonLog).components(separatedBy: "still running on the previous config").count - 1 > index
            }
            #expect(daemon.isRunning, "\(name): the daemon died")
        }
        let before = harness.state.rotationCount(appId: app0)
        try await waitUntil(deadline: .seconds(30)) { harness.state.rotationCount(appId: app0) >= before + 2 }

        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    /// request_timeout bounds the body: a trickled answer ends `rotate` after the timeout,
    /// and SIGTERM during such a refresh stops the daemon at once. Bounds are the acceptance
    /// line's, with room for a loaded machine; what fails them is the old behaviour (minutes).
    @Test func trickledAnswerIsBoundedForRotateAndStop() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", requestTimeout: "2s", hooks: false)
        let (fetch, fetchOutput) = try await harness.run(["fetch", "app0"])
        #expect(fetch == 0, "\(fetchOutput)")

        harness.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .trickleBody(intervalMilliseconds: 1_500)))
        let started = ContinuousClock.now
        let (status, output) = try await harness.run(["rotate", "app0"])
        let elapsed = ContinuousClock.now - started
        #expect(status == 1, "\(output)")
        #expect(output.contains("outcome is unknown"), "\(output)")
        #expect(elapsed < .seconds(8), "rotate took \(elapsed) with request_timeout 2s")

        // A daemon mid-refresh on a trickling answer: SIGTERM ends it within 5 s.
        harness.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .trickleBody(intervalMilliseconds: 1_500)))
        let (daemon, _) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { StateDirectoryLock.holder(stateDirectory: harness.stateDirectory) == daemon.processIdentifier }
        let requestsBefore = refreshes(harness)
        let (_, _) = try await harness.run(["rotate", "--timeout", "1s", "app0"])
        try await waitUntil(deadline: .seconds(30)) { refreshes(harness) > requestsBefore }
        let stopAsked = ContinuousClock.now
        kill(daemon.processIdentifier, SIGTERM)
        try await waitUntil(deadline: .seconds(30)) { !daemon.isRunning }
        #expect(ContinuousClock.now - stopAsked < .seconds(5))
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    /// With request_timeout = "5m" a stop waited for the whole trickled answer
    /// (44 s at 300 ms per byte, 155 s at 1 s), beyond the unit's TimeoutStopSec=. Steps still
    /// in flight 3 s after SIGTERM are cancelled; the refresh's outcome is left unknown and
    /// reconciled at the next start.
    @Test func stopDoesNotWaitForALongRequest() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", requestTimeout: "5m", hooks: false)
        let (fetch, fetchOutput) = try await harness.run(["fetch", "app0"])
        #expect(fetch == 0, "\(fetchOutput)")
        harness.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .trickleBody(intervalMilliseconds: 1_000)))
        let (daemon, daemonLog) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { StateDirectoryLock.holder(stateDirectory: harness.stateDirectory) == daemon.processIdentifier }
        _ = try await harness.run(["rotate", "--timeout", "1s", "app0"])
        try await waitUntil(deadline: .seconds(30)) { refreshes(harness) == 1 }
        let stopAsked = ContinuousClock.now
        kill(daemon.processIdentifier, SIGTERM)
        try await waitUntil(deadline: .seconds(60)) { !daemon.isRunning }
        let stopped = ContinuousClock.now - stopAsked
        #expect(stopped < .seconds(5), "stopped after \(stopped)")
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
        #expect(log(daemonLog).contains("cancelling them"))
        // The refresh was applied by the mock; its answer never arrived. The record says so.
        #expect(harness.unfinishedRollouts([0]) == ["app0: refresh outcome unsettled"])
    }
}
