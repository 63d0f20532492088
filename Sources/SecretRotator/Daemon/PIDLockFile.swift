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
        try acquire(path, text: content(detail: detail), mode: mode, owner: owner)
    }

    /// What a holder writes: its PID, then `detail`. Made once by a caller that takes many locks.
    static func content(detail: String) -> [UInt8] { Array("\(getpid())\n\(detail)\n".utf8) }

    /// - Parameter text: the file's content once held (`content(detail:)`).
    static func acquire(_ path: String, text: [UInt8], mode: mode_t, owner: uid_t? = nil) throws(Failure) -> PIDLockFile {
        // The file usually exists (kept from the last run): opened first, so a daemon taking
        // thousands of app locks makes one open per app, not a failed O_EXCL create and then
        // an open.
        var raw = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        if raw < 0 && errno == ENOENT {
            raw = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if raw >= 0, let owner {
                _ = fchown(raw, owner, gid_t.max)
            } else if raw < 0 && errno == EEXIST {
                raw = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
            }
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
        if writable { rewrite(descriptor, with: text) }
        return PIDLockFile(path: path, descriptor: descriptor)
    }

    /// Puts `text` in the held file without truncating it to zero first: on a file system
    /// mounted with `discard` (ext4 on this project's VMs), truncating to zero frees the file's
    /// block and the call waits for the device to discard it, once per app lock at every start.
    /// The text is written over the old content, and the file is cut to its length only when
    /// the old content was longer; content that is already right is not written at all.
    private static func rewrite(_ descriptor: FileDescriptor, with text: [UInt8]) {
        var old = [UInt8](repeating: 0, count: text.count + 1)
        let count = (try? old.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: 0, into: $0) }) ?? -1
        if count == text.count && old[0..<count].elementsEqual(text) { return }
        _ = try? descriptor.writeAll(toAbsoluteOffset: 0, text)
        if count > text.count || count < 0 { _ = ftruncate(descriptor.rawValue, off_t(text.count)) }
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
