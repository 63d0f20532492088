import SystemPackage

/// One resolved output of an app: where, in which format, with which attributes.
///
/// The config layer builds these: it resolves user and group names to ids
/// (`AccountResolver`), applies `[defaults]`, and loads template files so that `template`
/// holds the template *text* (the writer never reads template files itself).
public struct OutputSpec: Sendable, Hashable {
    /// Absolute path of the target file.
    public var path: String
    public var format: OutputFormat
    /// Variable name for `env`.
    public var envKey: String?
    /// Template text for `template`.
    public var template: String?
    /// Final permission bits, applied with fchmod regardless of the umask.
    public var mode: FilePermissions
    public var owner: UserID?
    public var group: GroupID?
    /// Only for `raw`: end the file with "\n".
    public var trailingNewline: Bool
    /// Permits a mode with read (or execute) bits for others.
    public var allowWorldReadable: Bool
    /// Permits a parent directory writable by group or others, or owned by a third user.
    public var allowUnsafeDirectory: Bool
    /// Set for drop-directory outputs: the parent directory is created if missing.
    public var createParent: DirectoryCreation?

    public init(
        path: String,
        format: OutputFormat = .raw,
        envKey: String? = nil,
        template: String? = nil,
        mode: FilePermissions = FilePermissions(rawValue: 0o600),
        owner: UserID? = nil,
        group: GroupID? = nil,
        trailingNewline: Bool = true,
        allowWorldReadable: Bool = false,
        allowUnsafeDirectory: Bool = false,
        createParent: DirectoryCreation? = nil
    ) {
        self.path = path
        self.format = format
        self.envKey = envKey
        self.template = template
        self.mode = mode
        self.owner = owner
        self.group = group
        self.trailingNewline = trailingNewline
        self.allowWorldReadable = allowWorldReadable
        self.allowUnsafeDirectory = allowUnsafeDirectory
        self.createParent = createParent
    }

    /// The output an app without `[[app.output]]` gets: `<directory>/<name>`, raw. The drop
    /// directory is created on first write with mode 0750 and `group`.
    public static func dropDirectory(
        _ directory: String,
        name: String,
        mode: FilePermissions = FilePermissions(rawValue: 0o640),
        owner: UserID? = nil,
        group: GroupID? = nil,
        allowUnsafeDirectory: Bool = false
    ) -> OutputSpec {
        OutputSpec(
            path: FilePath(directory).appending(name).string,
            format: .raw,
            mode: mode,
            owner: owner,
            group: group,
            allowUnsafeDirectory: allowUnsafeDirectory,
            createParent: DirectoryCreation(group: group)
        )
    }

    /// Whether `name` can be a file name in the drop directory: one plain, visible path component.
    public static func isValidDropName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
            && name.utf8.count <= 255
    }

    var writeOptions: AtomicWriteOptions {
        AtomicWriteOptions(
            mode: mode, owner: owner, group: group, allowUnsafeDirectory: allowUnsafeDirectory,
            createParent: createParent
        )
    }

    /// Whether `path` holds "//": a byte scan, as `String.contains` goes through Foundation's
    /// much slower substring search, once per output of every app a config lists.
    static func hasDoubleSlash(_ path: String) -> Bool {
        var previous: UInt8 = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "/") && previous == byte { return true }
            previous = byte
        }
        return false
    }

    /// Everything wrong with this output's settings, in words, for `check-config`; empty means
    /// the writer will accept it. The writer checks the same before every write.
    public func problems() -> [String] {
        var problems: [String] = []
        let filePath = FilePath(path)
        if !filePath.isAbsolute {
            problems.append("path \"\(path)\" must be absolute")
        } else if path.hasSuffix("/") || filePath.lastComponent?.kind != .regular {
            problems.append("path \"\(path)\" must name a file, not a directory")
        } else if filePath.lexicallyNormalized() != filePath || Self.hasDoubleSlash(path) {
            problems.append("path \"\(path)\" must be normalized (no \".\", \"..\" or \"//\")")
        } else if let name = filePath.lastComponent?.string, TemporaryFileName.base(ofTemporary: name) != nil {
            problems.append("path \"\(path)\" looks like one of secret-rotator's temporary files")
        }
        if path.utf8.contains(0) {
            problems.append("path contains a NUL byte")
        }

        switch format {
        case .env:
            if let envKey {
                if !OutputRenderer.isValidEnvKey(envKey) {
                    problems.append("env_key \"\(envKey)\" is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
                }
            } else {
                problems.append("format \"env\" needs env_key")
            }
        case .template:
            if let template {
                problems += TemplateValidator.problems(in: template).map { "template: \($0)" }
            } else {
                problems.append("format \"template\" needs template")
            }
        case .raw, .json:
            break
        }
        if envKey != nil && format != .env {
            problems.append("env_key only applies to format \"env\"")
        }
        if template != nil && format != .template {
            problems.append("template only applies to format \"template\"")
        }

        let bits = mode.rawValue
        let octal = "0" + String(bits, radix: 8)
        if bits & ~0o777 != 0 {
            problems.append("mode \(octal) has setuid, setgid or sticky bits; a secret file needs none")
        } else if bits & 0o002 != 0 {
            problems.append("mode \(octal) makes the secret writable by everyone")
        } else if bits & 0o005 != 0 && !allowWorldReadable {
            problems.append("mode \(octal) makes the secret readable by everyone; set allow_world_readable = true if that is intended")
        }
        return problems
    }
}
