#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a file system can still take, read without writing (statvfs(3)), and the one rule
/// for when it can take no more: used before a write (the health check of the state
/// directory, `check-config`'s look at an output directory) and after one failed (to name
/// the cause SQLite's result code hides).
struct VolumeCapacity: Sendable, Equatable {
    var readOnly: Bool
    /// Blocks an unprivileged writer may still use (`f_bavail`).
    var freeBlocks: UInt64
    /// Inodes in all; 0 on file systems that do not count them (btrfs, some FUSE).
    var totalInodes: UInt64
    /// Inodes an unprivileged writer may still use (`f_favail`).
    var freeInodes: UInt64

    enum Problem: Sendable, Equatable {
        /// Mounted read-only: every write fails with EROFS.
        case readOnly
        /// No block left: the next write fails with ENOSPC.
        case noSpace
        /// Too few inodes for the files a commit may create: ENOSPC too.
        case noInodes
    }

    /// The fewest free inodes a write to the state database can need: a WAL-mode database
    /// creates its `-wal` and `-shm` files when it is opened or after a checkpoint removed them.
    /// One free inode is not enough, so one is already a problem.
    static let inodesNeeded: UInt64 = 2

    /// Every problem, in the order an operator should fix them. A file system that keeps no
    /// inode count is never short of inodes. Blocks: any free block lets the next commit
    /// start (a WAL frame is one page, and a failed append leaves the database as it was),
    /// so only zero is a problem, which also keeps the check quiet on a nearly full disk
    /// the daemon still writes to.
    func problems() -> [Problem] {
        var problems: [Problem] = []
        if readOnly { problems.append(.readOnly) }
        if freeBlocks == 0 {
            problems.append(.noSpace)
        } else if totalInodes > 0 && freeInodes < Self.inodesNeeded {
            problems.append(.noInodes)
        }
        return problems
    }

    /// The file system holding `path`, or nil when statvfs fails (the path does not exist).
    static func of(_ path: String) -> VolumeCapacity? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return VolumeCapacity(
            readOnly: info.f_flag & UInt(ST_RDONLY) != 0, freeBlocks: UInt64(info.f_bavail),
            totalInodes: UInt64(info.f_files), freeInodes: UInt64(info.f_favail))
    }
}
