import Foundation
import Testing

@testable import SecretRotator

/// `apps.d/*.toml` beside the config: read in name order after the main file, each
/// holding only `[[app]]` tables, each error with its own file:line, the rules that span apps
/// (unique ids, names, output paths) spanning every file.
@Suite struct AppsDirectoryTests {
    private func layout(main: String, files: [String: String]) throws -> (URL, String) {
        let directory = try ConfigFixtures.temporaryDirectory()
        let config = directory.appendingPathComponent("rotator.toml")
        try ConfigFixtures.write(main, to: config, mode: 0o600)
        let apps = directory.appendingPathComponent("apps.d")
        try FileManager.default.createDirectory(at: apps, withIntermediateDirectories: true)
        chmod(apps.path, 0o755)
        for (name, text) in files {
            try ConfigFixtures.write(text, to: apps.appendingPathComponent(name), mode: 0o644)
        }
        return (directory, config.path)
    }

    private func main(_ directory: String = "/tmp/sr-apps-d-drop") -> String {
        """
        [genauth]
        access_key_id = "ak"
        access_key_secret = "s3cr3t-value"
        [defaults]
        directory = "\(directory)"
        [[app]]
        id = "main-1"
        name = "main"
        """
    }

    /// `window` is a per-app key there too: its own, the main file's default, or none; a bad
    /// one names its own file and line.
    @Test func windowIsReadFromAppsDWithTheDefaultFromTheMainFile() throws {
        let withDefault = main().replacingOccurrences(of: "[defaults]\n", with: "[defaults]\nwindow = \"Sat 01:00-02:00\"\n")
        let (directory, path) = try layout(main: withDefault, files: [
            "10-billing.toml": "[[app]]\nid = \"billing-1\"\nname = \"billing\"\nwindow = \"Mon..Fri 02:00-04:00 Europe/Berlin\"\n",
            "20-search.toml": "[[app]]\nid = \"search-1\"\nname = \"search\"\nwindow = \"always\"\n",
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try ConfigLoader(environment: [:]).load(path: path).config
        #expect(config.apps.map { $0.window?.description } == ["Sat 01:00-02:00 UTC", "Mon..Fri 02:00-04:00 Europe/Berlin", nil])

        let bad = directory.appendingPathComponent("apps.d/30-bad.toml")
        try ConfigFixtures.write("[[app]]\nid = \"bad-1\"\n\nwindow = \"Mon 02:00-04:00 Mars/Olympus\"\n", to: bad, mode: 0o644)
        do {
            _ = try ConfigLoader(environment: [:]).load(path: path)
            Issue.record("a bad window in apps.d was accepted")
        } catch {
            let found = error.errors.first { $0.keyPath == "app[0].window" }
            #expect(found?.file == bad.path && found?.line == 4, "\(error.errors)")
        }
    }

    @Test func appsAreReadInNameOrderAfterTheMainFileWithTheirSource() throws {
        let (directory, path) = try layout(main: main(), files: [
            "20-search.toml": "[[app]]\nid = \"search-1\"\nname = \"search\"\n",
            "10-billing.toml": "# billing\n[[app]]\nid = \"billing-1\"\nname = \"billing\"\ninterval = \"7d\"\n",
            ".10-billing.toml.swp": "not toml [[[",
            "README": "not read",
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try ConfigLoader(environment: [:]).load(path: path).config
        #expect(config.apps.map(\.name) == ["main", "billing", "search"])
        #expect(config.apps[1].interval == .seconds(7 * 86_400))
        #expect(config.apps[1].source == AppSource(file: directory.path + "/apps.d/10-billing.toml", keyPath: "app[0]", line: 2))
        #expect(config.apps[0].source?.file == path)

        let check = try CLI.run(["check-config", "--config", path])
        #expect(check.stdout.contains("FROM"), "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("apps.d/10-billing.toml:2"))
    }

    @Test func eachErrorNamesItsOwnFileAndDuplicatesSpanFiles() throws {
        let (directory, path) = try layout(main: main(), files: [
            "10-a.toml": "[[app]]\nid = \"a-1\"\nname = \"a\"\nintervall = \"3d\"\n",
            "20-b.toml": "[defaults]\ninterval = \"1d\"\n\n[[app]]\nid = \"main-1\"\nname = \"b\"\n",
            "30-c.toml": "[[app]\nid = \"c\"\n",
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let apps = directory.path + "/apps.d"
        do {
            _ = try ConfigLoader(environment: [:]).load(path: path)
            Issue.record("accepted")
        } catch {
            let lines = error.diagnostics.map(\.description)
            // A file that is not TOML stops the reading, with its own position.
            #expect(lines.contains { $0.hasPrefix("\(apps)/30-c.toml:1:") }, "\(lines)")
        }
        try FileManager.default.removeItem(atPath: apps + "/30-c.toml")
        do {
            _ = try ConfigLoader(environment: [:]).load(path: path)
            Issue.record("accepted")
        } catch {
            let lines = error.diagnostics.map(\.description)
            #expect(lines == [
                "\(apps)/10-a.toml:4:1: error: app[0].intervall: unknown key \"intervall\"; did you mean `interval`?",
                "\(apps)/20-b.toml:1:2: error: defaults: unknown key \"defaults\"; only [[app]] tables belong in apps.d files; [genauth], [defaults], [metrics] and [cluster] stay in the main config file",
                "\(apps)/20-b.toml:5:1: error: app[0].id: duplicate app id \"main-1\"; already used by app[0].id (\(path):7)",
            ], "\(lines)")
        }
    }

    /// A name is printed in every diagnostic about its file: a line break or an escape
    /// sequence in it would forge lines or drive the terminal.
    @Test func aFileNameWithAControlCharacterIsRefused() throws {
        let (directory, path) = try layout(main: main(), files: ["10-a\nb.toml": "[[app]]\nid = \"a-1\"\n"])
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            _ = try ConfigLoader(environment: [:]).load(path: path)
            Issue.record("accepted")
        } catch {
            #expect(error.diagnostics.first?.message == "a file name in apps.d holds a control character (shown escaped: \"10-a\\nb.toml\"); rename it", "\(error)")
            #expect(!error.description.contains("10-a\nb"))
        }
    }

    @Test func aWritableAppsFileIsRefusedLikeAWritableConfig() throws {
        let (directory, path) = try layout(main: main(), files: ["10-a.toml": "[[app]]\nid = \"a-1\"\n"])
        defer { try? FileManager.default.removeItem(at: directory) }
        chmod(directory.path + "/apps.d/10-a.toml", 0o666)
        do {
            _ = try ConfigLoader(environment: [:]).load(path: path)
            Issue.record("accepted a world-writable apps.d file: anyone could add a hook the daemon runs")
        } catch {
            #expect(error.diagnostics.first?.file == directory.path + "/apps.d/10-a.toml")
            #expect(error.diagnostics.first?.message.contains("writable by group or others") == true, "\(error)")
        }
    }
}

/// check-config's host checks and its online verification against the mock.
@Suite struct CheckConfigHostTests {
    @Test func aMissingOutputDirectoryFailsCheckConfigButNotTheDropDirectory() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("rotator.toml")
        let base = directory.path
        try ConfigFixtures.write(
            """
            [genauth]
            access_key_id = "ak"
            access_key_secret = "s3cr3t-value"
            [defaults]
            directory = "\(base)/drop"
            state_directory = "\(base)/state"
            [[app]]
            id = "a-1"
            name = "dropped"
            [[app]]
            id = "b-1"
            name = "billing"
              [[app.output]]
              path = "\(base)/missing/billing.env"
              format = "env"
            """, to: config, mode: 0o600)
        let result = try CLI.run(["check-config", "--config", config.path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(config.path):14:3: error: app[1].output[0].path: output \(base)/missing/billing.env: directory \(base)/missing does not exist"), "\(result.stderr)")
        #expect(!result.stderr.contains("/drop"), "the drop directory is created by the daemon")

        try FileManager.default.createDirectory(atPath: base + "/missing", withIntermediateDirectories: true)
        let fixed = try CLI.run(["check-config", "--config", config.path])
        #expect(fixed.status == 0, "\(fixed.stderr)")

        // Not writable by the daemon's account (the state directory's owner): refused.
        guard getuid() == 0 else { return }
        try FileManager.default.createDirectory(atPath: base + "/state", withIntermediateDirectories: true)
        chown(base + "/state", 65534, 65534)
        chmod(base + "/missing", 0o755)
        let unwritable = try CLI.run(["check-config", "--config", config.path])
        #expect(unwritable.status == 78)
        #expect(unwritable.stderr.contains("is not writable by the daemon's user 65534"), "\(unwritable.stderr)")
        chown(base + "/missing", 65534, 65534)
        // The drop directory's parent (this test's 0700 directory) is not theirs either.
        let blocked = try CLI.run(["check-config", "--config", config.path])
        #expect(blocked.stderr.contains("the drop directory \(base)/drop does not exist and cannot be created"), "\(blocked.stderr)")
        try FileManager.default.createDirectory(atPath: base + "/drop", withIntermediateDirectories: true)
        chown(base + "/drop", 65534, 65534)
        let owned = try CLI.run(["check-config", "--config", config.path])
        #expect(owned.status == 0, "\(owned.stderr)")
    }

    @Test func onlineVerificationReportsUnknownAndForbiddenAppsPerApp() async throws {
        let harness = try await DaemonHarness(apps: 3)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1, 2], interval: "1h", hooks: false)
        // app2 is not in the mock's pool: unknown. app1 may not be read: forbidden.
        var text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: DaemonHarness.appID(2), with: "64d0c0ffee00000000999999")
        try Data(text.utf8).write(to: URL(fileURLWithPath: harness.configPath))
        harness.state.inject(.init(endpoint: .getApplication, appId: DaemonHarness.appID(1), count: 5,
                                   fault: .businessError(statusCode: 403, apiCode: nil, message: "forbidden")))
        harness.state.clearRequestLog()
        let (status, output) = try await harness.run(["check-config", "--online"])
        #expect(status == 78, "\(output)")
        #expect(output.contains("logged in to \(harness.mock.baseURL)"))
        let rows = output.split(separator: "\n").map(String.init)
        #expect(rows.contains { $0.hasPrefix("app0") && $0.contains(" ok ") })
        #expect(rows.contains { $0.hasPrefix("app1") && $0.contains(" forbidden ") })
        #expect(rows.contains { $0.hasPrefix("app2") && $0.contains(" not-found ") })
        #expect(output.contains("2 of 3 apps cannot be used."))
        let paths = harness.state.requestLog().map(\.path)
        #expect(!paths.contains { $0.contains("refresh-application-secret") || $0.contains("get-application-secret") },
                "no secret fetched, none rotated: \(paths)")
        #expect(!harness.state.everyIssuedSecret().contains { output.contains($0) })

        // A wrong key: the login is refused once, for every app.
        harness.state.clearFaults()
        let (refused, refusedOutput) = try await harness.run(["check-config", "--online"], secret: "wrong-access-key-secret")
        #expect(refused == 78, "\(refusedOutput)")
        #expect(refusedOutput.contains("refused"))
    }
}
