import Foundation
import Testing

@testable import SecretRotator

enum RepositoryFiles {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let exampleConfig = root.appendingPathComponent("config/rotator.toml")
}

/// The example config names the group `secret-readers`, which the .deb creates. Here the test
/// creates it when running as root (as CI does); without root the suite is skipped, with the reason.
enum ReadersGroup {
    static let name = "secret-readers"
    static let available: Bool = {
        if getgrnam(name) != nil { return true }
        guard getuid() == 0 else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/groupadd")
        process.arguments = ["--system", name]
        try? process.run()
        process.waitUntilExit()
        return getgrnam(name) != nil
    }()
}

@Suite(.enabled(if: ReadersGroup.available, "the group secret-readers is missing and creating it needs root"))
struct ExampleConfigTests {
    @Test func examplePassesValidationWithoutWarnings() throws {
        let credentials = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: credentials) }
        try ConfigFixtures.write("example-secret\n", to: credentials.appendingPathComponent("genauth-access-key-secret"))
        let loader = ConfigLoader(environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        let loaded: LoadedConfig
        do {
            loaded = try loader.load(path: RepositoryFiles.exampleConfig.path)
        } catch {
            Issue.record("example config rejected:\n\(error)")
            return
        }
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        #expect(loaded.config.apps.map(\.name) == ["billing", "reports"])
        #expect(loaded.config.apps[0].outputs.count == 2)
        #expect(loaded.config.apps[1].action == .follow)
        #expect(loaded.config.apps[1].outputs.map(\.path) == ["/var/lib/secret-rotator/secrets/reports"])
    }
}

@Suite struct ExampleConfigCoverageTests {
    /// "An annotated example that uses every key": each schema key appears as an assignment,
    /// active or commented out where it is an alternative (e.g. the other secret sources).
    @Test func exampleMentionsEverySchemaKey() throws {
        let text = try String(contentsOf: RepositoryFiles.exampleConfig, encoding: .utf8)
        let keys = ConfigSchema.genauth + ConfigSchema.defaults + ConfigSchema.retry + ConfigSchema.app
            + ConfigSchema.output.filter { $0 != "output" } + ConfigSchema.metrics
        for key in Set(keys) where key != "retry" && key != "output" {
            let pattern = "(^|[\\s{,#])\(key) = "
            #expect(text.range(of: pattern, options: .regularExpression) != nil, "example config does not mention \(key)")
        }
        #expect(text.contains("[[app.output]]"))
        #expect(text.contains("retry = {"))
    }
}
