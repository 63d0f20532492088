import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One writer per host (Architecture, invariant 6): an exclusive `flock` on `<state>/lock`, held
/// for the life of the process and released by the kernel even on SIGKILL. The file holds the
/// holder's PID so a second instance can name it and `rotate` can signal it.
public final class StateDirectoryLock: Sendable {
    public let path: String
    private let descriptor: FileDescriptor

    public struct HeldError: Error, CustomStringConvertible {
        public let path: String
        public let holder: pid_t?
        /// True when another process holds the lock (its PID may not be readable yet); false
        /// when the lock file itself could not be opened (read-only or broken directory).
        public var isHeldByAnother = false
        public let reason: String

        public var description: String {
            if let holder { return "\(path) is locked by another secret-rotator (PID \(holder)); only one may run per state directory" }
            return "cannot lock \(path): \(reason)"
        }
    }

    private init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        try? descriptor.close()
    }

    /// Where the lock lives is the state directory's business (`StateDirectory.lockPath`).
    public static func lockPath(stateDirectory: String) -> String { StateDirectory(path: stateDirectory).lockPath }

    public static func acquire(stateDirectory: String) throws(HeldError) -> StateDirectoryLock {
        let path = lockPath(stateDirectory: stateDirectory)
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(
                FilePath(path), .readWrite, options: [.create, .closeOnExec, .noFollow],
                permissions: [.ownerRead, .ownerWrite])
        } catch {
            throw HeldError(path: path, holder: nil, reason: "\(error)")
        }
        guard flock(descriptor.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            let reason = String(cString: strerror(errno))
            try? descriptor.close()
            var held = HeldError(path: path, holder: holder(stateDirectory: stateDirectory), reason: reason)
            held.isHeldByAnother = true
            throw held
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor.rawValue, 0)
        _ = try? descriptor.writeAll(toAbsoluteOffset: 0, text)
        return StateDirectoryLock(path: path, descriptor: descriptor)
    }

    /// The PID written by the current holder, if the lock is held right now.
    public static func holder(stateDirectory: String) -> pid_t? {
        let path = lockPath(stateDirectory: stateDirectory)
        guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow]) else {
            return nil
        }
        defer { try? descriptor.close() }
        // If we can take a shared lock, nobody holds the exclusive one.
        if flock(descriptor.rawValue, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(descriptor.rawValue, LOCK_UN)
            return nil
        }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = (try? buffer.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: 0, into: $0) }) ?? 0
        let text = String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        return pid_t(text)
    }
}
