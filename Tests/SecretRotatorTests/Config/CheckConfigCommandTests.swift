import Foundation
import Testing

@testable import SecretRotator

/// Runs the built `secret-rotator` executable as a subprocess, as an operator would.
enum CLI {
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("secret-rotator")

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// `launcher` runs the binary through another program, e.g. setpriv to drop privileges.
    static func run(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws -> Result {
        // Output goes to files rather than pipes, so a chatty child can never block on a full pipe.
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout")
        let errURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        // Per-app locks in this call's own directory unless the test shares one on purpose.
        let runtime = ["RUNTIME_DIRECTORY": directory.appendingPathComponent("run").path]
        process.environment = ["PATH": "/usr/bin:/bin"].merging(runtime) { $1 }.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            stdout: try String(contentsOf: outURL, encoding: .utf8),
            stderr: try String(contentsOf: errURL, encoding: .utf8))
    }
}

@Suite struct CheckConfigCommandTests {
    static let knownSecret = "cli-known-access-key-secret-77aa"

    private func writeConfig(_ text: String, mode: Int = 0o600) throws -> (directory: URL, path: String) {
        let directory = try ConfigFixtures.temporaryDirectory()
        let file = directory.appendingPathComponent("rotator.toml")
        try ConfigFixtures.write(text, to: file, mode: mode)
        return (directory, file.path)
    }

    @Test func validConfigExitsZeroAndNeverPrintsTheSecret() throws {
        // An output directory that exists and the daemon may use: check-config checks it.
        let outputs = try ConfigFixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: outputs) }
        let (directory, path) = try writeConfig(
            """
            [genauth]
            access_key_id = "ak-cli"
            access_key_secret = "\(Self.knownSecret)"
            [[app]]
            id = "app-cli-1"
            name = "billing"
            on_rotate = ["systemctl", "reload", "billing.service"]
              [[app.output]]
              path = "\(outputs)/secret.env"
              format = "env"
            """, mode: 0o644)
        defer { try? FileManager.default.removeItem(at: directory) }

        let result = try CLI.run(["check-config", "--config", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("is valid"))
        #expect(result.stdout.contains("billing"))
        #expect(result.stdout.contains("app-cli-1"))
        #expect(result.stdout.contains("\(outputs)/secret.env"))
        #expect(result.stdout.contains("systemctl reload billing.service"))
        #expect(result.stderr.contains("warning: genauth.access_key_secret"))
        #expect(!result.stdout.contains(Self.knownSecret))
        #expect(!result.stderr.contains(Self.knownSecret))

        let json = try CLI.run(["check-config", "--json"], environment: [ConfigSchema.configPathVariable: path])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["valid"] as? Bool == true)
        let apps = try #require(object["apps"] as? [[String: Any]])
        #expect(apps.first?["name"] as? String == "billing")
        #expect(!json.stdout.contains(Self.knownSecret))
        #expect(!json.stderr.contains(Self.knownSecret))
    }

    /// As the README's install steps run it: the packaged config names only the systemd
    /// credential, and an operator checks it from a root shell before starting the unit.
    @Test func credentialOnlyConfigChecksFromAShellButDoesNotRun() throws {
        let drop = try ConfigFixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: drop) }
        let (directory, path) = try writeConfig(
            """
            [genauth]
            access_key_id = "ak-cli"
            access_key_secret_credential = "genauth-access-key-secret"
            [defaults]
            state_directory = "/nonexistent/sr-state"
            directory = "\(drop)/drop"
            [[app]]
            id = "app-cli-1"
            name = "billing"
            """)
        defer { try? FileManager.default.removeItem(at: directory) }

        let check = try CLI.run(["check-config", "--config", path])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stderr.contains("warning: genauth.access_key_secret_credential: credential \"genauth-access-key-secret\" not checked"))
        #expect(check.stdout.contains("systemd credential \"genauth-access-key-secret\""))

        let run = try CLI.run(["run", "--once", "--config", path])
        #expect(run.status == 78)
        #expect(run.stderr.contains("error: genauth.access_key_secret_credential: credential \"genauth-access-key-secret\" cannot be read: $CREDENTIALS_DIRECTORY is not set"))
    }

    @Test func invalidConfigExits78WithFileLineAndKey() throws {
        let (directory, path) = try writeConfig(
            """
            [genauth]
            access_key_id = "ak-cli"
            access_key_secret = "\(Self.knownSecret)"
            [defaults]
            intervall = "1d"
            mode = "0644"
            """)
        defer { try? FileManager.default.removeItem(at: directory) }

        let result = try CLI.run(["check-config", "--config", path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(path):5:1: error: defaults.intervall: unknown key \"intervall\"; did you mean `interval`?"))
        #expect(result.stderr.contains("\(path):6:1: error: defaults.mode:"))
        #expect(result.stderr.contains("2 errors"))
        #expect(result.stdout.isEmpty)
        #expect(!result.stderr.contains(Self.knownSecret))

        let json = try CLI.run(["check-config", "--config", path, "--json"])
        #expect(json.status == 78)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["valid"] as? Bool == false)
        let errors = try #require(object["errors"] as? [[String: Any]])
        #expect(errors.compactMap { $0["line"] as? Int } == [5, 6])
    }

    @Test func missingConfigFileExits78() throws {
        let result = try CLI.run(["check-config", "--config", "/nonexistent/sr/rotator.toml"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("/nonexistent/sr/rotator.toml: error: cannot open /nonexistent/sr/rotator.toml: ENOENT"))
    }

    /// Each app's window (its own, or [defaults]' unless switched off) and its next opening.
    @Test func showsEachAppsWindowAndNextOpening() throws {
        let drop = try ConfigFixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: drop) }
        let (directory, path) = try writeConfig(
            """
            [genauth]
            access_key_id = "ak-cli"
            [defaults]
            directory = "\(drop)"
            state_directory = "\(drop)/state"
            window = "sat,sun 22:00-02:00 Europe/Berlin"
            [[app]]
            id = "app-window-1"
            name = "billing"
            window = "Mon..Fri 02:00-04:00 UTC"
            [[app]]
            id = "app-window-2"
            name = "search"
            [[app]]
            id = "app-window-3"
            name = "always"
            window = "always"
            """)
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = [ConfigSchema.accessKeySecretVariable: "unused"]
        let result = try CLI.run(["check-config", "--config", path], environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("window Mon..Fri 02:00-04:00 UTC; next opening 20"), "\(result.stdout)")
        #expect(result.stdout.contains("window Sat,Sun 22:00-02:00 Europe/Berlin; next opening 20"), "\(result.stdout)")
        #expect(result.stdout.components(separatedBy: "    window ").count == 3, "the app with \"always\" has none")

        let json = try CLI.run(["check-config", "--json", "--config", path], environment: environment)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let apps = try #require(object["apps"] as? [[String: Any]])
        #expect(apps.map { $0["window"] as? String } == ["Mon..Fri 02:00-04:00 UTC", "Sat,Sun 22:00-02:00 Europe/Berlin", nil])
        let opening = try #require(apps[0]["nextWindowOpening"] as? String)
        let date = try Date(opening, strategy: .iso8601)
        #expect(date > Date().addingTimeInterval(-4 * 3_600) && date < Date().addingTimeInterval(4 * 86_400))
        #expect(try RotationWindow.parse("Mon..Fri 02:00-04:00 UTC")?.contains(date) == true)
    }

    @Test func helpExplainsAndBadArgumentsExit64() throws {
        let help = try CLI.run(["check-config", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("78"))
        #expect(help.stdout.contains("--json"))
        let root = try CLI.run(["--help"])
        #expect(root.status == 0)
        #expect(root.stdout.contains("check-config"))
        let bad = try CLI.run(["check-config", "--no-such-flag"])
        #expect(bad.status == 64)
    }
}
