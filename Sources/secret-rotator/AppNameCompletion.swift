import SecretRotator

/// Shell completion of app names (`secret-rotator rotate <TAB>`): the names in the config
/// the command line names with --config (else the default), read as `status` reads it, without
/// the access key secret. Nothing is printed on a config error: completion just offers nothing.
enum AppNameCompletion {
    /// - Parameters: the words of the command line, the index of the word being completed and
    ///   its prefix (swift-argument-parser's `CompletionKind.custom`).
    @Sendable static func complete(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        var path = ProcessEnvironment.current[ConfigSchema.configPathVariable].flatMap { $0.isEmpty ? nil : $0 }
            ?? ConfigSchema.defaultConfigPath
        for (position, word) in words.enumerated() {
            if word == "--config", position + 1 < words.count {
                path = words[position + 1]
            } else if word.hasPrefix("--config=") {
                path = String(word.dropFirst("--config=".count))
            }
        }
        guard let loaded = try? ConfigLoader.withoutAccessKeySecret().load(path: path) else { return [] }
        return loaded.config.apps.map(\.name).filter { $0.hasPrefix(prefix) }
    }
}
