import TOMLKit

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
    /// The files and account names the config refers to; the disk and NSS unless replaced.
    var host: ConfigHost = .system

    public init(environment: [String: String] = ProcessEnvironment.current, accessKeySecretNeeded: Bool = true) {
        self.environment = environment
        self.accessKeySecretNeeded = accessKeySecretNeeded
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
        return try load(text: contents.text, path: path, fileMode: contents.mode)
    }

    /// - Parameter fileMode: the config file's permissions, used to judge an inline secret.
    public func load(text: String, path: String, fileMode: FileMode? = nil) throws(ConfigError) -> LoadedConfig {
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
        let sink = DiagnosticCollector(file: path, locator: SourceLocator(text: text))
        if let count = root["app"]?.array?.count, count > ConfigInputLimits.apps {
            sink.error(
                "app[\(ConfigInputLimits.apps)]",
                "\(count) [[app]] entries; one config holds at most \(ConfigInputLimits.apps) (split the apps across hosts)")
            throw ConfigError(diagnostics: sink.diagnostics)
        }
        let reader = TableReader(table: root, path: "", sink: sink)
        reader.reportUnknownKeys(known: ConfigSchema.topLevel, hint: ["apps": "did you mean `app`? write each app as [[app]]"])

        let genauth = GenAuthSection(
            environment: environment, configFileMode: fileMode, secretNeeded: accessKeySecretNeeded, host: host)
            .read(reader.subtable("genauth"), sink: sink)
        let defaults = DefaultsSection(minimumInterval: minimumInterval, host: host).read(reader.subtable("defaults"), sink: sink)
        let apps = AppsSection(defaults: defaults, minimumInterval: minimumInterval, host: host).read(reader.tableArray("app"), sink: sink)
        let metrics = MetricsSection().read(
            reader.subtable("metrics"), stateDirectory: defaults.stateDirectory, apps: apps, sink: sink)

        if let genauth {
            OutputPathConflicts(
                protected: Self.protectedFiles(configPath: path, stateDirectory: defaults.stateDirectory, genauth: genauth, apps: apps),
                stateDirectory: defaults.stateDirectory,
                lockDirectory: AppLocks.defaultDirectory(environment: environment)
            ).check(apps, sink: sink)
        }
        guard !sink.hasErrors, let genauth else {
            throw ConfigError(diagnostics: sink.diagnostics)
        }
        return LoadedConfig(
            config: RotatorConfig(sourcePath: path, genauth: genauth, defaults: defaults, apps: apps, metrics: metrics),
            warnings: ConfigDiagnostic.inFileOrder(sink.diagnostics))
    }

    /// Files the daemon reads, which no output may replace.
    static func protectedFiles(
        configPath: String, stateDirectory: String, genauth: GenAuthSettings, apps: [AppConfig]
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
