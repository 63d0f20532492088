import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// An app a reload removes while one of its actions is in flight stays removed, whatever the
/// action's outcome: the executor checks between every two events, for every path.
@Suite struct RemovedByReloadTests {
    static let app0 = GenAuthHarness.appId

    /// The hook's outcome cannot be recorded (the state directory is full): the journal
    /// failure must not bring the removed app back into the engine's state.
    @Test func appRemovedWhileItsHookRunsIsNotBroughtBackByAJournalFailure() async throws {
        let hooks = GatedHookRunner(blockedApp: Self.app0)
        try await withEngineFixture { _, fixture in
            let stateDirectory = fixture.directory.appendingPathComponent("state").path
            try await TestMount.withTmpfs(at: stateDirectory) {
                let config = fixture.config(hook: ["/bin/true"])
                let engine = fixture.engine(config: config, hooks: hooks, realClock: true)
                try await engine.start()
                let pass = Task { await engine.runDue() }
                #expect((try? await waitUntil { hooks.isBlocked }) != nil, "app0's hook runs")
                let filler = TestMount.fill(stateDirectory)
                defer { unlink(filler) }
                var reduced = config
                reduced.apps.removeAll { $0.id == Self.app0 }
                await engine.apply(reduced)
                hooks.release()
                _ = await pass.value
                #expect(await engine.state(of: Self.app0) == nil, "the removed app came back")
                #expect(await !engine.status().apps.contains { $0.id == Self.app0 })
            }
        }
    }
}
