import Foundation
import Testing

@testable import SecretRotator

/// Shared helpers for config tests: a fake environment that supplies the access key secret,
/// and temporary files for configs that refer to other files.
enum ConfigFixtures {
    static let accessKeySecret = "fixture-access-key-secret-9f8e7d"
    static let environment = [ConfigSchema.accessKeySecretVariable: accessKeySecret]

    static func load(_ text: String, environment: [String: String] = environment, mode: FileMode? = nil) throws(ConfigError)
        -> LoadedConfig
    {
        try ConfigLoader(environment: environment).load(text: text, path: "rotator.toml", fileMode: mode)
    }

    static func diagnostics(_ text: String, environment: [String: String] = environment) -> [ConfigDiagnostic] {
        do {
            return try load(text, environment: environment).warnings
        } catch {
            return error.diagnostics
        }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sr-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ text: String, to url: URL, mode: Int = 0o600) throws {
        try Data(text.utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
    }
}
