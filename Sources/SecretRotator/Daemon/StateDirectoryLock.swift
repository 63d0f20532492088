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

    private init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        try? descriptor.close()
    }

    /// Where the lock lives is the state directory's business (`StateDirectory.lockPath`).
    public static func lockPath(stateDirectory: String) -> String { StateDirectory(path: stateDirectory).lockPath }

    public static func acquire(stateDirectory: String) throws(StateDirectoryLockError) -> StateDirectoryLock {
        let path = lockPath(stateDirectory: stateDirectory)
        do {
            let file = try PIDLockFile.acquire(path, detail: stateDirectory, mode: 0o600)
            return StateDirectoryLock(path: path, descriptor: file.descriptor)
        } catch {
            switch error {
            case .held(let pid, _):
                var held = StateDirectoryLockError(path: path, holder: pid, reason: "held by another process whose PID is not readable")
                held.isHeldByAnother = true
                throw held
            case .unavailable(let errno):
                throw StateDirectoryLockError(path: path, holder: nil, reason: "\(errno)")
            }
        }
    }

    /// The PID written by the current holder, if the lock is held right now.
    public static func holder(stateDirectory: String) -> pid_t? {
        PIDLockFile.holder(lockPath(stateDirectory: stateDirectory))?.pid
    }
}

/// The state directory lock could not be taken: another process holds it, or its file cannot be opened.
public struct StateDirectoryLockError: Error, CustomStringConvertible {
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
