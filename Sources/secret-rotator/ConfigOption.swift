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
}
