import SystemPackage

/// Final attributes and safety switches for one atomic replacement.
public struct AtomicWriteOptions: Sendable, Hashable {
    /// Permission bits the target ends up with, regardless of the umask.
    public var mode: FilePermissions
    /// Owner to give the file; nil keeps the writer's own uid.
    public var owner: UserID?
    /// Group to give the file; nil keeps the group the kernel assigns.
    public var group: GroupID?
    /// Write even if the parent directory is writable by others than its owner and root.
    public var allowUnsafeDirectory: Bool
    /// If set, a missing parent directory is created (only the last component) with these settings.
    public var createParent: DirectoryCreation?
    /// A further owner whose directories on the way are trusted besides root and the writer
    /// (`SafeDirectory.open`'s `daemonUser`): root writing into the daemon's directories.
    public var trustedOwner: UserID?

    public init(
        mode: FilePermissions = [.ownerRead, .ownerWrite],
        owner: UserID? = nil,
        group: GroupID? = nil,
        allowUnsafeDirectory: Bool = false,
        createParent: DirectoryCreation? = nil,
        trustedOwner: UserID? = nil
    ) {
        self.trustedOwner = trustedOwner
        self.mode = mode
        self.owner = owner
        self.group = group
        self.allowUnsafeDirectory = allowUnsafeDirectory
        self.createParent = createParent
    }
}

/// How the writer creates a missing drop directory.
public struct DirectoryCreation: Sendable, Hashable {
    public var mode: FilePermissions
    public var group: GroupID?

    /// 0750: readers of the group may list and open the secrets, nobody else may look inside.
    public init(mode: FilePermissions = FilePermissions(rawValue: 0o750), group: GroupID? = nil) {
        self.mode = mode
        self.group = group
    }
}
