import SystemPackage

/// Why the state directory could not be prepared, read or written. Carries the path and the
/// errno by name (ENOSPC, EDQUOT, EIO, EROFS...), never a secret. The code is kept behind a
/// small struct so new cases are not a breaking change (the style of swift-service-lifecycle's
/// `ServiceRunnerError`).
public struct StateDirectoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case unavailable, recordWriteFailed, recordRemoveFailed, encodingFailed, corruptDatabase
        }
        let base: Base

        /// The directory (or one of its subdirectories) is missing and cannot be created.
        public static let unavailable = Code(base: .unavailable)
        /// A record could not be made durable; the previous record is unchanged.
        public static let recordWriteFailed = Code(base: .recordWriteFailed)
        /// A record could not be removed.
        public static let recordRemoveFailed = Code(base: .recordRemoveFailed)
        /// A record could not be encoded (a bug, never a secret in the message).
        public static let encodingFailed = Code(base: .encodingFailed)

        /// The state database is not a database SQLite can read (SQLITE_NOTADB, SQLITE_CORRUPT).
        public static let corruptDatabase = Code(base: .corruptDatabase)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let path: String
    public let errno: Errno?
    public let message: String
    /// The lower-level error: the atomic writer's `OutputError`, SQLite's `DatabaseError`...
    /// Not for logs: a SQLite error may quote its statement; `message` is what to show.
    public let cause: (any Error)?
    /// Where in our code the error was raised, for bug reports (like NIO's FileSystemError).
    public let location: String

    public init(
        _ code: Code, path: String, errno: Errno? = nil, message: String, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.path = path
        self.errno = errno ?? (cause as? OutputError)?.errno
        self.message = message
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    /// The errno's symbolic name, e.g. "ENOSPC", when there is one.
    public var errnoName: String? { errno.map(OutputError.name(of:)) }

    public var description: String {
        var text = "state directory: \(path): \(message)"
        if let errno {
            text += ": \(OutputError.name(of: errno)) (\(errno.description))"
        }
        return text
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.path == rhs.path && lhs.errno == rhs.errno && lhs.message == rhs.message
    }
}
