import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why one output could not be written. Carries the path and the errno by name, never the
/// secret. In the shape of NIO's `FileSystemError`: a code open to new members, the reason in
/// words, the underlying error (`cause`) and where in our code it was raised (`location`).
public struct OutputError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, as logs and metrics label it ("unsafeDirectory").
        public let rawValue: String

        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The output's own settings are wrong (path, mode, env_key, template).
        public static let invalidSpec = Code("invalidSpec")
        /// The secret cannot be represented in this format (for example a control character in `env`).
        public static let unrepresentable = Code("unrepresentable")
        /// The parent directory is writable by others than its owner and root, or owned by someone else.
        public static let unsafeDirectory = Code("unsafeDirectory")
        /// Something that is not a regular file (symlink, directory, FIFO, ...) sits at the target path.
        public static let notRegularFile = Code("notRegularFile")
        /// The parent directory is missing, unreadable or could not be created.
        public static let directoryUnavailable = Code("directoryUnavailable")
        /// The temporary file could not be created, written, chowned, chmodded or synced.
        public static let temporaryFileFailed = Code("temporaryFileFailed")
        /// `rename` over the target failed; the target is unchanged.
        public static let renameFailed = Code("renameFailed")
        /// The target was replaced but the directory could not be synced: readers see the new
        /// content, but it may not survive a power loss. Rewriting is safe.
        public static let directorySyncFailed = Code("directorySyncFailed")
        /// The write never ran: the process is shutting down and its I/O threads are gone.
        public static let notWritten = Code("notWritten")
        /// The output's owner or group names an account this host does not resolve (any more).
        public static let accountUnresolved = Code("accountUnresolved")

        public var description: String { rawValue }
    }

    public let code: Code
    /// The target path the output writes to.
    public let path: String
    /// The failing system call's errno, when there was one.
    public let errno: Errno?
    /// What went wrong, in words, without the secret.
    public let reason: String
    /// The lower-level error, when another layer's failure caused this one.
    public let cause: (any Error)?
    /// `file:line` where the error was raised, for bug reports.
    public let location: String

    public init(
        _ code: Code, path: String, errno: Errno? = nil, reason: String, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.path = path
        self.errno = errno
        self.reason = reason
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    /// Equal when they say the same about the same path; where they were raised does not count.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.path == rhs.path && lhs.errno == rhs.errno && lhs.reason == rhs.reason
    }

    /// True when readers now see the new content despite the error.
    public var targetReplaced: Bool { code == .directorySyncFailed }

    public var description: String {
        var text = "\(path): \(reason)"
        if let errno {
            text += ": \(Self.name(of: errno)) (\(errno.description))"
        }
        return text
    }

    /// The symbolic name of an errno, because operators search for "EROFS", not for its number.
    public static func name(of errno: Errno) -> String {
        switch errno.rawValue {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case ENXIO: "ENXIO"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case EXDEV: "EXDEV"
        case ENOTDIR: "ENOTDIR"
        case EISDIR: "EISDIR"
        case EINVAL: "EINVAL"
        case ENFILE: "ENFILE"
        case EMFILE: "EMFILE"
        case ETXTBSY: "ETXTBSY"
        case EFBIG: "EFBIG"
        case ENOSPC: "ENOSPC"
        case EROFS: "EROFS"
        case EMLINK: "EMLINK"
        case ENAMETOOLONG: "ENAMETOOLONG"
        case ELOOP: "ELOOP"
        case EDQUOT: "EDQUOT"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case ESTALE: "ESTALE"
        default: "errno \(errno.rawValue)"
        }
    }
}
