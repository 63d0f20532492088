import Foundation
import GenAuthMock
import Testing

@testable import SecretRotator

/// A record is not the world: a state directory restored from a backup (a VM snapshot, a
/// downgrade) holds a secret GenAuth killed since, while the outputs hold the live one. The
/// daemon must read GenAuth before it replaces an output's content from such a record, and
/// never write the dead secret, log it as a repair or run a hook for it (invariants 1 and 10).
@Suite(.serialized, .timeLimit(.minutes(3))) struct RestoredStateTests {
    @Test(arguments: [false, true])
    func aRestoredStateDirectoryNeverPutsADeadSecretOnTheOutputs(once: Bool) async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        let app = DaemonHarness.appID(0)
        try harness.writeConfig(apps: [0], interval: "1h")
        for _ in 0..<3 {
            let (status, output) = try await harness.run(["rotate", "app0"])
            try #require(status == 0, "\(output)")
        }
        let backup = harness.directory.appendingPathComponent("state-backup")
        try FileManager.default.copyItem(atPath: harness.stateDirectory, toPath: backup.path)
        let dead = try #require(harness.output(0))
        for _ in 0..<2 {
            let (status, output) = try await harness.run(["rotate", "app0"])
            try #require(status == 0, "\(output)")
        }
        let live = try #require(harness.state.currentSecret(appId: app))
        #expect(harness.output(0) == live && live != dead)
        let hooksBefore = harness.hookVersions(0)
        try FileManager.default.removeItem(atPath: harness.stateDirectory)
        try FileManager.default.copyItem(atPath: backup.path, toPath: harness.stateDirectory)
        let mark = harness.state.requestLog().map(\.sequence).max() ?? 0

        let log: String
        if once {
            let (status, output) = try await harness.run(["run", "--once"])
            #expect(status == 0, "\(output)")
            log = output
        } else {
            let (daemon, file) = try harness.start()
            defer { kill(daemon.processIdentifier, SIGKILL) }
            let text = { (try? String(contentsOf: file, encoding: .utf8)) ?? "" }
            #expect(await waitForGenAuth(timeout: .seconds(60)) { text().contains("event=changed_upstream") || text().contains("changed upstream") })
            #expect(await waitForGenAuth(timeout: .seconds(60)) { harness.savedState(0)?.secretFingerprint == SecretFingerprint.of(SecretValue(live)) })
            kill(daemon.processIdentifier, SIGTERM)
            daemon.waitUntilExit()
            #expect(daemon.terminationStatus == 0)
            log = text()
        }
        #expect(harness.output(0) == live, "the output holds GenAuth's current secret")
        #expect(harness.state.currentSecret(appId: app) == live, "nothing was rotated to get there")
        #expect(!log.contains("outputs repaired"), "the restored record was written as a repair:\n\(log.suffix(2000))")
        #expect(log.contains("repair_awaits_confirmation"))
        let reads = harness.state.requestLog().filter { $0.sequence > mark && $0.path.hasSuffix("get-application-secret") }
        #expect(!reads.isEmpty, "GenAuth was read before anything was written")
        let newHooks = harness.hookVersions(0).subtracting(hooksBefore)
        let version = try #require(harness.savedState(0)).version
        #expect(newHooks.isSubset(of: [version]), "a hook ran only for the live secret's version, not for the restored one: \(newHooks.sorted())")
    }
}
