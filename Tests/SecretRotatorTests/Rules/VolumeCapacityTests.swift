import Testing

@testable import SecretRotator

/// One capacity rule for the state directory's health check and for naming the cause of a
/// failed SQLite write.
@Suite struct VolumeCapacityTests {
    static let rows: [(name: String, capacity: VolumeCapacity, expected: [VolumeCapacity.Problem])] = [
        ("room", .init(readOnly: false, freeBlocks: 1000, totalInodes: 1000, freeInodes: 500), []),
        ("one block left is still room", .init(readOnly: false, freeBlocks: 1, totalInodes: 1000, freeInodes: 500), []),
        ("no block left", .init(readOnly: false, freeBlocks: 0, totalInodes: 1000, freeInodes: 500), [.noSpace]),
        ("two inodes left is enough", .init(readOnly: false, freeBlocks: 10, totalInodes: 1000, freeInodes: 2), []),
        ("one inode left: no -wal and -shm", .init(readOnly: false, freeBlocks: 10, totalInodes: 1000, freeInodes: 1), [.noInodes]),
        ("no inode left", .init(readOnly: false, freeBlocks: 10, totalInodes: 1000, freeInodes: 0), [.noInodes]),
        ("no inode count (btrfs)", .init(readOnly: false, freeBlocks: 10, totalInodes: 0, freeInodes: 0), []),
        ("no block and no inode: blocks named", .init(readOnly: false, freeBlocks: 0, totalInodes: 1000, freeInodes: 0), [.noSpace]),
        ("read-only", .init(readOnly: true, freeBlocks: 1000, totalInodes: 1000, freeInodes: 500), [.readOnly]),
        ("read-only and full", .init(readOnly: true, freeBlocks: 0, totalInodes: 1000, freeInodes: 500), [.readOnly, .noSpace]),
    ]

    @Test func everyRowMatches() {
        for row in Self.rows {
            #expect(row.capacity.problems() == row.expected, "\(row.name)")
        }
    }

    @Test func aMissingPathHasNoCapacity() {
        #expect(VolumeCapacity.of("/nonexistent/secret-rotator/capacity") == nil)
        #expect(VolumeCapacity.of("/") != nil)
    }
}
