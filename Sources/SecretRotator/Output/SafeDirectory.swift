import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Opens an output's directory the way the trust boundary requires (Architecture, Trust boundary and threat model): component by component from `/`,
/// never following a symbolic link, and refusing a path that someone other than root or the
/// daemon's own user could change.
///
/// Checking only the immediate parent is not enough. With `/X/gp/sub/secret`, `gp` owned by
/// an unprivileged user and `sub` by root (0700), that user can rename `sub` away and put a
/// symlink to any root-owned directory in its place: a path walk that follows links then
/// writes the secret there. Here every component is opened with
/// `openat(parent, name, O_PATH|O_DIRECTORY|O_NOFOLLOW)` relative to the one before, so a
/// link anywhere is refused (ELOOP/ENOTDIR) and what was checked is what is used.
///
/// The rule for each directory on the way (OpenSSH's StrictModes, applied to every ancestor):
/// - owned by root or by the effective uid;
/// - not writable by group or others, except an ancestor with the sticky bit (`/tmp`):
///   there others may add entries but cannot rename or remove ours, and the next component
///   must itself pass the owner rule;
/// - the final directory, where files are created and renamed, may not be writable by group
///   or others at all.
///
/// `allowUnsafe` (an output's `allow_unsafe_directory`) lifts the owner and mode rules, never
/// the symlink rule: the operator accepts who can write there, not that the path can lead
/// elsewhere. Paths through a link (Debian's `/var/run` → `/run`) must be written as the real path.
public enum SafeDirectory {
    /// Opens `path` (absolute, no `.`/`..`/empty components) for creating files in it and for
    /// fsync. With `create`, a missing last component is created (0700 first, then the
    /// group and mode asked for), as drop directories are.
    ///
    /// - Returns: a descriptor opened `O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC`; the caller closes it.
    /// - Throws: `OutputError` with `target` as its path: `.unsafeDirectory` naming the component
    ///   and its owner, mode or link; `.directoryUnavailable` with errno otherwise.
    ///
    /// - Parameter daemonUser: a further owner to trust besides root and the effective uid:
    ///   root checking or running for a daemon that runs as another user (the owner of its
    ///   state directory, `SafeDirectory.daemonUser(stateDirectory:)`).
    public static func open(
        _ path: String, target: String, allowUnsafe: Bool, create: DirectoryCreation? = nil, action: String = "write",
        daemonUser: uid_t? = nil
    ) throws(OutputError) -> FileDescriptor {
        let components = path.split(separator: "/").map(String.init)
        guard path.hasPrefix("/"), !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw OutputError(.invalidSpec, path: target, reason: "\(path) is not a plain absolute path")
        }
        var current = try openRoot(target: target)
        var currentPath = "/"
        do {
            try check(
                current, path: currentPath, isFinal: components.isEmpty, allowUnsafe: allowUnsafe, target: target, action: action,
                daemonUser: daemonUser)
            for (index, name) in components.enumerated() {
                let isFinal = index == components.count - 1
                let childPath = currentPath == "/" ? "/" + name : currentPath + "/" + name
                let child = try openComponent(
                    name, in: current, path: childPath, isFinal: isFinal, create: isFinal ? create : nil, target: target)
                try? current.close()
                current = child
                currentPath = childPath
                try check(
                    current, path: currentPath, isFinal: isFinal, allowUnsafe: allowUnsafe, target: target, action: action,
                    daemonUser: daemonUser)
            }
        } catch {
            try? current.close()
            throw error
        }
        if components.isEmpty {
            // "/" was opened O_PATH; reopen it for fsync.
            let raw = openat(current.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            try? current.close()
            guard raw >= 0 else {
                throw OutputError(.directoryUnavailable, path: target, errno: Errno(rawValue: errno), reason: "cannot open /")
            }
            return FileDescriptor(rawValue: raw)
        }
        return current
    }

    /// (device, inode) of `path`'s directory reached by the same walk and rules, or the error
    /// a write would meet. Two outputs whose directories have one identity and whose names
    /// are equal are one file, however the config spells them.
    public static func identity(of path: String, allowUnsafe: Bool, daemonUser: uid_t? = nil) -> Result<FileIdentity, OutputError> {
        do {
            let descriptor = try open(path, target: path, allowUnsafe: allowUnsafe, action: "use", daemonUser: daemonUser)
            defer { try? descriptor.close() }
            var status = stat()
            guard fstat(descriptor.rawValue, &status) == 0 else {
                return .failure(OutputError(.directoryUnavailable, path: path, errno: Errno(rawValue: errno), reason: "cannot stat"))
            }
            return .success(FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino)))
        } catch {
            return .failure(error)
        }
    }

    /// The user a daemon runs as, for whoever acts on its behalf (root's `check-config`,
    /// `status` or standalone `rotate`, or a monitoring user's `status`): the owner of its
    /// state directory, when that is not root. Nil otherwise. The package's daemon runs as
    /// `secret-rotator`, which owns /var/lib/secret-rotator and the directories it writes. The
    /// state directory is named by the config, which only root or the daemon may write, so
    /// trusting its owner trusts no one the config does not already trust.
    public static func daemonUser(stateDirectory: String) -> uid_t? {
        var status = stat()
        guard stat(stateDirectory, &status) == 0, status.st_uid != 0 else { return nil }
        return status.st_uid
    }

    /// `O_PATH` (Linux 2.6.39, `asm-generic/fcntl.h`): Glibc's Swift module leaves it out, as
    /// the C header shows it only with `_GNU_SOURCE`.
    private static let pathOnly: Int32 = 0o10000000

    private static func openRoot(target: String) throws(OutputError) -> FileDescriptor {
        let raw = Glibc.open("/", pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard raw >= 0 else {
            throw OutputError(.directoryUnavailable, path: target, errno: Errno(rawValue: errno), reason: "cannot open /")
        }
        return FileDescriptor(rawValue: raw)
    }

    /// Intermediate components need only search permission (`O_PATH`, as for a 0711 home
    /// directory); the final one is opened for reading so it can be fsynced.
    private static func openComponent(
        _ name: String, in parent: FileDescriptor, path: String, isFinal: Bool, create: DirectoryCreation?, target: String
    ) throws(OutputError) -> FileDescriptor {
        let flags = (isFinal ? O_RDONLY : pathOnly) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        let raw = openat(parent.rawValue, name, flags)
        if raw < 0, errno == ENOENT, let create {
            return try createFinal(name, in: parent, path: path, creation: create, target: target)
        }
        if raw < 0 {
            let failure = Errno(rawValue: errno)
            if failure == .tooManySymbolicLinkLevels || failure == .notDirectory {
                // ELOOP: a symlink (O_NOFOLLOW); ENOTDIR: a symlink or a file. Say which.
                var status = stat()
                if fstatat(parent.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0, (status.st_mode & S_IFMT) == S_IFLNK {
                    throw OutputError(
                        .unsafeDirectory, path: target,
                        reason: "\(path) is a symbolic link; outputs are reached without following links, so name the real directory")
                }
            }
            throw OutputError(.directoryUnavailable, path: target, errno: failure, reason: "cannot open the directory \(path)")
        }
        return FileDescriptor(rawValue: raw)
    }

    private static func createFinal(
        _ name: String, in parent: FileDescriptor, path: String, creation: DirectoryCreation, target: String
    ) throws(OutputError) -> FileDescriptor {
        // 0700 first, the final group and mode after: no moment where the wrong group can look in.
        var created = false
        if mkdirat(parent.rawValue, name, 0o700) == 0 {
            created = true
        } else if errno != EEXIST {
            // EEXIST: someone (maybe another writer) created it meanwhile; use it as it is.
            throw OutputError(.directoryUnavailable, path: target, errno: Errno(rawValue: errno), reason: "cannot create the directory \(path)")
        }
        let raw = openat(parent.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard raw >= 0 else {
            throw OutputError(.directoryUnavailable, path: target, errno: Errno(rawValue: errno), reason: "cannot open the directory \(path)")
        }
        let directory = FileDescriptor(rawValue: raw)
        guard created else { return directory }
        if let group = creation.group, fchown(raw, uid_t.max, group.rawValue) != 0 {
            let failure = Errno(rawValue: errno)
            try? directory.close()
            throw OutputError(.directoryUnavailable, path: target, errno: failure, reason: "cannot set the group of the new directory \(path)")
        }
        if fchmod(raw, creation.mode.rawValue) != 0 {
            let failure = Errno(rawValue: errno)
            try? directory.close()
            throw OutputError(.directoryUnavailable, path: target, errno: failure, reason: "cannot set the mode of the new directory \(path)")
        }
        return directory
    }

    private static func check(
        _ directory: FileDescriptor, path: String, isFinal: Bool, allowUnsafe: Bool, target: String, action: String,
        daemonUser: uid_t?
    ) throws(OutputError) {
        guard !allowUnsafe else { return }
        var status = stat()
        guard fstat(directory.rawValue, &status) == 0 else {
            throw OutputError(.directoryUnavailable, path: target, errno: Errno(rawValue: errno), reason: "cannot stat the directory \(path)")
        }
        let me = ProcessUser.effectiveUID
        let override = "set allow_unsafe_directory = true to accept it"
        let rule = FileTrust.outputDirectories(effectiveUser: me, daemonUser: daemonUser)
        switch rule.problem(owner: status.st_uid, mode: UInt16(status.st_mode & 0o7777), place: isFinal ? .finalDirectory : .ancestorDirectory) {
        case nil:
            return
        case .owner(let owner):
            throw OutputError(
                .unsafeDirectory, path: target,
                reason: "refusing to \(action): directory \(path) is owned by uid \(owner), not by root or by us (uid \(me)), who could swap what lies below it; \(override)"
            )
        case .mode:
            throw OutputError(
                .unsafeDirectory, path: target,
                reason: "refusing to \(action): directory \(path) is writable by group or others (mode \(String(status.st_mode & 0o7777, radix: 8))); \(override)"
            )
        }
    }
}
