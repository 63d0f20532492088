import Foundation
import GRDB
import Testing

@testable import SecretRotator

/// Migrations of the state database keep what the records meant.
@Suite struct StateMigrationTests {
    /// A database from before notices were owed: its apps owe none after the upgrade (every
    /// version counts as announced), so an upgrade never re-announces old rotations.
    @Test func recordsFromBeforeOwedNoticesOweNone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sr-migration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let queue = try DatabaseQueue(path: directory.appendingPathComponent("state.sqlite").path)
        try StateDatabase.migrator.migrate(queue, upTo: "v3: last failure kind")
        try queue.write { db in
            try db.execute(sql: "INSERT INTO app_state (appID, version) VALUES ('a', 5), ('b', 0)")
        }
        try StateDatabase.migrator.migrate(queue)
        let states = try queue.read { db in try AppState.fetchAll(db, sql: "SELECT * FROM app_state ORDER BY appID") }
        #expect(states.map(\.announcedVersion) == [5, 0])
        #expect(states.allSatisfy { !AppTransitions.announcementOwed($0) })
    }
}
