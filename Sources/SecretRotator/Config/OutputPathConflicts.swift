#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Refuses outputs that would overwrite something the daemon itself depends on, or that name
/// one file twice under two spellings (Architecture, Trust boundary and threat model).
///
/// Found in an adversarial pass: an output path could equal the config file, the access key
/// secret file, a template, another app's state record, or `<state>/lock` (replacing the lock
/// let a second daemon start); and two apps could write one file through a symlinked
/// directory. Comparing strings misses all of these, so outputs are compared by identity:
/// the (device, inode) of the directory the writer's own walk reaches (`SafeDirectory`) plus
/// the file name, and, for files that already exist, their own (device, inode).
///
/// Directories that cannot be reached yet (a drop directory the writer will create) are
/// compared by path only; the write itself reports anything else about them.
struct OutputPathConflicts {
    /// A file the daemon reads and must never write: what it is, for the message.
    struct Protected {
        let what: String
        let path: String
    }

    let protected: [Protected]
    /// Outputs may not be in here or below: records, secrets, requests, the lock.
    let stateDirectory: String
    /// Where the per-app locks live (`AppLocks.directory`): an output there could replace one.
    let lockDirectory: String

    /// - Parameter sinks: the collector of each apps.d file, by path: an app's problems are
    ///   reported in the file it came from (`AppConfig.source`); `sink` for the main file.
    func check(_ apps: [AppConfig], sink: DiagnosticCollector, sinks: [String: DiagnosticCollector] = [:]) {
        let protectedFiles = protected.compactMap { item -> (Protected, FileIdentity, FileIdentity?, String)? in
            guard let real = ConfigFileReader.realPath(item.path), let file = Self.identity(ofFile: real) else { return nil }
            let parent = Self.identity(ofFile: ConfigFileReader.parentDirectory(of: real))
            return (item, file, parent, Self.name(of: real))
        }
        let stateReal = ConfigFileReader.realPath(stateDirectory) ?? stateDirectory
        let stateIdentity = Self.identity(ofFile: stateDirectory)
        var lockIdentities: Set<FileIdentity> = []
        if let lock = Self.identity(ofFile: lockDirectory) { lockIdentities.insert(lock) }
        // The state directory's own entries, each by identity too: a bind mount of
        // `<state>/current` alone was missed by comparing the state directory itself.
        for entry in StateDirectory.ownEntries where entry != "lock" {
            if let identity = Self.identity(ofFile: "\(stateDirectory)/\(entry)") { lockIdentities.insert(identity) }
        }
        let daemonUser = SafeDirectory.daemonUser(stateDirectory: stateDirectory)
        if case .failure(let error) = SafeDirectory.identity(of: stateDirectory, allowUnsafe: false, daemonUser: daemonUser),
            error.code == .unsafeDirectory
        {
            // Its records decide what is written where: the same rule as an output directory.
            sink.error("defaults.state_directory", "state directory: \(error.reason)")
        }

        var seen: [OutputKey: String] = [:]
        // Once per directory, not per output: thousands of apps share the drop directory, and
        // walking it again for each cost about 30 system calls per app at start-up and in
        // every `status`. One check sees one moment of the file system either way.
        var areas: [String: String?] = [:]
        var directories: [String: Result<FileIdentity, OutputError>] = [:]
        for (appIndex, app) in apps.enumerated() {
            let sink = app.source.flatMap { sinks[$0.file] } ?? sink
            let appKey = app.source?.keyPath ?? "app[\(appIndex)]"
            for (outputIndex, output) in app.outputs.enumerated() {
                let explicit = "\(appKey).output[\(outputIndex)].path"
                let keyPath = sink.line(of: explicit) != nil ? explicit : appKey
                if let template = output.templatePath,
                    let problem = Self.daemonArea(ConfigFileReader.parentDirectory(of: template), state: stateIdentity, locks: lockIdentities)
                        ?? (Self.isStateEntry(ConfigFileReader.parentDirectory(of: template), state: stateReal) ? "the state directory" : nil)
                {
                    // A record as a template would copy another app's secret into this output.
                    sink.error(
                        "\(appKey).output[\(outputIndex)].template",
                        "template \(template) is inside \(problem), which only the daemon writes; keep templates with the config")
                }
                if let template = output.templatePath, let identity = Self.identity(ofFile: template) {
                    // A hard link to the key file passes the template's own trust rule (root's,
                    // 0600) and would copy the access key secret into an output.
                    for (item, file, _, _) in protectedFiles where item.what != "template" && file == identity {
                        sink.error(
                            "\(appKey).output[\(outputIndex)].template",
                            "template \(template) is the \(item.what) \(item.path); its content would be copied into an output")
                    }
                }
                guard let (parent, name) = AtomicFileWriter.split(output.path) else { continue }

                let area: String?
                if let known = areas[parent] {
                    area = known
                } else {
                    area = Self.daemonArea(parent, state: stateIdentity, locks: lockIdentities)
                    areas[parent] = area
                }
                if let area {
                    // By identity: a bind mount or another spelling of the state directory.
                    sink.error(keyPath, "output \(output.path) is inside \(area), which only the daemon writes; write outputs elsewhere")
                    continue
                }
                if Self.isStateEntry(parent, state: stateReal) || Self.isStateEntry(parent, state: stateDirectory) {
                    sink.error(
                        keyPath,
                        "output \(output.path) is inside the state directory \(stateDirectory), which holds the daemon's records, secrets and lock; write outputs elsewhere (a subdirectory other than \(StateDirectory.ownEntries.sorted().joined(separator: ", ")) is fine)")
                    continue
                }

                let directory: FileIdentity?
                let directoryKey = "\(output.allowUnsafeDirectory ? 1 : 0)/\(parent)"
                let walked = directories[directoryKey]
                    ?? SafeDirectory.identity(of: parent, allowUnsafe: output.allowUnsafeDirectory, daemonUser: daemonUser)
                directories[directoryKey] = walked
                switch walked {
                case .success(let identity):
                    directory = identity
                case .failure(let error) where error.code == .unsafeDirectory:
                    // A link or a stranger's directory on the way: every write would be refused.
                    sink.error(keyPath, error.reason)
                    continue
                case .failure:
                    // Missing or unreadable now; the writer creates or reports it.
                    directory = nil
                }
                let existing = directory.flatMap { _ in Self.identity(ofEntry: name, in: parent) }
                for (item, file, protectedParent, protectedName) in protectedFiles {
                    let sameEntry = directory != nil && directory == protectedParent && name == protectedName
                    if sameEntry || existing == file {
                        sink.error(
                            keyPath,
                            "output \(output.path) is the \(item.what) \(item.path); the daemon would overwrite what it reads")
                    }
                }
                let key = directory.map { OutputKey.resolved($0, name) } ?? .unresolved(output.path)
                if let first = seen[key] {
                    // Equal strings are reported by AppsSection; this is two spellings of one file.
                    if first != output.path {
                        sink.error(keyPath, "output \(output.path) is the same file as \(first), spelled differently; each file has one writer")
                    }
                } else {
                    seen[key] = output.path
                }
            }
        }
    }

    /// True when a file in `directory` would be the state directory's own: directly in it, or
    /// in or below one of its own subdirectories. Other subdirectories (the default drop
    /// directory `<state>/secrets`) belong to the operator.
    static func isStateEntry(_ directory: String, state: String) -> Bool {
        let state = state == "/" ? "" : state
        if directory == state || (state.isEmpty && directory == "/") { return true }
        guard directory.hasPrefix(state + "/") else { return false }
        let first = directory.dropFirst(state.count + 1).prefix { $0 != "/" }
        return StateDirectory.ownEntries.contains(String(first))
    }

    /// Walks `directory`'s ancestors from `/` comparing identities: inside the lock directory,
    /// directly in the state directory, or in one of its own entries. Nil when none.
    static func daemonArea(_ directory: String, state: FileIdentity?, locks: Set<FileIdentity>) -> String? {
        let components = directory.split(separator: "/").map(String.init)
        var path = ""
        for index in -1..<components.count {
            path = index < 0 ? "/" : (path == "/" ? "/" : path + "/") + components[index]
            guard let identity = identity(ofFile: path) else { return nil }
            if locks.contains(identity) { return "a directory only the daemon writes (the per-app locks or a state directory entry, reached as \(path))" }
            if identity == state {
                let next = index + 1
                if next == components.count || StateDirectory.ownEntries.contains(components[next]) {
                    return "the state directory (reached as \(path))"
                }
            }
        }
        return nil
    }

    private enum OutputKey: Hashable {
        case resolved(FileIdentity, String)
        case unresolved(String)
    }

    private static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    static func identity(ofFile path: String) -> FileIdentity? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// The entry itself, not a link's target: a symlink output is refused by the writer anyway.
    private static func identity(ofEntry name: String, in directory: String) -> FileIdentity? {
        var status = stat()
        let path = directory == "/" ? "/" + name : directory + "/" + name
        guard lstat(path, &status) == 0 else { return nil }
        return FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }
}
