import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Synchronization
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
            try await waitUntil(deadline: .seconds(60)) { text().contains("event=changed_upstream") || text().contains("changed upstream") }
            try await waitUntil(deadline: .seconds(60)) { harness.savedState(0)?.secretFingerprint == SecretFingerprint.of(SecretValue(live)) }
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

/// The held-write path (a held secret newer than the outputs, `writeOutputs`) obeys the same
/// rule: a held secret not provably GenAuth's newest is confirmed with one read before it
/// replaces an output's content, and a dead one is never written nor announced to a hook.
@Suite struct RestoredHeldSecretTests {
    /// Records what app0's output holds whenever a hook runs (a hook follows every write of a
    /// new version), so a write of the dead secret cannot go unseen.
    final class OutputAtHookRunner: HookRunning {
        let path: String
        private let seen = Mutex<[String]>([])
        init(path: String) { self.path = path }
        var outputs: [String] { seen.withLock { $0 } }
        func run(_ invocation: HookInvocation) async -> HookOutcome {
            let content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            seen.withLock { $0.append(content.trimmingCharacters(in: .newlines)) }
            return HookOutcome(status: .exited(0), output: "")
        }
    }

    /// A state directory restored from a backup taken between keeping version 3 and writing
    /// it (state at version 2, held version 3), while GenAuth has moved on to version 4 and
    /// the output holds it: zero writes of version 3's secret, and GenAuth is read first.
    @Test func aRestoredHeldSecretOlderThanGenAuthsIsNeverWritten() async throws {
        try await withEngineFixture { harness, fixture in
            let app = GenAuthHarness.appId
            let config = fixture.config(hook: ["/bin/true"])
            let store = StateDirectory(path: config.defaults.stateDirectory)
            let engine = try await fixture.startedEngine(config: config)
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue()
            let stateAtTwo = try #require(store.loadState(appID: app, now: fixture.clock.now()).state)
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue()
            let dead = try #require(store.loadSecret(appID: app, now: fixture.clock.now()).secret)
            #expect(dead.version == 3 && stateAtTwo.version == 2)
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue()
            let live = try #require(harness.state.currentSecret(appId: app))
            #expect(fixture.outputSecret(0) == live && live != dead.secretValue.exposed)

            // The backup is put back; a new process starts on it.
            try store.saveState(stateAtTwo)
            try store.saveSecret(dead)
            let hooks = OutputAtHookRunner(path: fixture.directory.appendingPathComponent("drop/app0").path)
            let mark = harness.state.requestLog().map(\.sequence).max() ?? 0
            _ = try await fixture.startedEngine(config: config, hooks: hooks)

            #expect(fixture.outputSecret(0) == live, "the output holds GenAuth's current secret")
            #expect(!hooks.outputs.contains(dead.secretValue.exposed), "a hook ran after the dead secret was written")
            #expect(hooks.outputs.allSatisfy { $0 == live })
            let calls = harness.state.requestLog().filter { $0.sequence > mark && $0.appId == app }.map(\.path)
            #expect(calls.first == "/api/v3/get-application-secret" && !calls.contains { $0.hasSuffix("refresh-application-secret") }, "\(calls)")
            #expect(harness.state.currentSecret(appId: app) == live, "nothing was rotated to get there")
            fixture.expectInvariant()
        }
    }

    /// A crash right after our refresh's answer was kept (intent recorded, the held secret
    /// received after it): that secret is GenAuth's newest and is written without a read.
    @Test func ourRefreshsKeptAnswerIsWrittenWithoutARead() async throws {
        try await withEngineFixture { harness, fixture in
            let app = GenAuthHarness.appId
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            let engine = try await fixture.startedEngine(config: config)
            var inFlight = try #require(store.loadState(appID: app, now: fixture.clock.now()).state)
            inFlight.intent = .refresh
            inFlight.intentStartedAt = fixture.clock.now()
            inFlight.rotationOwed = true
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue()
            let answer = try #require(store.loadSecret(appID: app, now: fixture.clock.now()).secret)
            // As a crash between keeping the answer and writing the outputs leaves it.
            try store.saveState(inFlight)
            try FileManager.default.removeItem(at: fixture.directory.appendingPathComponent("drop/app0"))
            let mark = harness.state.requestLog().map(\.sequence).max() ?? 0
            _ = try await fixture.startedEngine(config: config)
            #expect(fixture.outputSecret(0) == answer.secretValue.exposed)
            let calls = harness.state.requestLog().filter { $0.sequence > mark && $0.appId == app }
            #expect(calls.isEmpty, "no read, no refresh: \(calls.map(\.path))")
            fixture.expectInvariant()
        }
    }
}
