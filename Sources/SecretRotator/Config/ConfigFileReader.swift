import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads small text files the config refers to (the config itself, the access key secret,
/// templates, CA files), with errors that name the path and the errno in words.
enum ConfigFileReader {
    struct Contents {
        let text: String
        let mode: FileMode
        var identity: FileIdentity? = nil
    }

    static let sizeLimit = 1 << 20

    static func read(_ path: String, followSymlinks: Bool = true) throws(ValueSyntaxError) -> Contents {
        let contents: SmallFile.Contents
        do {
            contents = try SmallFile.read(path, limit: sizeLimit, followSymlinks: followSymlinks)
        } catch {
            throw explain(error, path: path, followSymlinks: followSymlinks)
        }
        guard let text = String(validating: contents.bytes, as: UTF8.self) else {
            throw ValueSyntaxError("\(path) is not valid UTF-8")
        }
        return Contents(text: text, mode: FileMode(rawValue: contents.permissions), identity: contents.identity)
    }

    private static func explain(_ failure: SmallFile.Failure, path: String, followSymlinks: Bool) -> ValueSyntaxError {
        switch failure {
        case .system(let errno, let step):
            // O_NOFOLLOW on a symlink fails with ELOOP.
            if errno == .tooManySymbolicLinkLevels && !followSymlinks {
                return ValueSyntaxError("\(path) is a symbolic link; name the file itself")
            }
            return ValueSyntaxError("cannot \(step) \(path): \(explain(errno))")
        case .notRegular: return ValueSyntaxError("\(path) is not a regular file")
        case .tooLarge(let limit): return ValueSyntaxError("\(path) is larger than \(limit / 1024) KiB")
        }
    }

    /// Reads a file that tells the daemon what to run or write: the config (its `on_rotate`
    /// commands run as the daemon's user) and templates (their text goes into outputs).
    ///
    /// The rule is sudo's for sudoers and sshd's StrictModes: the file and the directory it
    /// is in must be owned by root or by the daemon's own user and writable by neither group
    /// nor others; otherwise whoever can write them can make the daemon run or write what
    /// they like. `followSymlinks: false` refuses a symlink in the file's place (templates:
    /// one pointing at the access key file copied that secret into an output); with `true`
    /// (the config, which packaging may link) the rule applies to the file and directory the
    /// link leads to.
    ///
    /// - Throws: `ValueSyntaxError` naming `what`, the path, and the owner or mode at fault.
    static func readTrusted(_ path: String, what: String, followSymlinks: Bool) throws(ValueSyntaxError) -> Contents {
        let raw: SmallFile.Contents
        do {
            raw = try SmallFile.read(path, limit: sizeLimit, followSymlinks: followSymlinks)
        } catch {
            throw explain(error, path: path, followSymlinks: followSymlinks)
        }
        if let problem = trustProblem(owner: raw.owner, mode: raw.permissions, what: "\(what) \(path)") {
            throw ValueSyntaxError(problem)
        }
        // The directory the path names and, for a link, the one its target is in: whoever can
        // write the first can point the link elsewhere, whoever can write the second can
        // replace the file.
        var directories = [parentDirectory(of: path)]
        if followSymlinks, let real = realPath(path), parentDirectory(of: real) != directories[0] {
            directories.append(parentDirectory(of: real))
        }
        for parent in directories {
            var status = stat()
            guard stat(parent, &status) == 0 else {
                throw ValueSyntaxError("cannot stat the directory \(parent) of \(what) \(path): \(explain(Errno(rawValue: errno)))")
            }
            if let problem = trustProblem(
                owner: status.st_uid, mode: UInt16(status.st_mode & 0o777), what: "the directory \(parent) of \(what) \(path)")
            {
                throw ValueSyntaxError(problem)
            }
        }
        if raw.bytes.contains(0) {
            throw ValueSyntaxError("\(what) \(path) contains a NUL byte: it is not text")
        }
        guard let text = String(validating: raw.bytes, as: UTF8.self) else {
            throw ValueSyntaxError("\(path) is not valid UTF-8")
        }
        return Contents(text: text, mode: FileMode(rawValue: raw.permissions), identity: raw.identity)
    }

    /// nil when `owner` is root or our effective uid and `mode` gives no write to group or others.
    static func trustProblem(owner: uid_t, mode: UInt16, what: String) -> String? {
        let me = geteuid()
        if owner != 0 && owner != me {
            return "refusing \(what): owned by uid \(owner), not by root or by the daemon's user (uid \(me)); whoever owns it decides what the daemon runs and writes"
        }
        if mode & 0o022 != 0 {
            return "refusing \(what): writable by group or others (mode \(FileMode(rawValue: mode))); chmod go-w it"
        }
        return nil
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func explain(_ error: any Error) -> String {
        guard let errno = error as? Errno else { return "\(error)" }
        return "\(OutputError.name(of: errno)) (\(errno.description))"
    }
}
