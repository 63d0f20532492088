import Synchronization
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
        if let problem = pathTrustProblem(path, what: "\(what) \(path)") {
            throw ValueSyntaxError(problem)
        }
        if raw.bytes.contains(0) {
            throw ValueSyntaxError("\(what) \(path) contains a NUL byte: it is not text")
        }
        guard let text = String(validating: raw.bytes, as: UTF8.self) else {
            throw ValueSyntaxError("\(path) is not valid UTF-8")
        }
        return Contents(text: text, mode: FileMode(rawValue: raw.permissions), identity: raw.identity)
    }

    /// Every directory on the way to `path`, as written and as resolved: owned by root or us
    /// and writable by nobody else, except a sticky one (`/tmp`) on the way. Whoever can
    /// write any of them can swap what the path leads to: a link in a stranger's directory
    /// to a trusted config, or a directory component that is such a link, was accepted.
    static func pathTrustProblem(_ path: String, what: String) -> String? {
        var paths = [path]
        if let real = realPath(path), real != path { paths.append(real) }
        for candidate in paths {
            let components = candidate.split(separator: "/").dropLast()
            var directory = ""
            for component in [Substring("")] + components {
                directory = component.isEmpty ? "/" : (directory == "/" ? "/" : directory + "/") + component
                var status = stat()
                guard stat(directory, &status) == 0 else { continue }
                let place: FileTrust.Place = directory == parentDirectory(of: candidate) ? .finalDirectory : .ancestorDirectory
                if let problem = trustProblem(
                    owner: status.st_uid, mode: UInt16(status.st_mode & 0o7777), place: place, what: "the directory \(directory) of \(what)")
                {
                    return problem
                }
            }
        }
        return nil
    }

    /// The absolute path of an `on_rotate` program the daemon may run: `program` itself when
    /// absolute, else the first executable of that name on `searchPath` (the daemon's PATH).
    /// It must be a regular executable file that root or we own and nobody else can write,
    /// on a trusted path (`pathTrustProblem`): a hook is a command run as the daemon's user.
    static func trustedProgram(_ program: String, searchPath: String?) throws(ValueSyntaxError) -> String {
        var candidates: [String]
        if program.hasPrefix("/") {
            candidates = [program]
        } else {
            let directories = (searchPath ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                .split(separator: ":").filter { $0.hasPrefix("/") }
            candidates = directories.map { "\($0)/\(program)" }.filter { access($0, X_OK) == 0 }
            guard !candidates.isEmpty else {
                throw ValueSyntaxError("program \"\(program)\" is not found on PATH (\(directories.joined(separator: ":"))); give its absolute path")
            }
            candidates = [candidates[0]]
        }
        let resolved = candidates[0]
        var status = stat()
        guard stat(resolved, &status) == 0 else {
            throw ValueSyntaxError("program \(resolved) cannot be used: \(explain(Errno(rawValue: errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG, access(resolved, X_OK) == 0 else {
            throw ValueSyntaxError("program \(resolved) is not an executable regular file")
        }
        if let problem = trustProblem(owner: status.st_uid, mode: UInt16(status.st_mode & 0o777), what: "program \(resolved)") {
            throw ValueSyntaxError(problem)
        }
        if let problem = pathTrustProblem(resolved, what: "program \(resolved)") {
            throw ValueSyntaxError(problem)
        }
        return resolved
    }

    /// The daemon's user, whose files are trusted besides root's: this process's effective uid,
    /// unless a root helper that prepares for the daemon (`polkit-rule`, run by the unit as
    /// root) names the user the daemon will run as, so both trust the same files.
    static var daemonUID: uid_t { daemonUIDOverride.withLock { $0 } ?? ProcessUser.effectiveUID }
    private static let daemonUIDOverride = Mutex<uid_t?>(nil)

    /// Judges files as the daemon running as `uid` will (see `daemonUID`).
    static func trustFiles(asUser uid: uid_t) {
        daemonUIDOverride.withLock { $0 = uid }
    }

    /// nil when `owner` and `mode` pass `FileTrust.daemonInputs` at `place`; else the refusal in words.
    static func trustProblem(owner: uid_t, mode: UInt16, place: FileTrust.Place = .file, what: String) -> String? {
        let me = daemonUID
        switch FileTrust.daemonInputs(daemonUser: me).problem(owner: owner, mode: mode, place: place) {
        case nil:
            return nil
        case .owner(let owner):
            return "refusing \(what): owned by uid \(owner), not by root or by the daemon's user (uid \(me)); whoever owns it decides what the daemon runs and writes"
        case .mode(let permissions):
            return "refusing \(what): writable by group or others (mode \(FileMode(rawValue: permissions))); chmod go-w it"
        }
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
