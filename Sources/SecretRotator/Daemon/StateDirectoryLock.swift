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
                throw StateDirectoryLockError(.heldByAnother, path: path, holder: pid, reason: "held by another process whose PID is not readable")
            case .unavailable(let errno):
                throw StateDirectoryLockError(.unavailable, path: path, reason: "\(errno)", cause: errno)
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
    public typealias Code = LockErrorCode

    public let code: Code
    public let path: String
    public let holder: pid_t?
    public let reason: String
    /// The errno, when the lock file could not be opened or locked.
    public let cause: (any Error)?
    /// `file:line` where the error was raised, for bug reports.
    public let location: String

    init(
        _ code: Code, path: String, holder: pid_t? = nil, reason: String, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        (self.code, self.path, self.holder, self.reason, self.cause) = (code, path, holder, reason, cause)
        location = "\(file):\(line)"
    }

    /// True when another process holds the lock (its PID may not be readable yet); false
    /// when the lock file itself could not be opened (read-only or broken directory).
    public var isHeldByAnother: Bool { code == .heldByAnother }

    public var description: String {
        if let holder { return "\(path) is locked by another secret-rotator (PID \(holder)); only one may run per state directory" }
        return "cannot lock \(path): \(reason)"
    }
}
