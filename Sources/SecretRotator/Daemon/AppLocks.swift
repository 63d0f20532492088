#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One writer per app on this host (Architecture, invariant 6), whatever state directory a process uses.
///
/// The state-directory lock stops a second daemon on the same state directory, but
/// `rotate --state-dir OTHER` (or a second daemon with another `state_directory`) took its
/// own lock and rotated an app a running daemon also manages: two writers, each holding a
/// secret the other just killed. So every process that runs the engine also holds an
/// exclusive `flock` per app, in the host's runtime directory:
/// `<runtime>/apps/<app>.lock`, holding the PID and the state directory of its holder.
///
/// The runtime directory is `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=secret-rotator`
/// sets it to /run/secret-rotator), else /run/secret-rotator for root, else
/// `$XDG_RUNTIME_DIR/secret-rotator`, else /tmp/secret-rotator-<uid>. Every process of one
/// host and user that does not set the variable meets the same files; tests set it to keep
/// their app ids apart.
public final class AppLocks: Sendable {
    public let directory: String
    private let stateDirectory: String
    private let held = Mutex<[String: PIDLockFile]>([:])

    /// Who owns what this process creates here: root running `rotate` or `run --once` for a
    /// state directory owned by the daemon's user creates the lock directory and files for
    /// that user, or the daemon could not create its own locks in a directory root made.
    private let owner: uid_t?

    public init(directory: String = AppLocks.defaultDirectory(), stateDirectory: String) {
        self.directory = directory
        self.stateDirectory = stateDirectory
        var status = stat()
        if geteuid() == 0, stat(stateDirectory, &status) == 0, status.st_uid != 0 {
            owner = status.st_uid
        } else {
            owner = nil
        }
    }

    public static func defaultDirectory(environment: [String: String] = ProcessEnvironment.current) -> String {
        if let runtime = environment["RUNTIME_DIRECTORY"], runtime.hasPrefix("/") {
            // systemd may list several, separated by ':'; ours is the first.
            return String(runtime.split(separator: ":").first ?? Substring(runtime)) + "/apps"
        }
        if geteuid() == 0 { return "/run/secret-rotator/apps" }
        if let xdg = environment["XDG_RUNTIME_DIR"], xdg.hasPrefix("/") { return xdg + "/secret-rotator/apps" }
        return "/tmp/secret-rotator-\(geteuid())/apps"
    }

    /// Locks every app in `appIDs` not yet held and releases those no longer listed. All or
    /// nothing: if one is held elsewhere, the ones newly taken here are released again and
    /// the locks held before stay as they were.
    ///
    /// - Throws: `AppLockError` for the first app that cannot be locked.
    public func hold(exactly appIDs: [String]) throws(AppLockError) {
        try ensureDescriptors(for: appIDs.count)
        try ensureDirectory()
        let wanted = Set(appIDs)
        var taken: [String: PIDLockFile] = [:]
        let text = PIDLockFile.content(detail: stateDirectory)
        for id in appIDs where held.withLock({ $0[id] == nil }) && taken[id] == nil {
            let path = lockPath(id)
            do {
                // 0600: flock needs only a read descriptor, so a lock file others can open is
                // one an unprivileged user can hold to keep the daemon from starting.
                taken[id] = try PIDLockFile.acquire(path, text: text, mode: 0o600, owner: owner)
            } catch {
                for file in taken.values { file.release() }
                switch error {
                case .held(let pid, let detail):
                    throw AppLockError(.heldByAnother, appID: id, holder: pid, holderStateDirectory: detail, path: path, reason: "held")
                case .unavailable(let errno):
                    throw AppLockError(.unavailable, appID: id, path: path, reason: "\(OutputError.name(of: errno)) (\(errno))", cause: errno)
                }
            }
        }
        let released = held.withLock { locks -> [PIDLockFile] in
            locks.merge(taken) { old, _ in old }
            let gone = locks.keys.filter { !wanted.contains($0) }
            return gone.compactMap { locks.removeValue(forKey: $0) }
        }
        for file in released { file.release() }
    }

    /// Each held lock is an open descriptor for the life of the process. The usual soft limit
    /// is 1024 (systemd's default; its hard limit is 524288), which a config of 2,000 apps
    /// exceeded with EMFILE; the soft limit is raised as far as the hard one allows.
    private func ensureDescriptors(for count: Int) throws(AppLockError) {
        // Room for the rest of the process: HTTP connections, state files, hooks' pipes.
        let needed = rlim_t(count + 256)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < needed else { return }
        limit.rlim_cur = min(max(needed, limit.rlim_cur), limit.rlim_max)
        _ = setrlimit(resource, &limit)
        if limit.rlim_cur < needed {
            throw AppLockError(
                .unavailable, appID: "", path: directory,
                reason: "\(count) apps need about \(needed) open files, but the hard limit is \(limit.rlim_max) (raise LimitNOFILE=)")
        }
    }

    /// The apps this process holds now.
    public var heldAppIDs: Set<String> { held.withLock { Set($0.keys) } }

    deinit {
        for file in held.withLock({ Array($0.values) }) { file.release() }
    }

    func lockPath(_ appID: String) -> String { "\(directory)/\(StateDirectory.fileName(for: appID)).lock" }

    /// 0755 directories (their names are no secret); the lock files themselves are 0600.
    private func ensureDirectory() throws(AppLockError) {
        var path = ""
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o755) == 0 {
                if let owner { _ = chown(path, owner, gid_t.max) }
            } else if errno != EEXIST {
                let failure = Errno(rawValue: errno)
                throw AppLockError(
                    .unavailable, appID: "", path: path, reason: "cannot create the lock directory: \(OutputError.name(of: failure))", cause: failure)
            }
        }
    }
}

/// What kept a lock from being taken, for `AppLockError` and `StateDirectoryLockError`.
public struct LockErrorCode: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// Another process holds the lock.
    public static let heldByAnother = LockErrorCode("heldByAnother")
    /// The lock file or its directory cannot be used (EACCES, EROFS, too few descriptors).
    public static let unavailable = LockErrorCode("unavailable")

    public var description: String { rawValue }
}

/// An app whose lock another process holds, or a lock directory that cannot be used.
public struct AppLockError: Error, CustomStringConvertible {
    public typealias Code = LockErrorCode

    public let code: Code
    /// Empty when the lock directory itself failed, before any app.
    public let appID: String
    public let holder: pid_t?
    public let holderStateDirectory: String?
    public let path: String
    public let reason: String
    /// The errno, when a system call failed.
    public let cause: (any Error)?
    /// `file:line` where the error was raised, for bug reports.
    public let location: String

    init(
        _ code: Code, appID: String, holder: pid_t? = nil, holderStateDirectory: String? = nil, path: String, reason: String,
        cause: (any Error)? = nil, file: String = #fileID, line: Int = #line
    ) {
        (self.code, self.appID, self.path, self.reason, self.cause) = (code, appID, path, reason, cause)
        (self.holder, self.holderStateDirectory) = (holder, holderStateDirectory)
        location = "\(file):\(line)"
    }

    /// False when the lock file could not even be opened (e.g. EACCES on the directory).
    public var isHeldByAnother: Bool { code == .heldByAnother }

    public var description: String {
        guard isHeldByAnother else {
            return appID.isEmpty ? "cannot use the lock directory \(path): \(reason)" : "cannot lock app \(appID) at \(path): \(reason)"
        }
        // A PID that no longer exists means the file was locked by something that did not
        // write it (an old file, another tool): say so rather than name a dead process.
        let alive = holder.map { ProcessLiveness.of($0).exists } ?? false
        let who = alive ? holder.map { "PID \($0)" } ?? "another process" : "a process that is not the one the lock file names"
        let whereFrom = holderStateDirectory.map { " with state directory \($0)" } ?? ""
        return "app \(appID) is managed by another secret-rotator (\(who)\(whereFrom)); one process per host writes an app: ask that one (rotate/fetch without --state-dir), or stop it first"
    }
}
