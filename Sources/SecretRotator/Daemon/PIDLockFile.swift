import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An exclusive `flock(2)` on a file that names its holder: the lock lives as long as the
/// descriptor (the kernel drops it even on SIGKILL), and the file's first line is the holder's
/// PID, its second what it holds the lock for (e.g. its state directory), so whoever finds it
/// taken can say by whom. Shared by the state-directory lock and the per-app locks.
struct PIDLockFile: Sendable {
    let path: String
    let descriptor: FileDescriptor

    enum Failure: Error {
        /// Another process holds it; what the file says about that process, if readable.
        case held(pid: pid_t?, detail: String?)
        /// The file cannot be opened or created.
        case unavailable(Errno)
    }

    /// - Parameter detail: the second line, e.g. the state directory (no newlines).
    /// - Parameter mode: for a newly created file. Taking a lock needs only a read descriptor,
    ///   so a file another user created (0644) can still be locked; the PID is then not
    ///   rewritten.
    /// - Parameter owner: given to a file this call creates (root acting for a daemon user).
    static func acquire(_ path: String, detail: String, mode: mode_t, owner: uid_t? = nil) throws(Failure) -> PIDLockFile {
        var raw = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        if raw >= 0, let owner {
            _ = fchown(raw, owner, gid_t.max)
        } else if raw < 0 && errno == EEXIST {
            raw = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        }
        var writable = true
        if raw < 0 && errno == EACCES {
            raw = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            writable = false
        }
        guard raw >= 0 else { throw .unavailable(Errno(rawValue: errno)) }
        let descriptor = FileDescriptor(rawValue: raw)
        guard flock(raw, LOCK_EX | LOCK_NB) == 0 else {
            try? descriptor.close()
            let (pid, heldFor) = holder(path) ?? (nil, nil)
            throw .held(pid: pid, detail: heldFor)
        }
        if writable {
            let text = Array("\(getpid())\n\(detail)\n".utf8)
            _ = ftruncate(raw, 0)
            _ = try? descriptor.writeAll(toAbsoluteOffset: 0, text)
        }
        return PIDLockFile(path: path, descriptor: descriptor)
    }

    /// What the holder wrote, if the lock is held right now; nil when it is free.
    static func holder(_ path: String) -> (pid: pid_t?, detail: String?)? {
        guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow]) else {
            return nil
        }
        defer { try? descriptor.close() }
        // If we can take a shared lock, nobody holds the exclusive one.
        if flock(descriptor.rawValue, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(descriptor.rawValue, LOCK_UN)
            return nil
        }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = (try? buffer.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: 0, into: $0) }) ?? 0
        let lines = String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let pid = lines.first.flatMap { pid_t($0) }
        let detail = lines.count > 1 && !lines[1].isEmpty ? String(lines[1]) : nil
        return (pid, detail)
    }

    func release() {
        try? descriptor.close()
    }
}
