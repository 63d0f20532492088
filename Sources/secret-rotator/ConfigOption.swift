import ArgumentParser
import SecretRotator

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
        do {
            let loaded = try ConfigLoader(accessKeySecretNeeded: accessKeySecretNeeded).load(path: path)
            for warning in loaded.warnings {
                StandardError.write(warning.description)
            }
            return loaded.config
        } catch {
            for diagnostic in error.diagnostics {
                StandardError.write(diagnostic.description)
            }
            StandardError.write("\(path): \(error.errors.count) error(s); the config is not valid.")
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
}
