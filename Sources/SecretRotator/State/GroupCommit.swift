import GRDB
import Synchronization

/// Group commit for the state database: the changes of concurrent app steps that arrive
/// while a transaction is being made durable share the next transaction, so N steps at once
/// cost about one WAL fsync per round instead of N (the technique of PostgreSQL's and
/// InnoDB's group commit; no added delay, the batch is whatever waited during the last fsync).
///
/// Each caller still gets its own outcome, and only once its changes are durable: the engine's
/// ordering guarantees (an intent durable before a refresh is sent, a received secret durable
/// before any output is written) hold per caller. If a shared transaction fails, each change
/// set is retried in a transaction of its own, so one caller's failure is not another's.
///
/// Commits run on GRDB's writer queue (a dispatch thread), never on the cooperative pool.
final class GroupCommit: Sendable {
    private struct Waiter {
        let changes: StateChanges
        let continuation: CheckedContinuation<Result<Void, StateDirectoryError>, Never>
    }

    private struct Queue {
        var waiting: [Waiter] = []
        var committing = false
    }

    private let database: StateDatabase
    private let queue = Mutex(Queue())
    /// Transactions committed and change sets they carried, for the benchmark and tests.
    private let counters = Mutex((transactions: 0, changeSets: 0))

    init(database: StateDatabase) {
        self.database = database
    }

    /// Commits `changes`; returns once they are durable.
    ///
    /// - Throws: `StateDirectoryError` (with the errno SQLite's result implies, e.g. ENOSPC)
    ///   when they could not be made durable; nothing of them is then on disk.
    func commit(_ changes: StateChanges) async throws(StateDirectoryError) {
        if changes.isEmpty { return }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, StateDirectoryError>, Never>) in
            let startCommitter = queue.withLock { queue in
                queue.waiting.append(Waiter(changes: changes, continuation: continuation))
                if queue.committing { return false }
                queue.committing = true
                return true
            }
            if startCommitter { runCommitter() }
        }
        try result.get()
    }

    /// Change sets waiting for the next transaction (tests wait on this).
    var waitingCount: Int { queue.withLock { $0.waiting.count } }

    /// How many transactions carried how many change sets so far.
    var statistics: (transactions: Int, changeSets: Int) { counters.withLock { $0 } }

    /// Takes everything waiting, commits it, resumes its callers, and goes on while more
    /// arrived meanwhile; the writer queue is held only while there is work.
    private func runCommitter() {
        let database = database
        database.pool.asyncWriteWithoutTransaction { [self] db in
            while true {
                let batch = queue.withLock { queue -> [Waiter] in
                    if queue.waiting.isEmpty {
                        queue.committing = false
                        return []
                    }
                    defer { queue.waiting = [] }
                    return queue.waiting
                }
                if batch.isEmpty { return }
                let results = Self.commit(batch.map(\.changes), in: db, path: database.path)
                counters.withLock {
                    $0.transactions += batch.count == 1 || results.allSatisfy({ if case .success = $0 { true } else { false } }) ? 1 : batch.count
                    $0.changeSets += batch.count
                }
                for (waiter, result) in zip(batch, results) {
                    waiter.continuation.resume(returning: result)
                }
            }
        }
    }

    private static func commit(_ sets: [StateChanges], in db: Database, path: String) -> [Result<Void, StateDirectoryError>] {
        do {
            try db.inTransaction {
                for changes in sets { try changes.apply(db) }
                return .commit
            }
            return sets.map { _ in .success(()) }
        } catch {
            if sets.count == 1 { return [.failure(Self.error(error, path: path))] }
        }
        // One failed set (or a full disk) must not fail the others blindly: each alone.
        return sets.map { changes in
            do {
                try db.inTransaction {
                    try changes.apply(db)
                    return .commit
                }
                return .success(())
            } catch {
                return .failure(Self.error(error, path: path))
            }
        }
    }

    private static func error(_ error: any Error, path: String) -> StateDirectoryError {
        if let error = error as? DatabaseError {
            return StateDatabase.error(error, path: path, message: "cannot save the record")
        }
        return StateDirectoryError(.recordWriteFailed, path: path, message: "cannot save the record: \(error)")
    }
}
