import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why one output could not be written. Carries the path and the errno by name, never the secret.
public struct OutputError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// The output's own settings are wrong (path, mode, env_key, template).
        case invalidSpec
        /// The secret cannot be represented in this format (for example a control character in `env`).
        case unrepresentable
        /// The parent directory is writable by others than its owner and root, or owned by someone else.
        case unsafeDirectory
        /// Something that is not a regular file (symlink, directory, FIFO, ...) sits at the target path.
        case notRegularFile
        /// The parent directory is missing, unreadable or could not be created.
        case directoryUnavailable
        /// The temporary file could not be created, written, chowned, chmodded or synced.
        case temporaryFileFailed
        /// `rename` over the target failed; the target is unchanged.
        case renameFailed
        /// The target was replaced but the directory could not be synced: readers see the new
        /// content, but it may not survive a power loss. Rewriting is safe.
        case directorySyncFailed
    }

    public let code: Code
    /// The target path the output writes to.
    public let path: String
    /// The failing system call's errno, when there was one.
    public let errno: Errno?
    /// What went wrong, in words, without the secret.
    public let reason: String

    public init(_ code: Code, path: String, errno: Errno? = nil, reason: String) {
        self.code = code
        self.path = path
        self.errno = errno
        self.reason = reason
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
