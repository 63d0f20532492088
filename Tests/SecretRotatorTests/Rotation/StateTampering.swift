import Foundation
import GRDB

@testable import SecretRotator

/// Changes the state database behind the engine's back, as a crash, a bug or an operator
/// with sqlite3(1) could, and reads it without the engine's API.
enum StateTampering {
    static func execute(_ store: StateDirectory, _ sql: String, _ arguments: [String] = []) throws {
        let queue = try DatabaseQueue(path: store.databasePath)
        try queue.write { db in try db.execute(sql: sql, arguments: StatementArguments(arguments)) }
        try queue.close()
    }

    static func count(_ store: StateDirectory, _ sql: String) throws -> Int {
        let queue = try DatabaseQueue(path: store.databasePath)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    /// Name, size and modification time of every file in the state directory (recursively):
    /// what a read-only reader must leave as it found.
    static func fileStates(_ store: StateDirectory) throws -> [String: String] {
        var found: [String: String] = [:]
        let root = URL(fileURLWithPath: store.path)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [:] }
        for case let url as URL in walker {
            var status = stat()
            guard lstat(url.path, &status) == 0 else { continue }
            // The -shm index may be touched by any reader (SQLite maps it); its content is not state.
            if url.lastPathComponent.hasSuffix("-shm") { continue }
            found[url.path] = "\(status.st_size) \(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
        }
        return found
    }
}
