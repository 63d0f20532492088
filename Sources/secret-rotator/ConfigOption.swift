import ArgumentParser
import SecretRotator
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The `--config` option every command that reads the config shares.
struct ConfigOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Path of the TOML config file.",
            discussion: "Default: $\(ConfigSchema.configPathVariable), else \(ConfigSchema.defaultConfigPath).",
            valueName: "path"))
    var config: String?

    var path: String {
        if let config { return config }
        if let fromEnvironment = ProcessEnvironment.current[ConfigSchema.configPathVariable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return ConfigSchema.defaultConfigPath
    }

    /// The validated config, or every error on stderr and exit 78 (EX_CONFIG).
    /// - Parameter accessKeySecretNeeded: false for commands that never call GenAuth.
    func loadConfig(accessKeySecretNeeded: Bool = true) throws -> RotatorConfig {
        try loadConfig(with: ConfigLoader(accessKeySecretNeeded: accessKeySecretNeeded))
    }

    /// - Parameters:
    ///   - printWarnings: false for `status` and requests to a running daemon, which judge
    ///     nothing about the config (check-config's job) and should print only their answer.
    ///   - onError: what to print instead of the diagnostics (status --nagios prints one line).
    func loadConfig(
        with loader: ConfigLoader, printWarnings: Bool = true, onError: ((ConfigError) -> Void)? = nil
    ) throws -> RotatorConfig {
        do {
            let loaded = try loader.load(path: path)
            if printWarnings {
                for warning in loaded.warnings {
                    StandardError.write(warning.description)
                }
            }
            return loaded.config
        } catch {
            if let onError {
                onError(error)
            } else {
                for diagnostic in error.diagnostics {
                    StandardError.write(diagnostic.description)
                }
                StandardError.write("\(path): \(Plural.count(error.errors.count, "error")); the config is not valid.")
            }
            throw ExitCode(78)
        }
    }
}

/// `--state-dir`, shared by the commands that use the daemon's journal.
struct StateDirectoryOption: ParsableArguments {
    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp("State directory (journal and lock).", discussion: "Default: defaults.state_directory from the config.", valueName: "path"))
    var stateDirectory: String?

    func path(for config: RotatorConfig) -> String {
        stateDirectory ?? config.defaults.stateDirectory
    }

    /// The daemon's account is the state directory's owner (systemd's StateDirectory= gives
    /// it to User=): outputs without an explicit owner, and their directories, are judged
    /// against it rather than against root, who runs `status` or `check-config`. Nil when
    /// the directory does not exist.
    static func daemonAccount(stateDirectory: String) -> WriterIdentity? {
        var status = stat()
        guard stat(stateDirectory, &status) == 0 else { return nil }
        return WriterIdentity(userID: UserID(rawValue: status.st_uid), groupID: GroupID(rawValue: status.st_gid))
    }

    func validate() throws {
        // The daemon's own rule for defaults.state_directory: a relative path would depend on
        // the working directory, and a mistyped one would silently show "nothing has run".
        if let stateDirectory, !stateDirectory.hasPrefix("/") {
            throw ValidationError("--state-dir: \"\(stateDirectory)\" is a relative path; give an absolute path such as /var/lib/secret-rotator")
        }
    }
}

/// "1 error", "2 errors": counts in messages agree with their number.
enum Plural {
    static func count(_ number: Int, _ noun: String, plural: String? = nil) -> String {
        "\(number) \(number == 1 ? noun : plural ?? noun + "s")"
    }
}

/// App names or ids given on the command line, resolved against the config.
enum AppSelection {
    /// The apps in the order given (each once), or a message naming the first unknown one with
    /// the closest configured name, for exit 64.
    static func resolve(_ names: [String], in config: RotatorConfig) -> Result<[AppConfig], ValidationMessage> {
        var apps: [AppConfig] = []
        var chosen: Set<String> = []
        let lookup = AppLookup(config.apps)
        for name in names {
            guard let app = lookup.app(named: name) else {
                let known = config.apps.map(\.name)
                var message = "no app named or with id \"\(name)\" in \(config.sourcePath)"
                if let guess = KeySuggester.suggestion(for: name, among: known) {
                    message += "; did you mean \"\(guess)\"?"
                } else if !known.isEmpty {
                    message += "; configured: \(known.prefix(10).joined(separator: ", "))\(known.count > 10 ? ", ..." : "")"
                }
                return .failure(ValidationMessage(text: message))
            }
            if chosen.insert(app.id).inserted { apps.append(app) }
        }
        return .success(apps)
    }

    struct ValidationMessage: Error { let text: String }
}
