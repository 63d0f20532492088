import TOMLKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A config that passed validation, plus the warnings it produced (e.g. an inline secret in a
/// group-readable file): usable, but worth telling the operator about.
public struct LoadedConfig: Sendable {
    public let config: RotatorConfig
    public let warnings: [ConfigDiagnostic]
}

/// Turns a TOML file into a `RotatorConfig`, or into every error the file contains.
///
/// Validation never stops at the first problem: operators fix config in one edit, not ten
/// round trips. Nothing here touches the disk except to read the files the config names.
public struct ConfigLoader: Sendable {
    public var environment: [String: String]
    /// False for commands that only look (`check-config`, `status`): they never call GenAuth,
    /// so a systemd credential that only exists inside the unit is a warning, not an error.
    public var accessKeySecretNeeded: Bool
    /// True for commands that never call GenAuth nor judge the key (`status`, a request sent
    /// to a running daemon): the access key secret is not read at all, so an unreadable key
    /// file (EACCES for an unprivileged user) or a credential that exists only inside the unit
    /// is neither an error nor a warning. Its source must still be configured.
    public var accessKeySecretIgnored = false
    /// The files and account names the config refers to; the disk and NSS unless replaced.
    var host: ConfigHost = .system

    public init(environment: [String: String] = ProcessEnvironment.current, accessKeySecretNeeded: Bool = true) {
        self.environment = environment
        self.accessKeySecretNeeded = accessKeySecretNeeded
    }

    /// Judges the config's files (owner rule) as the daemon running as `uid` will: for a root
    /// helper that prepares for the daemon (`polkit-rule`), which must trust the same files.
    public static func judgeFiles(asDaemonUser uid: uid_t) {
        ConfigFileReader.trustFiles(asUser: uid)
    }

    /// A loader that never reads the access key secret; see `accessKeySecretIgnored`.
    public static func withoutAccessKeySecret(environment: [String: String] = ProcessEnvironment.current) -> ConfigLoader {
        var loader = ConfigLoader(environment: environment, accessKeySecretNeeded: false)
        loader.accessKeySecretIgnored = true
        return loader
    }

    /// 1m, unless $SECRET_ROTATOR_MINIMUM_INTERVAL (tests and demos only) says otherwise.
    var minimumInterval: Duration {
        guard let text = environment[ConfigSchema.minimumIntervalVariable],
            let value = try? DurationSyntax.parse(text), value > .zero
        else { return ConfigSchema.minimumInterval }
        return value
    }

    public func load(path: String) throws(ConfigError) -> LoadedConfig {
        let contents: ConfigFileReader.Contents
        do {
            contents = try ConfigFileReader.readTrusted(path, what: "config file", followSymlinks: true)
        } catch {
            throw ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: path, line: nil, column: nil, keyPath: "",
                    message: error.message)
            ])
        }
        let appsFiles = try Self.readAppsDirectory(Self.appsDirectory(forConfig: path))
        return try load(text: contents.text, path: path, fileMode: contents.mode, appsFiles: appsFiles)
    }

    /// One file of apps.d: its path and text.
    public struct AppsFile: Sendable {
        public let path: String
        public let text: String

        public init(path: String, text: String) {
            self.path = path
            self.text = text
        }
    }

    /// `apps.d` beside the config file: `/etc/secret-rotator/apps.d` for the default config.
    public static func appsDirectory(forConfig path: String) -> String {
        let parent = ConfigFileReader.parentDirectory(of: path)
        return parent == "/" ? "/apps.d" : "\(parent)/apps.d"
    }

    /// The `*.toml` files of `directory` in name order (bytewise, as `ls` in the C locale),
    /// each read under the config file's trust rule (owned by root or the daemon's user, not
    /// writable by group or others, nor any directory above): their hooks run as the daemon.
    /// Hidden files (an editor's `.billing.toml.swp`) are skipped. No directory: no files.
    ///
    /// - Throws: `ConfigError` naming the directory or the file that cannot be read.
    static func readAppsDirectory(_ directory: String) throws(ConfigError) -> [AppsFile] {
        func failure(_ file: String, _ message: String) -> ConfigError {
            ConfigError(diagnostics: [
                ConfigDiagnostic(severity: .error, file: file, line: nil, column: nil, keyPath: "", message: message)
            ])
        }
        let entries: [DirectoryListing.Entry]
        do {
            entries = try DirectoryListing.entries(atPath: directory)
        } catch let error where error == .noSuchFileOrDirectory {
            return []
        } catch {
            throw failure(directory, "cannot list the apps.d directory: \(ConfigFileReader.explain(error))")
        }
        let names = entries.filter { $0.name.hasSuffix(".toml") && !$0.name.hasPrefix(".") }
            .map(\.name).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        if let odd = entries.first(where: { !$0.isExactName && $0.name.hasSuffix(".toml") }) {
            throw failure(directory, "a file name in apps.d is not valid UTF-8 (shown as \"\(odd.name)\"); rename it")
        }
        // A name is printed in every diagnostic about its file: one with a line break or an
        // escape sequence would forge lines or drive the operator's terminal.
        if let odd = names.first(where: { $0.unicodeScalars.contains { scalar in
            scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.properties.generalCategory == .format } })
        {
            throw failure(directory, "a file name in apps.d holds a control character (shown escaped: \(LogfmtLogHandler.quoted(odd))); rename it")
        }
        if names.count > ConfigInputLimits.apps {
            throw failure(directory, "\(names.count) files; apps.d holds at most \(ConfigInputLimits.apps)")
        }
        var files: [AppsFile] = []
        for name in names {
            let path = "\(directory)/\(name)"
            do {
                let contents = try ConfigFileReader.readTrusted(path, what: "apps.d file", followSymlinks: true)
                files.append(AppsFile(path: path, text: contents.text))
            } catch {
                throw failure(path, error.message)
            }
        }
        return files
    }

    /// - Parameter fileMode: the config file's permissions, used to judge an inline secret.
    /// - Parameter appsFiles: the files of apps.d, read after the main file in this order;
    ///   each may hold only `[[app]]` tables.
    public func load(text: String, path: String, fileMode: FileMode? = nil, appsFiles: [AppsFile] = []) throws(ConfigError) -> LoadedConfig {
        if let violation = ConfigInputLimits.check(text) {
            throw ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: path, line: violation.line, column: violation.column, keyPath: "",
                    message: violation.message)
            ])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let line = error.source.begin.line
            throw ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: path, line: line, column: error.source.begin.column,
                    keyPath: "", message: Self.syntaxMessage(error.description, line: line, of: text))
            ])
        } catch {
            throw ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: path, line: nil, column: nil, keyPath: "",
                    message: "TOML syntax error: \(error)")
            ])
        }
        // TOMLKit frees no parsed document (its TOMLTable has no deinit): emptying each root when
        // the load is done frees its tree, most of what every load and reload leaked.
        var parsed = [root]
        defer { for document in parsed { document.clear() } }
        if root.isEmpty {
            // The packaged conffile is the annotated example with every line commented out:
            // one clear sentence instead of "missing [genauth]" plus "no [[app]]".
            throw ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: path, line: nil, column: nil, keyPath: "",
                    message: "the file has no settings (every line is a comment or blank): configure [genauth] and at least one [[app]], as the commented example shows, then check it with `secret-rotator check-config`")
            ])
        }
        let sink = DiagnosticCollector(file: path, locator: SourceLocator(text: text))
        let reader = TableReader(table: root, path: "", sink: sink)
        reader.reportUnknownKeys(known: ConfigSchema.topLevel, hint: ["apps": "did you mean `app`? write each app as [[app]]"])
        var appReaders = reader.tableArray("app") ?? []
        var appsSinks: [DiagnosticCollector] = []
        for file in appsFiles {
            switch Self.appReaders(of: file) {
            case .success(let (fileSink, readers, fileRoot)):
                appsSinks.append(fileSink)
                appReaders += readers
                parsed.append(fileRoot)
            case .failure(let error):
                throw ConfigError(diagnostics: sink.diagnostics + error.diagnostics)
            }
        }
        if appReaders.count > ConfigInputLimits.apps {
            sink.error(
                "app[\(ConfigInputLimits.apps)]",
                "\(appReaders.count) [[app]] entries\(appsFiles.isEmpty ? "" : " (this file and apps.d)"); one config holds at most \(ConfigInputLimits.apps) (split the apps across hosts)")
            throw ConfigError(diagnostics: sink.diagnostics)
        }

        let genauth = GenAuthSection(
            environment: environment, configFileMode: fileMode, secretNeeded: accessKeySecretNeeded,
            secretIgnored: accessKeySecretIgnored, host: host)
            .read(reader.subtable("genauth"), sink: sink)
        let defaults = DefaultsSection(minimumInterval: minimumInterval, host: host).read(reader.subtable("defaults"), sink: sink)
        let apps = AppsSection(defaults: defaults, minimumInterval: minimumInterval, host: host).read(appReaders, sink: sink)
        let metrics = MetricsSection().read(
            reader.subtable("metrics"), stateDirectory: defaults.stateDirectory, apps: apps, sink: sink)
        let cluster = ClusterSection(
            host: host, accessKeyID: genauth?.accessKeyID, environment: environment, secretNeeded: accessKeySecretNeeded,
            secretIgnored: accessKeySecretIgnored
        ).read(reader.subtable("cluster"), sink: sink)

        if let genauth, let textfile = metrics.textfile {
            // The metrics writer replaces its file like an output: never one the daemon reads
            // (pointed at the config, the key file or a template, it once replaced them).
            var read = Self.protectedFiles(configPath: path, stateDirectory: defaults.stateDirectory, genauth: genauth, apps: apps, cluster: cluster)
            read += appsFiles.map { OutputPathConflicts.Protected(what: "apps.d file", path: $0.path) }
            read += apps.compactMap { app in
                app.onRotate?.first.flatMap { $0.hasPrefix("/") ? OutputPathConflicts.Protected(what: "hook program", path: $0) : nil }
            }
            if let item = read.first(where: { Self.sameFile(textfile, $0.path) }) {
                sink.error("metrics.textfile", "\"\(textfile)\" is the \(item.what) \(item.path); the metrics writer would replace it")
            }
        }

        if let genauth {
            OutputPathConflicts(
                protected: Self.protectedFiles(configPath: path, stateDirectory: defaults.stateDirectory, genauth: genauth, apps: apps, cluster: cluster),
                stateDirectory: defaults.stateDirectory,
                lockDirectory: AppLocks.defaultDirectory(environment: environment)
            ).check(apps, sink: sink, sinks: Dictionary(appsSinks.map { ($0.file, $0) }) { first, _ in first })
        }
        // Each file's findings in its own order, the main file first, then apps.d by name.
        let diagnostics = ([sink] + appsSinks).flatMap { ConfigDiagnostic.inFileOrder($0.diagnostics) }
        guard !diagnostics.contains(where: { $0.severity == .error }), let genauth else {
            throw ConfigError(diagnostics: diagnostics)
        }
        return LoadedConfig(
            config: RotatorConfig(sourcePath: path, genauth: genauth, defaults: defaults, apps: apps, metrics: metrics, cluster: cluster),
            warnings: diagnostics)
    }

    /// The `[[app]]` tables of one apps.d file, with the collector its diagnostics go to, or
    /// the error that makes the file unreadable as TOML.
    /// The `[[app]]` readers of one apps.d file, and its parsed document, which the caller
    /// empties (`clear()`) once the load is done: the readers point into it.
    private static func appReaders(of file: AppsFile) -> Result<(DiagnosticCollector, [TableReader], TOMLTable), ConfigError> {
        if let violation = ConfigInputLimits.check(file.text) {
            return .failure(ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: file.path, line: violation.line, column: violation.column, keyPath: "",
                    message: violation.message)
            ]))
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: file.text)
        } catch let error as TOMLParseError {
            let line = error.source.begin.line
            return .failure(ConfigError(diagnostics: [
                ConfigDiagnostic(
                    severity: .error, file: file.path, line: line, column: error.source.begin.column,
                    keyPath: "", message: syntaxMessage(error.description, line: line, of: file.text))
            ]))
        } catch {
            return .failure(ConfigError(diagnostics: [
                ConfigDiagnostic(severity: .error, file: file.path, line: nil, column: nil, keyPath: "", message: "TOML syntax error: \(error)")
            ]))
        }
        let sink = DiagnosticCollector(file: file.path, locator: SourceLocator(text: file.text))
        let reader = TableReader(table: root, path: "", sink: sink)
        let elsewhere = "only [[app]] tables belong in apps.d files; [genauth], [defaults], [metrics] and [cluster] stay in the main config file"
        reader.reportUnknownKeys(known: ["app"], hint: ["genauth": elsewhere, "defaults": elsewhere, "metrics": elsewhere, "cluster": elsewhere, "apps": "did you mean `app`? write each app as [[app]]"])
        let readers = reader.tableArray("app") ?? []
        if readers.isEmpty && !root.contains(key: "app") {
            sink.warning("app", "no [[app]] entries in this apps.d file")
        }
        return .success((sink, readers, root))
    }

    /// The same file by name, by resolved path, or by (device, inode) when both exist.
    static func sameFile(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        if let realA = ConfigFileReader.realPath(a), let realB = ConfigFileReader.realPath(b), realA == realB { return true }
        var first = stat()
        var second = stat()
        return stat(a, &first) == 0 && stat(b, &second) == 0 && first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }

    /// Files the daemon reads, which no output may replace.
    static func protectedFiles(
        configPath: String, stateDirectory: String, genauth: GenAuthSettings, apps: [AppConfig], cluster: ClusterSettings? = nil
    ) -> [OutputPathConflicts.Protected] {
        var files = [
            OutputPathConflicts.Protected(what: "config file", path: configPath),
            // By identity as well: a bind mount of the lock file elsewhere is still the lock.
            OutputPathConflicts.Protected(what: "state directory's lock", path: StateDirectory(path: stateDirectory).lockPath),
        ]
        switch genauth.accessKeySecretSource {
        case .file(let keyPath), .credential(_, let keyPath):
            files.append(.init(what: "access key secret file", path: keyPath))
        case .environment, .inline:
            break
        }
        if let ca = genauth.caFile { files.append(.init(what: "CA file", path: ca)) }
        if case .file(let passwordPath) = cluster?.passwordSource { files.append(.init(what: "etcd password file", path: passwordPath)) }
        for app in apps {
            for output in app.outputs {
                if let template = output.templatePath { files.append(.init(what: "template", path: template)) }
            }
        }
        return files
    }

    /// toml++'s messages may quote what it read, so on a line that sets a secret key the
    /// message is replaced: the key and position are enough to find the mistake.
    ///
    /// Redacted when the error is on the secret key's line, or below it in the same table when
    /// its value opens a multi-line string (whose errors are reported on later lines). Too
    /// much redaction costs a detail; too little could print part of the secret.
    static func syntaxMessage(_ description: String, line: Int, of text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard line >= 1, line <= lines.count else { return "TOML syntax error: \(description)" }
        for (offset, candidate) in lines[..<line].reversed().enumerated() {
            let trimmed = candidate.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("[") { break }
            guard let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<equals].filter { $0 != " " && $0 != "\t" }
            // `access_key_secret`, `"access_key_secret"` or `genauth.access_key_secret`.
            let bare = String(key.split(separator: ".").last ?? Substring(key)).filter { $0 != "\"" && $0 != "'" }
            guard ConfigSchema.secretKeys.contains(bare) else { continue }
            let value = trimmed[trimmed.index(after: equals)...].drop { $0 == " " || $0 == "\t" }
            if offset == 0 || value.hasPrefix("\"\"\"") || value.hasPrefix("'''") {
                return "TOML syntax error in the value of \(bare) (details not shown: they could quote the secret); write it as a quoted string"
            }
        }
        return "TOML syntax error: \(description)"
    }
}
