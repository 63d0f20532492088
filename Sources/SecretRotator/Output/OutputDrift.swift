import SystemPackage

/// How an output on disk differs from what `OutputWriter.write` would leave there for the
/// same document and spec; see `OutputWriter.inspect(_:at:)`.
///
/// One difference is reported, the first in this order: the file's existence and type, then
/// whether it can be read, its content, its mode, its owner, its group. Every case carries
/// only metadata (types, permission bits, ids, errno), never the secret or file content.
public enum OutputDrift: Sendable, Equatable, CustomStringConvertible {
    /// Nothing at the path, or its parent directory is missing.
    case missing
    /// Something other than a regular file sits at the path (a symlink is not followed).
    /// The writer refuses to replace it, so rewriting does not repair this drift.
    case notRegularFile(found: FileType)
    /// The bytes differ from the rendered document (length or content).
    case content
    /// The permission bits (`st_mode & 0o7777`) differ from `OutputSpec.mode`.
    case mode(found: FilePermissions)
    /// The owner differs from `OutputSpec.owner`, or, when the spec sets none, from the
    /// writer's effective uid (the writer leaves the file owned by whoever created it).
    case owner(found: UserID)
    /// The group differs from `OutputSpec.group`, or, when the spec sets none, from the group
    /// the kernel gives a new file there: the parent's group if the parent is setgid, else the
    /// writer's effective gid.
    case group(found: GroupID)
    /// The file or its directory could not be opened, inspected or read: the errno.
    case unreadable(Errno)
    /// The spec is invalid or the secret cannot be rendered in its format, so there is no
    /// expected content to compare with; a write would fail with this same error.
    case invalidOutput(OutputError)

    /// One word for logs and metrics: `missing`, `not-regular-file`, `content`, `mode`,
    /// `owner`, `group`, `unreadable` or `invalid-output`.
    public var cause: String {
        switch self {
        case .missing: "missing"
        case .notRegularFile: "not-regular-file"
        case .content: "content"
        case .mode: "mode"
        case .owner: "owner"
        case .group: "group"
        case .unreadable: "unreadable"
        case .invalidOutput: "invalid-output"
        }
    }

    /// Whether a consumer reading the path could have read something else than the secret (or
    /// nothing): the hook runs after repairing such drift. Mode, owner and group drift change
    /// who may read, not what is read.
    public var changesContent: Bool {
        switch self {
        case .missing, .notRegularFile, .content: true
        case .mode, .owner, .group, .unreadable, .invalidOutput: false
        }
    }

    /// The cause with what was found, e.g. `mode 0644` or `unreadable: EACCES`. No secret.
    public var description: String {
        switch self {
        case .missing: "missing"
        case .notRegularFile(let type): "not-regular-file: \(Self.describe(type))"
        case .content: "content differs"
        case .mode(let found): "mode 0\(String(found.rawValue, radix: 8))"
        case .owner(let found): "owner uid \(found.rawValue)"
        case .group(let found): "group gid \(found.rawValue)"
        case .unreadable(let errno): "unreadable: \(OutputError.name(of: errno))"
        case .invalidOutput(let error): "invalid-output: \(error.code.rawValue)"
        }
    }

    private static func describe(_ type: FileType) -> String {
        switch type {
        case .symbolicLink: "symbolic link"
        case .directory: "directory"
        case .fifo: "FIFO"
        case .socket: "socket"
        case .characterSpecial: "character device"
        case .blockSpecial: "block device"
        default: "file type 0o\(String(type.rawValue, radix: 8))"
        }
    }
}
