import Foundation
import Testing

@testable import SecretRotator

/// `[metrics]`: the node_exporter textfile path, checked like every other key.
@Suite struct MetricsConfigTests {
    private static let head = """
        [genauth]
        access_key_id = "ak-1"
        [[app]]
        id = "app-1"
        name = "one"

        """

    @Test func textfileIsReadAndShownByCheckConfig() throws {
        let loaded = try ConfigFixtures.load(
            Self.head + "[metrics]\ntextfile = \"/var/lib/prometheus/node-exporter/secret_rotator.prom\"\n")
        #expect(loaded.config.metrics.textfile == "/var/lib/prometheus/node-exporter/secret_rotator.prom")
        #expect(loaded.warnings.isEmpty)
        let plan = ConfigPlan(loaded)
        #expect(plan.renderTable().contains("Metrics       /var/lib/prometheus/node-exporter/secret_rotator.prom"))
        let json = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        #expect(json.contains(#""metrics":{"textfile":"\/var\/lib\/prometheus\/node-exporter\/secret_rotator.prom"}"#))
    }

    @Test func withoutTheTableNothingIsWritten() throws {
        let loaded = try ConfigFixtures.load(Self.head)
        #expect(loaded.config.metrics.textfile == nil)
        #expect(!ConfigPlan(loaded).renderTable().contains("Metrics"))
    }

    /// The directory need not exist at load: node_exporter may be installed later, and the
    /// daemon's writes report it.
    @Test func missingDirectoryIsNotALoadError() throws {
        let loaded = try ConfigFixtures.load(Self.head + "[metrics]\ntextfile = \"/nonexistent/sr-metrics/x.prom\"\n")
        #expect(loaded.config.metrics.textfile == "/nonexistent/sr-metrics/x.prom")
    }

    static let bad: [(name: String, toml: String, keyPath: String, line: Int, fragment: String)] = [
        ("unknown key", "[metrics]\ntext_file = \"/x/a.prom\"\n", "metrics.text_file", 7, "did you mean `textfile`?"),
        ("unknown table", "[metric]\ntextfile = \"/x/a.prom\"\n", "metric", 6, "did you mean `metrics`?"),
        ("relative path", "[metrics]\ntextfile = \"metrics.prom\"\n", "metrics.textfile", 7, "relative path"),
        ("not .prom", "[metrics]\ntextfile = \"/var/lib/prometheus/node-exporter/sr.txt\"\n", "metrics.textfile", 7,
         "reads only *.prom files"),
        ("only .prom", "[metrics]\ntextfile = \"/var/lib/prometheus/.prom\"\n", "metrics.textfile", 7, "reads only *.prom files"),
        ("not a string", "[metrics]\ntextfile = 1\n", "metrics.textfile", 7, "expected"),
        ("inside the state directory", "[metrics]\ntextfile = \"/var/lib/secret-rotator/m.prom\"\n", "metrics.textfile", 7,
         "inside the state directory"),
    ]

    @Test(arguments: bad)
    func badValuesAreRefusedWithTheirLine(_ bad: (name: String, toml: String, keyPath: String, line: Int, fragment: String)) {
        let errors = ConfigFixtures.diagnostics(Self.head + bad.toml).filter { $0.severity == .error }
        let match = errors.first { $0.keyPath == bad.keyPath }
        #expect(match != nil, "\(bad.name): \(errors)")
        #expect(match?.line == bad.line, "\(bad.name)")
        #expect(match?.message.contains(bad.fragment) == true, "\(bad.name): \(match?.message ?? "-")")
    }

    /// A textfile pointed at the config file itself and at the access key
    /// file: both were replaced by metrics text (the next start failed). Every file the
    /// daemon reads is refused, also when named through another spelling.
    @Test func aFileTheDaemonReadsIsRefused() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("rotator.prom").path
        let key = directory.appendingPathComponent("key.prom").path
        try ConfigFixtures.write("a-key-secret-value\n", to: URL(fileURLWithPath: key), mode: 0o600)
        // Another spelling: through a link to the directory.
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/link", withDestinationPath: directory.path)
        for (target, what) in [(config, "config file"), (key, "access key secret file"), (directory.path + "/link/key.prom", "access key secret file")] {
            let text = """
                [genauth]
                access_key_id = "ak-1"
                access_key_secret_file = "\(key)"
                [metrics]
                textfile = "\(target)"
                [[app]]
                id = "app-1"
                name = "one"
                  [[app.output]]
                  path = "\(directory.path)/one"
                """
            try ConfigFixtures.write(text, to: URL(fileURLWithPath: config), mode: 0o600)
            do {
                _ = try ConfigLoader(environment: [:]).load(path: config)
                Issue.record("accepted \(target)")
            } catch {
                let match = error.errors.first { $0.keyPath == "metrics.textfile" }
                #expect(match?.message.contains("is the \(what)") == true, "\(target): \(error)")
            }
        }
    }

    @Test func aValueInsteadOfATableIsRefused() {
        let errors = ConfigFixtures.diagnostics("metrics = \"/x/a.prom\"\n[genauth]\naccess_key_id = \"ak-1\"\n")
        #expect(errors.contains { $0.keyPath == "metrics" && $0.line == 1 && $0.message.contains("expected a table") }, "\(errors)")
    }

    /// The textfile is 0644 and rewritten every minute: it may not be a secret's output.
    @Test func anOutputPathIsRefused() {
        let toml = """
            [genauth]
            access_key_id = "ak-1"
            [metrics]
            textfile = "/etc/app/one.prom"
            [[app]]
            id = "app-1"
            name = "one"
              [[app.output]]
              path = "/etc/app/one.prom"
            """
        let errors = ConfigFixtures.diagnostics(toml).filter { $0.severity == .error }
        #expect(errors.contains { $0.keyPath == "metrics.textfile" && $0.message.contains("also an output of app \"one\"") }, "\(errors)")
    }
}
