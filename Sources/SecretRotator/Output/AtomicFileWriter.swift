import CLinuxFiles
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Replaces a file so that a reader opening it by path sees either the old or the new
/// complete content, never a mix, a truncation or nothing (Architecture, invariant 2).
///
/// Sequence: open the parent directory once and work relative to that descriptor (so a
/// renamed or swapped parent cannot redirect later steps), check it is not writable by
/// strangers, refuse a non-regular target, create a hidden temp file
/// `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` 0600, write, chown, chmod, fsync, re-check the
/// target, `renameat` over it, fsync the directory.
///
/// Temp files a crashed writer left behind are removed by `sweepStaleTemporaries`, which the
/// engine runs at start-up and after a reload, and which a failed write runs on its own
/// directory (the failure may be ENOSPC that those files cause). A successful write never
/// lists the directory: with N apps in one drop directory, sweeping on every write made a
/// pass cost O(N²).
///
/// The temp file is `flock`ed for its whole life: the sweeper only deletes temp files it
/// can lock, so it never removes a file another writer (thread or process) is still
/// filling, while a crashed writer's lock vanishes with its process.
public struct AtomicFileWriter: Sendable {
    /// Steps a test can observe or fail. Not public: production code has no reason to.
    enum Step: String, Sendable, CaseIterable {
        case openDirectory, createTemporary, writeContent, setOwner, setMode, syncFile, rename, syncDirectory
    }

    struct Hooks: Sendable {
        /// Source of the random part of temp names, so a test can plant a file at the next name.
        var random: @Sendable () -> UInt64 = { UInt64.random(in: .min ... .max) }
        /// Runs before each step with the temp file's name (once there is one); a returned
        /// errno makes that step fail as if the system call had.
        var beforeStep: (@Sendable (Step, String?) -> Errno?)?
    }

    let hooks: Hooks

    /// Temp names are random, so a collision means something planted a file there.
    private static let createAttempts = 8

    public init() {
        self.hooks = Hooks()
    }

    init(hooks: Hooks) {
        self.hooks = hooks
    }

    /// Atomically replaces `path` with `bytes`. On any error before the rename the target is
    /// untouched and the temp file is gone.
    public func write(_ bytes: [UInt8], to path: String, options: AtomicWriteOptions) throws(OutputError) {
        guard let (parent, name) = Self.split(path) else {
            throw OutputError(.invalidSpec, path: path, reason: "target must be an absolute path to a file")
        }

        let directory = try openDirectory(parent, target: path, options: options)
        defer { try? directory.close() }
        do {
            try replace(name, in: directory, with: bytes, target: path, options: options)
        } catch {
            // Our own temp file is gone by now; a crashed writer's may be what filled the disk
            // (ENOSPC, EDQUOT), so clear them before the caller retries. Best effort: the
            // write's error is the one that matters.
            var removed: [String] = []
            _ = try? sweep(directory, allowedOwners: Self.ownersByBase(options.owner.map { [name: $0] } ?? [:]), removed: &removed)
            throw error
        }
    }

    /// Checks that `write(bytes, to: path, options: options)` could succeed now, changing
    /// nothing a reader sees: the directory is reached and checked as for a write (and a
    /// missing drop directory created, as a write would), the target is replaceable, and a
    /// temp file can be created, filled with `bytes`, given its owner, group and mode, and
    /// removed. No fsync and no rename.
    ///
    /// Vault Agent makes such a write check once at start-up; here it runs before every
    /// refresh, because GenAuth kills the old secret the moment it answers: a read-only mount,
    /// a full disk or a lost chown right must be found before that call, not after it.
    ///
    /// - Throws: the `OutputError` the write would have met at that step.
    public func probe(_ bytes: [UInt8], at path: String, options: AtomicWriteOptions) throws(OutputError) {
        guard let (parent, name) = Self.split(path) else {
            throw OutputError(.invalidSpec, path: path, reason: "target must be an absolute path to a file")
        }
        let directory = try openDirectory(parent, target: path, options: options)
        defer { try? directory.close() }
        try checkTargetIsReplaceable(name, in: directory, target: path)
        // What a temp file cannot show: a rename over an immutable or append-only target,
        // inside an append-only directory, or over a mount point fails (EPERM, EBUSY).
        try checkRenameAllowed(name, in: directory, target: path)
        let (file, temporaryName) = try createTemporary(for: name, in: directory, target: path)
        defer {
            _ = unlinkat(directory.rawValue, temporaryName, 0)
            try? file.close()
        }
        try fill(file, named: temporaryName, with: bytes, target: path, options: options)
    }

    /// Refuses what would make the final `renameat` fail although a temp file can be made:
    /// `chattr +i`/`+a` on the target or `+a` on the directory (EPERM), a target that is a
    /// mount point (EBUSY). Read with statx(2); where the kernel does not report an attribute
    /// (its mask bit is clear), that case is left to the write.
    func checkRenameAllowed(_ name: String, in directory: FileDescriptor, target: String) throws(OutputError) {
        var attributes: UInt64 = 0
        var mask: UInt64 = 0
        if sr_statx_attributes(directory.rawValue, "", &attributes, &mask) == 0,
            mask & sr_statx_attr_append != 0, attributes & sr_statx_attr_append != 0
        {
            throw OutputError(
                .renameFailed, path: target, errno: .notPermitted,
                reason: "the directory is append-only (chattr +a): nothing in it can be replaced")
        }
        guard sr_statx_attributes(directory.rawValue, name, &attributes, &mask) == 0 else { return }
        for (flag, what) in [(sr_statx_attr_immutable, "immutable (chattr +i)"), (sr_statx_attr_append, "append-only (chattr +a)")]
        where mask & flag != 0 && attributes & flag != 0 {
            throw OutputError(.renameFailed, path: target, errno: .notPermitted, reason: "the target is \(what): it cannot be replaced")
        }
        if mask & sr_statx_attr_mount_root != 0 && attributes & sr_statx_attr_mount_root != 0 {
            throw OutputError(
                .renameFailed, path: target, errno: .resourceBusy,
                reason: "the target is a mount point (a bind mount over the file): a rename over it fails")
        }
    }

    /// Content, owner and group, then mode of a new temp file: what a write and its probe share.
    private func fill(
        _ file: FileDescriptor, named temporaryName: String, with bytes: [UInt8], target path: String, options: AtomicWriteOptions
    ) throws(OutputError) {
        try perform(.writeContent, temporaryName, .temporaryFileFailed, path, "cannot write the temporary file") {
            _ = try file.writeAll(bytes)
        }
        if options.owner != nil || options.group != nil {
            // Ownership before mode: while the file is still 0600 a group change exposes nothing.
            let uid = options.owner?.rawValue ?? uid_t.max
            let gid = options.group?.rawValue ?? gid_t.max
            try perform(.setOwner, temporaryName, .temporaryFileFailed, path, "cannot set owner/group") {
                try Self.check(fchown(file.rawValue, uid, gid))
            }
        }
        try perform(.setMode, temporaryName, .temporaryFileFailed, path, "cannot set mode") {
            try Self.check(fchmod(file.rawValue, options.mode.rawValue))
        }
    }

    /// The write proper, inside a checked directory: temp file, content, attributes, rename.
    private func replace(
        _ name: String, in directory: FileDescriptor, with bytes: [UInt8], target path: String, options: AtomicWriteOptions
    ) throws(OutputError) {
        try checkTargetIsReplaceable(name, in: directory, target: path)

        let (file, temporaryName) = try createTemporary(for: name, in: directory, target: path)
        var renamed = false
        defer {
            // Failed before the rename: take the temp file away so nothing half-done lingers.
            if !renamed { _ = unlinkat(directory.rawValue, temporaryName, 0) }
            try? file.close()
        }

        try fill(file, named: temporaryName, with: bytes, target: path, options: options)
        try perform(.syncFile, temporaryName, .temporaryFileFailed, path, "cannot fsync the temporary file") {
            try Self.retryingInterrupts { fsync(file.rawValue) }
        }
        // Again right before the rename: something may have appeared at the target meanwhile.
        try checkTargetIsReplaceable(name, in: directory, target: path)
        try perform(.rename, temporaryName, .renameFailed, path, "cannot rename the temporary file over the target") {
            try Self.check(renameat(directory.rawValue, temporaryName, directory.rawValue, name))
        }
        renamed = true
        try perform(.syncDirectory, nil, .directorySyncFailed, path, "replaced, but cannot fsync the directory") {
            try Self.retryingInterrupts { fsync(directory.rawValue) }
        }
    }

    /// Parent and file name by plain string work: FilePath's parsing dominated the CPU profile
    /// of a write in debug builds.
    static func split(_ path: String) -> (parent: String, name: String)? {
        guard path.hasPrefix("/"), !path.hasSuffix("/"), !path.utf8.contains(0), let slash = path.lastIndex(of: "/")
        else { return nil }
        let name = String(path[path.index(after: slash)...])
        guard name != ".", name != ".." else { return nil }
        let parent = slash == path.startIndex ? "/" : String(path[..<slash])
        return (parent, name)
    }

    // MARK: - Directory

    /// The parent, reached and checked by `SafeDirectory` (no symlinks, no ancestor that
    /// someone else could change), created if the options ask for it.
    private func openDirectory(_ parent: String, target: String, options: AtomicWriteOptions) throws(OutputError)
        -> FileDescriptor
    {
        if let injected = hooks.beforeStep?(.openDirectory, nil) {
            throw OutputError(.directoryUnavailable, path: target, errno: injected, reason: "cannot open the directory \(parent)")
        }
        return try SafeDirectory.open(
            parent, target: target, allowUnsafe: options.allowUnsafeDirectory, create: options.createParent,
            daemonUser: options.trustedOwner?.rawValue)
    }

    // MARK: - Target

    private func checkTargetIsReplaceable(_ name: String, in directory: FileDescriptor, target: String) throws(OutputError) {
        let status: Stat
        do {
            status = try Self.lstat(name, in: directory)
        } catch let errno where errno == .noSuchFileOrDirectory {
            return
        } catch {
            throw OutputError(.directoryUnavailable, path: target, errno: error, reason: "cannot inspect the target")
        }
        guard status.type != .regular else { return }
        throw OutputError(
            .notRegularFile, path: target,
            reason: "refusing to replace \(Self.describe(status.type)); only regular files are replaced"
        )
    }

    private static func describe(_ type: FileType) -> String {
        switch type {
        case .symbolicLink: "a symbolic link"
        case .directory: "a directory"
        case .fifo: "a FIFO"
        case .socket: "a socket"
        case .characterSpecial: "a character device"
        case .blockSpecial: "a block device"
        default: "a non-regular file"
        }
    }

    // MARK: - Temporary files

    private func createTemporary(for name: String, in directory: FileDescriptor, target: String) throws(OutputError)
        -> (FileDescriptor, String)
    {
        var lastError: OutputError?
        for _ in 0..<Self.createAttempts {
            let temporaryName = TemporaryFileName.make(for: name, random: hooks.random())
            let raw: Int32
            do {
                raw = try perform(.createTemporary, temporaryName, .temporaryFileFailed, target, "cannot create the temporary file") {
                    try Self.retryingInterrupts {
                        openat(directory.rawValue, temporaryName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                    }
                }
            } catch let error where error.errno == .fileExists {
                // Planted or colliding name: never touch it, just pick another one.
                lastError = error
                continue
            }
            let file = FileDescriptor(rawValue: raw)
            // A sweeper that locked it first is about to delete it; one that already did left nlink 0.
            var status = stat()
            if flock(raw, LOCK_EX | LOCK_NB) != 0 || fstat(raw, &status) != 0 || status.st_nlink == 0 {
                try? file.close()
                lastError = OutputError(.temporaryFileFailed, path: target, reason: "temporary file vanished while being created")
                continue
            }
            return (file, temporaryName)
        }
        throw lastError ?? OutputError(.temporaryFileFailed, path: target, reason: "cannot create the temporary file")
    }

    // MARK: - Sweeping

    /// Removes the temp files crashed writers left in `directory` (an absolute path), so they
    /// neither fill the disk nor linger next to the secrets. Run it at start-up and after a
    /// config reload, once per directory; writes do not sweep unless they fail.
    ///
    /// Removed are only regular files whose name has the temp pattern
    /// (`.<target>.sr-tmp.<16 hex>`), that belong to this process's effective uid or, for the
    /// temp files of a target named in `allowedOwners`, to the owner the writer chowns that
    /// target's files to, and that no live writer holds `flock`ed: each is locked before it is
    /// unlinked, and unlinked only if the name still leads to the inode that was locked.
    ///
    /// - Parameters:
    ///   - directory: absolute path of the directory to sweep. A missing directory has
    ///     nothing to sweep and is no error.
    ///   - allowedOwners: target file name (the last path component, e.g. `billing.env`) to
    ///     the owner its output is chowned to (`OutputSpec.owner`).
    ///   - allowUnsafeDirectory: sweep even when the directory is writable by group or others
    ///     or owned by a third user, like a write with the same switch; otherwise such a
    ///     directory is left alone and reported as `unsafeDirectory`.
    /// - Returns: the names removed and, when the sweep could not start or stopped early,
    ///   the error (path and errno, as for a write).
    @discardableResult
    public func sweepStaleTemporaries(
        inDirectory directory: String, allowedOwners: [String: UserID] = [:], allowUnsafeDirectory: Bool = false
    ) -> TemporarySweep {
        let descriptor: FileDescriptor
        do {
            descriptor = try SafeDirectory.open(directory, target: directory, allowUnsafe: allowUnsafeDirectory, action: "sweep")
        } catch where error.errno == .noSuchFileOrDirectory {
            return TemporarySweep(directory: directory, removed: [], error: nil)
        } catch {
            return TemporarySweep(directory: directory, removed: [], error: error)
        }
        defer { try? descriptor.close() }
        var removed: [String] = []
        do {
            try sweep(descriptor, allowedOwners: Self.ownersByBase(allowedOwners), removed: &removed)
        } catch {
            let failure = OutputError(
                .directoryUnavailable, path: directory, errno: error, reason: "cannot list the directory to sweep")
            return TemporarySweep(directory: directory, removed: removed, error: failure)
        }
        return TemporarySweep(directory: directory, removed: removed, error: nil)
    }

    /// `allowedOwners` keyed the way temp names carry their target: by the truncated base.
    /// Two long names may share a base, hence a set of owners per base.
    private static func ownersByBase(_ owners: [String: UserID]) -> [String: Set<uid_t>] {
        var byBase: [String: Set<uid_t>] = [:]
        for (name, owner) in owners {
            byBase[TemporaryFileName.truncatedBase(name), default: []].insert(owner.rawValue)
        }
        return byBase
    }

    /// Lists first, then removes: the candidates found before a listing error are still swept
    /// (and appended to `removed`), and the error is thrown afterwards.
    private func sweep(
        _ directory: FileDescriptor, allowedOwners: [String: Set<uid_t>], removed: inout [String]
    ) throws(Errno) {
        var candidates: [(name: String, base: String)] = []
        var listingError: Errno?
        do {
            var listing = try DirectoryListing(directory: directory)
            while let entry = try listing.next() {
                // d_type is only a hint here (the lstat below decides), but it spares an
                // lstat for every secret file in a large drop directory.
                guard entry.isExactName, entry.type == nil || entry.type == .regular,
                    let base = TemporaryFileName.base(ofTemporary: entry.name)
                else { continue }
                candidates.append((entry.name, base))
            }
        } catch {
            listingError = error
        }
        let me = ProcessUser.effectiveUID
        for (temporaryName, base) in candidates {
            guard let status = try? Self.lstat(temporaryName, in: directory),
                status.type == .regular
            else { continue }
            let owner = status.userID.rawValue
            guard owner == me || allowedOwners[base]?.contains(owner) == true else { continue }
            let raw = openat(directory.rawValue, temporaryName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard raw >= 0 else { continue }
            defer { _ = close(raw) }
            guard flock(raw, LOCK_EX | LOCK_NB) == 0 else { continue }
            var locked = stat()
            guard fstat(raw, &locked) == 0,
                let current = try? Self.lstat(temporaryName, in: directory),
                current.inode.rawValue == locked.st_ino, current.deviceID.rawValue == locked.st_dev
            else { continue }
            if unlinkat(directory.rawValue, temporaryName, 0) == 0 {
                removed.append(temporaryName)
            }
        }
        if let listingError { throw listingError }
    }

    // MARK: - Plumbing

    /// Runs one step: lets the test hook inject a fault, and turns errno into an `OutputError`.
    @discardableResult
    private func perform<T>(
        _ step: Step, _ temporaryName: String?, _ code: OutputError.Code, _ target: String, _ reason: String,
        _ body: () throws -> T
    ) throws(OutputError) -> T {
        if let injected = hooks.beforeStep?(step, temporaryName) {
            throw OutputError(code, path: target, errno: injected, reason: reason)
        }
        do {
            return try body()
        } catch let errno as Errno {
            throw OutputError(code, path: target, errno: errno, reason: reason)
        } catch {
            throw OutputError(code, path: target, reason: "\(reason): \(error)")
        }
    }

    /// fstatat without following a final symlink, for a name inside `directory`.
    static func lstat(_ name: String, in directory: FileDescriptor) throws(Errno) -> Stat {
        var status = stat()
        guard fstatat(directory.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { throw Errno(rawValue: errno) }
        return Stat(rawValue: status)
    }

    static func check(_ result: Int32) throws(Errno) {
        if result != 0 { throw Errno(rawValue: errno) }
    }

    @discardableResult
    static func retryingInterrupts(_ call: () -> Int32) throws(Errno) -> Int32 {
        while true {
            let result = call()
            if result >= 0 { return result }
            if errno != EINTR { throw Errno(rawValue: errno) }
        }
    }
}
