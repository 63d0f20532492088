import Foundation
import GRDB
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Concurrent steps' state changes share a transaction, each caller returns only
/// once its own changes are durable, and one refused change set does not fail the others.
@Suite(.tags(.addressSanitizer)) struct GroupCommitTests {
    /// Holds GRDB's writer queue (as a long fsync would) until `release` is called.
    private final class WriterHold: @unchecked Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        func hold(_ pool: DatabasePool) {
            pool.asyncWriteWithoutTransaction { [semaphore] _ in semaphore.wait() }
        }
        func release() { semaphore.signal() }
    }

    @Test func changesArrivingDuringACommitShareTheNextTransaction() async throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let store = StateDirectory(path: root.path)
        try store.prepare()
        let (database, commits) = try store.database()
        let hold = WriterHold()
        hold.hold(database.pool)

        let apps = 64
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<apps {
                group.addTask {
                    var state = AppState(appID: "app-\(index)")
                    state.version = index + 1
                    let secret = CurrentSecret(appID: "app-\(index)", version: index + 1, obtainedAt: Date(), secret: SecretValue("s-\(index)"))
                    try await store.commit(StateChanges(states: [state], secrets: [secret]))
                    // Durable for this caller as soon as its commit returns: another connection sees it.
                    #expect(StateDirectory(path: root.path).loadSecret(appID: "app-\(index)", now: Date()).secret == secret)
                }
            }
            try await waitUntil("\(commits.waitingCount) of \(apps) changes waiting") { commits.waitingCount == apps }
            hold.release()
            try await group.waitForAll()
        }
        let statistics = commits.statistics
        #expect(statistics.changeSets == apps)
        #expect(statistics.transactions == 1, "64 change sets queued behind one fsync: \(statistics)")
        let loaded = StateDirectory(path: root.path).loadAll(appIDs: (0..<apps).map { "app-\($0)" }, now: Date())
        #expect(loaded.states.count == apps && loaded.secretVersions.count == apps && loaded.corrupt.isEmpty)
    }

    @Test func aRefusedChangeSetFailsAloneNotItsBatch() async throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let store = StateDirectory(path: root.path)
        try store.prepare()
        try StateTampering.execute(
            store, "CREATE TRIGGER refuse BEFORE INSERT ON app_state WHEN NEW.appID = 'bad' BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
        let (database, commits) = try store.database()
        let hold = WriterHold()
        hold.hold(database.pool)
        let outcomes = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for id in ["good-1", "bad", "good-2"] {
                group.addTask {
                    do {
                        try await store.commit(StateChanges(states: [AppState(appID: id)]))
                        return (id, true)
                    } catch {
                        #expect("\(error)".contains("refused by test"))
                        return (id, false)
                    }
                }
            }
            try await waitUntil("\(commits.waitingCount) of 3 changes waiting") { commits.waitingCount == 3 }
            hold.release()
            var outcomes: [String: Bool] = [:]
            for try await (id, ok) in group { outcomes[id] = ok }
            return outcomes
        }
        #expect(outcomes == ["good-1": true, "bad": false, "good-2": true])
        #expect(store.loadState(appID: "good-1", now: Date()).state != nil)
        #expect(store.loadState(appID: "good-2", now: Date()).state != nil)
        #expect(store.loadState(appID: "bad", now: Date()).state == nil)
    }
}
