import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension AtomicFileWriter {
    /// Compares the file at `path` with what `write(expected, to: path, options: options)`
    /// would leave there; nil when they agree. Reads only: nothing on disk changes, and the
    /// result never holds file content.
    ///
    /// The target is `lstat`ed before it is opened, so a device or FIFO at the path is reported
    /// without being opened; it is then opened `O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK`, and
    /// the descriptor's own `fstat` decides type, size, mode, owner and group (the name may have
    /// been replaced in between). At most `expected.count + 1` bytes are read.
    ///
    /// The expected owner and group follow the writer: `options.owner`, else the effective
    /// uid that creates the temp file; `options.group`, else the parent's group when the
    /// parent is setgid, else the effective gid (Linux `open(2)`, "O_CREAT"; a file system
    /// mounted `grpid` behaves as if every directory were setgid, which is not detected).
    /// `writer` replaces the effective uid and gid in that rule (`status` judging the daemon's
    /// files from a root shell).
    func inspect(_ expected: [UInt8], at path: String, options: AtomicWriteOptions, writer: WriterIdentity? = nil) -> OutputDrift? {
        guard let (parent, name) = Self.split(path) else {
            return .invalidOutput(OutputError(.invalidSpec, path: path, reason: "target must be an absolute path to a file"))
        }
        let directory: FileDescriptor
        do {
            // The same walk and rules as a write: a directory a write would refuse is not
            // "fine", and a symlinked ancestor must not make us compare some other file.
            // Judged as the writer would be: the daemon's own directories are trusted when
            // root (or a monitoring user) inspects them for it.
            directory = try SafeDirectory.open(
                parent, target: path, allowUnsafe: options.allowUnsafeDirectory, action: "inspect",
                daemonUser: writer.map { $0.userID.rawValue })
        } catch where error.errno == .noSuchFileOrDirectory {
            return .missing
        } catch where error.code == .unsafeDirectory {
            return .invalidOutput(error)
        } catch {
            return .unreadable(error.errno ?? .ioError)
        }
        defer { try? directory.close() }

        let listed: Stat
        do {
            listed = try Self.lstat(name, in: directory)
        } catch let failure where failure == .noSuchFileOrDirectory {
            return .missing
        } catch {
            return .unreadable(error)
        }
        guard listed.type == .regular else { return .notRegularFile(found: listed.type) }

        let raw = openat(directory.rawValue, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard raw >= 0 else {
            let failure = Errno(rawValue: errno)
            switch failure {
            case .noSuchFileOrDirectory: return .missing
            // Replaced by a symlink since the lstat: O_NOFOLLOW refuses it.
            case .tooManySymbolicLinkLevels: return .notRegularFile(found: .symbolicLink)
            default: return .unreadable(failure)
            }
        }
        let file = FileDescriptor(rawValue: raw)
        defer { try? file.close() }
        let status: Stat
        do {
            status = try file.stat()
        } catch {
            return .unreadable(error)
        }
        guard status.type == .regular else { return .notRegularFile(found: status.type) }

        // A different size is a difference without reading a byte of the secret.
        guard status.size == Int64(expected.count) else { return .content }
        switch Self.readMatches(expected, from: file) {
        case .failure(let failure): return .unreadable(failure)
        case .success(false): return .content
        case .success(true): break
        }

        let mode = status.permissions.rawValue & 0o7777
        if mode != options.mode.rawValue {
            return .mode(found: FilePermissions(rawValue: mode))
        }
        let expectedOwner = options.owner?.rawValue ?? writer?.userID.rawValue ?? ProcessUser.effectiveUID
        if status.userID.rawValue != expectedOwner {
            return .owner(found: status.userID)
        }
        let expectedGroup: gid_t
        if let group = options.group {
            expectedGroup = group.rawValue
        } else {
            do {
                let parentStatus = try directory.stat()
                let setgid = parentStatus.mode.rawValue & mode_t(S_ISGID) != 0
                expectedGroup = setgid ? parentStatus.groupID.rawValue : (writer?.groupID.rawValue ?? ProcessUser.effectiveGID)
            } catch {
                return .unreadable(error)
            }
        }
        if status.groupID.rawValue != expectedGroup {
            return .group(found: status.groupID)
        }
        return nil
    }

    /// Reads up to `expected.count + 1` bytes and compares them with `expected`. The
    /// comparison looks at every byte whatever differs first, so its time does not tell how
    /// much of a guess at the secret was right.
    private static func readMatches(_ expected: [UInt8], from file: FileDescriptor) -> Result<Bool, Errno> {
        // One byte more than expected: a file that grew since the fstat shows up as longer.
        var found = [UInt8](repeating: 0, count: expected.count + 1)
        var total = 0
        while total < found.count {
            let count: Int
            do {
                // read(into:) retries EINTR itself.
                count = try found.withUnsafeMutableBytes { buffer in
                    try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...]))
                }
            } catch {
                return .failure(error as? Errno ?? .ioError)
            }
            if count == 0 { break }
            total += count
        }
        guard total == expected.count else { return .success(false) }
        var difference: UInt8 = 0
        for index in expected.indices {
            difference |= expected[index] ^ found[index]
        }
        return .success(difference == 0)
    }
}
