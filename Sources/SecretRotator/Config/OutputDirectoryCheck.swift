import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `check-config`'s look at the host for every output: its directory exists (or, for the
/// drop directory, the directory the daemon creates it in does), is a directory, is on a
/// file system mounted read-write, and is writable and searchable by the account the daemon
/// writes as. Read only: nothing is created (the daemon's own pre-flight, before every
/// refresh, does try a temp file there).
///
/// Not part of loading the config: the daemon loads a config whose directories appear later
/// (a mount, a service that creates them), and reports an unwritable one per write.
public enum OutputDirectoryCheck {
    /// - Parameter daemon: the daemon's account (the state directory's owner), nil for the
    ///   account running the check.
    /// - Returns: one error per output whose directory the daemon cannot write, located at the
    ///   output's key in the file the app came from.
    public static func problems(_ config: RotatorConfig, daemon: WriterIdentity?) -> [ConfigDiagnostic] {
        let account = daemon ?? WriterIdentity(userID: UserID(rawValue: ProcessUser.effectiveUID), groupID: GroupID(rawValue: ProcessUser.effectiveGID))
        let groups = AccountResolver.groups(of: account.userID, primary: account.groupID)
        var locators: [String: SourceLocator] = [:]
        var diagnostics: [ConfigDiagnostic] = []
        var checked: [String: String?] = [:]
        for (appIndex, app) in config.apps.enumerated() {
            for (outputIndex, output) in app.outputs.enumerated() {
                guard let (parent, _) = AtomicFileWriter.split(output.path) else { continue }
                let problem: String?
                if let cached = checked[parent] {
                    problem = cached
                } else {
                    problem = Self.problem(parent, createdIfMissing: output.inDropDirectory, account: account, groups: groups)
                    checked[parent] = problem
                }
                guard let problem else { continue }
                let file = app.source?.file ?? config.sourcePath
                let appKey = app.source?.keyPath ?? "app[\(appIndex)]"
                let explicit = "\(appKey).output[\(outputIndex)].path"
                if locators[file] == nil, let text = try? ConfigFileReader.read(file).text {
                    locators[file] = SourceLocator(text: text)
                }
                let locator = locators[file]
                let keyPath = locator?.position(of: explicit) != nil ? explicit : appKey
                let position = locator?.position(of: keyPath)
                diagnostics.append(
                    ConfigDiagnostic(
                        severity: .error, file: file, line: position?.line ?? app.source?.line, column: position?.column,
                        keyPath: keyPath, message: "output \(output.path): \(problem)"))
            }
        }
        return diagnostics
    }

    private static func problem(_ directory: String, createdIfMissing: Bool, account: WriterIdentity, groups: Set<GroupID>) -> String? {
        var status = stat()
        if stat(directory, &status) != 0 {
            let error = errno
            if error == ENOENT && createdIfMissing {
                // The daemon creates the drop directory itself, in its parent.
                let parent = ConfigFileReader.parentDirectory(of: directory)
                return problem(parent, createdIfMissing: false, account: account, groups: groups)
                    .map { "the drop directory \(directory) does not exist and cannot be created: \($0)" }
            }
            if error == ENOENT {
                return "directory \(directory) does not exist; create it (writable by the daemon's user \(account.userID.rawValue)) or fix the path"
            }
            return "directory \(directory) cannot be reached: \(ConfigFileReader.explain(Errno(rawValue: error)))"
        }
        guard status.st_mode & S_IFMT == S_IFDIR else { return "\(directory) is not a directory" }
        if VolumeCapacity.of(directory)?.readOnly == true {
            return "directory \(directory) is on a file system mounted read-only"
        }
        let mode = status.st_mode
        let writable: Bool
        if account.userID.rawValue == 0 {
            writable = true
        } else if status.st_uid == account.userID.rawValue {
            writable = mode & 0o300 == 0o300
        } else if groups.contains(GroupID(rawValue: status.st_gid)) {
            writable = mode & 0o030 == 0o030
        } else {
            writable = mode & 0o003 == 0o003
        }
        if !writable {
            return "directory \(directory) (owner \(status.st_uid), group \(status.st_gid), mode \(String(mode & 0o7777, radix: 8))) is not writable by the daemon's user \(account.userID.rawValue); the daemon creates a temp file there and renames it over the output"
        }
        return nil
    }
}
