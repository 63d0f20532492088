import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// The commands operators and their monitoring run, as real processes against the
/// in-process mock: `status` exit codes and its Monitoring Plugins line, requests through a
/// running daemon without the access key secret, `rotate --all`, and the words around them.
@Suite(.serialized) struct OperatorCommandTests {
    @Test func statusExitCodesForNeverObtainedHealthyMissingOutputFailingAndUnreadableState() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h", hooks: false)

        // Before anything ran: not "version 0, never, ok, exit 0".
        let (never, neverOutput) = try await harness.run(["status"])
        #expect(never == 2, "\(neverOutput)")
        #expect(neverOutput.contains("app0: no secret obtained yet"))
        #expect(neverOutput.contains("2 apps: 2 overdue (exit 2)"))
        let (neverNagios, neverLine) = try await harness.run(["status", "--nagios"])
        #expect(neverNagios == 2, "\(neverLine)")
        #expect(neverLine.hasPrefix("SECRET-ROTATOR CRITICAL - 2 of 2 apps need attention"))
        #expect(!FileManager.default.fileExists(atPath: harness.stateDirectory), "status creates nothing")

        let (once, onceOutput) = try await harness.run(["run", "--once"])
        #expect(once == 0, "\(onceOutput)")
        let (healthy, healthyOutput) = try await harness.run(["status"])
        #expect(healthy == 0, "\(healthyOutput)")
        #expect(healthyOutput.hasSuffix("2 apps: 2 ok (exit 0)\n"))
        let (nagios, line) = try await harness.run(["status", "--nagios"])
        #expect(nagios == 0, "\(line)")
        #expect(line.split(separator: "\n").count == 1)
        #expect(line.hasPrefix("SECRET-ROTATOR OK - 2 apps ok; daemon not running | apps=2;;;0 ok=2;;;0 failing=0;;;0"))
        #expect(line.contains("oldest_secret_age="))

        // An output deleted: 3, named, and only app0 when filtered to it.
        try FileManager.default.removeItem(atPath: "\(harness.dropDirectory)/app0")
        let (missing, missingOutput) = try await harness.run(["status"])
        #expect(missing == 3, "\(missingOutput)")
        #expect(missingOutput.contains("app0: output \(harness.dropDirectory)/app0 is not as configured: missing"))
        let (filtered, filteredOutput) = try await harness.run(["status", "app1"])
        #expect(filtered == 0, "\(filteredOutput)")
        #expect(!filteredOutput.contains("app0"))
        let (json, jsonOutput) = try await harness.run(["status", "--json", "app0"])
        #expect(json == 3)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(jsonOutput.utf8)) as? [String: Any])
        #expect(document["verdict"] as? String == "outputs" && document["exitStatus"] as? Int == 3)
        #expect((document["apps"] as? [[String: Any]])?.count == 1)
        let (unknown, unknownOutput) = try await harness.run(["status", "app9"])
        #expect(unknown == 64)
        #expect(unknownOutput.contains("no app named or with id \"app9\"") && unknownOutput.contains("did you mean \"app0\"?"))
        let (relative, relativeOutput) = try await harness.run(["status", "--state-dir", "var/lib/secret-rotator"])
        #expect(relative == 64, "\(relativeOutput)")
        #expect(relativeOutput.contains("--state-dir: \"var/lib/secret-rotator\" is a relative path"))
        let (fetched, fetchOutput) = try await harness.run(["fetch", "app0"])
        #expect(fetched == 0, "\(fetchOutput)")

        // The last attempt failed (wrong key): 1, WARNING; the secret on disk is still valid.
        let (rotateFailed, _) = try await harness.run(["rotate", "app1"], secret: "wrong-access-key-secret")
        #expect(rotateFailed == 1)
        let (failing, failingOutput) = try await harness.run(["status"])
        #expect(failing == 1, "\(failingOutput)")
        #expect(failingOutput.contains("FAILING") && failingOutput.contains("app1: 1 failed attempt; last error:"))
        let (warning, warningLine) = try await harness.run(["status", "--nagios"])
        #expect(warning == 1 && warningLine.hasPrefix("SECRET-ROTATOR WARNING - 1 of 2 apps need attention: app1: failing"))
        for text in [failingOutput, warningLine] {
            #expect(!harness.state.everyIssuedSecret().contains { text.contains($0) })
        }

        // A state database that is not one: 4 (UNKNOWN in plugin mode), not "never obtained".
        try Data(String(repeating: "not a database ", count: 300).utf8)
            .write(to: URL(fileURLWithPath: "\(harness.stateDirectory)/state.sqlite"))
        let (unreadable, unreadableOutput) = try await harness.run(["status"])
        #expect(unreadable == 4, "\(unreadableOutput)")
        let (unknownState, unknownLine) = try await harness.run(["status", "--nagios"])
        #expect(unknownState == 3 && unknownLine.hasPrefix("SECRET-ROTATOR UNKNOWN - "), "\(unknownLine)")
    }

    /// Overdue with the daemon stopped: once the next rotation is due by more than --grace,
    /// status exits 2 (the daemon that would have done it is not running).
    @Test func statusTurnsOverdueWhenTheDaemonIsStopped() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "2s", extra: "jitter = \"0s\"", hooks: false)
        let (once, onceOutput) = try await harness.run(["run", "--once"])
        #expect(once == 0, "\(onceOutput)")
        var last = ""
        try await waitUntil(deadline: .seconds(30), "\(last)") {
            let result = try? CLI.run(["status", "--grace", "1s", "--config", harness.configPath], environment: harness.environment())
            last = (result?.stdout ?? "") + (result?.stderr ?? "")
            return result?.status == 2
        }
        #expect(last.contains("app0: overdue: its scheduled rotation was due at") && last.contains("daemon not running"))
        let (badGrace, badGraceOutput) = try await harness.run(["status", "--grace", "7"])
        #expect(badGrace == 64)
        #expect(badGraceOutput.contains("--grace: duration \"7\" has no unit"))
        let (pluginBadGrace, pluginLine) = try await harness.run(["status", "--nagios", "--grace", "7"])
        #expect(pluginBadGrace == 3 && pluginLine.hasPrefix("SECRET-ROTATOR UNKNOWN - --grace: duration"), "\(pluginLine)")
    }

    /// An unprivileged user whose config names a key file only root can read: status never
    /// reads the key (no 78, no credential warning).
    @Test(.enabled(if: HostCapabilities.canRunAsAnotherUser, HostCapabilities.runAsAnotherUserReason))
    func statusNeverReadsTheAccessKeySecret() async throws {
        let open = FileManager.default.temporaryDirectory.appendingPathComponent("sr-status-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: open, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: open) }
        chmod(open.path, 0o755)
        let key = open.appendingPathComponent("access-key-secret").path
        try Data("root-only-key\n".utf8).write(to: URL(fileURLWithPath: key))
        chmod(key, 0o600)
        let config = open.appendingPathComponent("rotator.toml").path
        try Data("""
            [genauth]
            host = "http://127.0.0.1:9"
            access_key_id = "ak"
            access_key_secret_file = "\(key)"
            [defaults]
            state_directory = "\(open.path)/state"
            directory = "\(open.path)/drop"
            [[app]]
            id = "64d0c0ffee0000000000b111"
            name = "billing"
            """.utf8).write(to: URL(fileURLWithPath: config))
        chmod(config, 0o644)
        let result = try CLI.run(
            ["status", "--config", config], environment: ["PATH": "/usr/bin:/bin"],
            launcher: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        #expect(result.status == 2, "never obtained, not 78: \(result.stdout)\(result.stderr)")
        #expect(result.stderr.isEmpty, "no warning: \(result.stderr)")
        // check-config, which judges the key, still reports it.
        let checked = try CLI.run(
            ["check-config", "--config", config], environment: ["PATH": "/usr/bin:/bin"],
            launcher: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        #expect(checked.status == 78 && checked.stderr.contains("access_key_secret_file"))
    }

    /// A daemon holding the key as a systemd credential; the calling shell has neither
    /// $CREDENTIALS_DIRECTORY nor the key: `rotate` and `fetch` reach the daemon anyway.
    @Test func requestsReachTheDaemonWithoutTheKeyAndRotateAllAsksFirst() async throws {
        let harness = try await DaemonHarness(apps: 3)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1, 2], interval: "1h", hooks: false)
        var text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        text = text.replacingOccurrences(
            of: "access_key_id = \"daemon-test-ak\"",
            with: "access_key_id = \"daemon-test-ak\"\naccess_key_secret_credential = \"genauth-key\"")
        try Data(text.utf8).write(to: URL(fileURLWithPath: harness.configPath))
        let credentials = harness.directory.appendingPathComponent("credentials")
        try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
        try Data(harness.accessKeySecret.utf8).write(to: credentials.appendingPathComponent("genauth-key"))
        chmod(credentials.appendingPathComponent("genauth-key").path, 0o600)

        // Without the daemon and without the key, the standalone path says what it needs.
        let noKey = ["PATH": "/usr/bin:/bin", ConfigSchema.minimumIntervalVariable: "1s",
                     "RUNTIME_DIRECTORY": harness.directory.appendingPathComponent("run").path]
        let alone = try CLI.run(["rotate", "app0", "--config", harness.configPath], environment: noKey)
        #expect(alone.status == 78 && alone.stderr.contains("$CREDENTIALS_DIRECTORY is not set"), "\(alone.stderr)")

        let (daemon, _) = try harness.start(["run"], extraEnvironment: ["CREDENTIALS_DIRECTORY": credentials.path])
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0, 1, 2]).isEmpty }
        let rotated = try CLI.run(["rotate", "app0", "--config", harness.configPath], environment: noKey)
        #expect(rotated.status == 0, "\(rotated.stdout)\(rotated.stderr)")
        #expect(rotated.stdout.contains("asked the running daemon (PID \(daemon.processIdentifier)) to rotate app0"))
        #expect(rotated.stderr.isEmpty, "no credential warning: \(rotated.stderr)")
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 1)

        // --all off a terminal needs --yes; with it every app rotates, with a summary.
        let unconfirmed = try CLI.run(["rotate", "--all", "--config", harness.configPath], environment: noKey)
        #expect(unconfirmed.status == 64 && unconfirmed.stderr.contains("rotate --all needs --yes when stdin is not a terminal"))
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(1)) == 0)
        let both = try CLI.run(["rotate", "--all", "app1", "--config", harness.configPath], environment: noKey)
        #expect(both.status == 64 && both.stderr.contains("give app names or --all, not both"))
        let all = try CLI.run(["rotate", "--all", "--yes", "--config", harness.configPath], environment: noKey)
        #expect(all.status == 0, "\(all.stdout)\(all.stderr)")
        #expect(all.stdout.contains("3 apps: 3 rotated"))
        #expect((0..<3).map { harness.state.rotationCount(appId: DaemonHarness.appID($0)) } == [2, 1, 1])
        try await waitUntil(deadline: .seconds(10)) { harness.violations([0, 1, 2]).isEmpty }
        let fetched = try CLI.run(["fetch", "--all", "--config", harness.configPath], environment: noKey)
        #expect(fetched.status == 0, "\(fetched.stdout)\(fetched.stderr)")
        #expect(fetched.stdout.contains("3 apps: 3 fetched"))

        let typo = try CLI.run(["rotate", "ap1", "--config", harness.configPath], environment: noKey)
        #expect(typo.status == 64 && typo.stderr.contains("did you mean \"app1\"?"))
        let badTimeout = try CLI.run(["rotate", "--timeout", "5", "app1", "--config", harness.configPath], environment: noKey)
        #expect(badTimeout.status == 64)
        #expect(badTimeout.stderr.contains("--timeout: duration \"5\" has no unit"))
        #expect(badTimeout.stderr.contains("secret-rotator rotate"), "the subcommand's usage, not the top level's")
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(!harness.state.everyIssuedSecret().contains { rotated.stdout.contains($0) || all.stdout.contains($0) })
    }

    @Test func wordsAroundTheCommands() throws {
        let version = try CLI.run(["--version"])
        #expect(version.status == 0 && version.stdout == "secret-rotator \(SecretRotatorVersion.current)\n")
        let mock = URL(fileURLWithPath: CLI.binary.deletingLastPathComponent().appendingPathComponent("genauth-mock").path)
        let process = Process()
        process.executableURL = mock
        process.arguments = ["--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let mockVersion = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(mockVersion == "genauth-mock \(SecretRotatorVersion.current)\n")

        let typo = try CLI.run(["statsu"])
        #expect(typo.status == 64 && typo.stderr.contains("unknown command 'statsu'; did you mean 'status'?"))
        let demo = try CLI.run(["demo", "--duration", "7"])
        #expect(demo.status == 64 && demo.stderr.contains("--duration: duration \"7\" has no unit"))
        #expect(!demo.stderr.contains("--timeout"))
    }

    /// The shipped conffile is the annotated example with every line commented out: one
    /// clear error, exit 78, for check-config and the daemon alike.
    @Test func aConfigWithNoSettingsSaysConfigureMe() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let example = try String(
            contentsOf: RepositoryFiles.exampleConfig, encoding: .utf8)
        let commented = example.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.isEmpty || line.hasPrefix("#") ? String(line) : "# " + line
        }.joined(separator: "\n")
        let path = directory.appendingPathComponent("rotator.toml").path
        try Data(commented.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        for command in [["check-config"], ["run", "--once"], ["status"]] {
            let result = try CLI.run(command + ["--config", path])
            #expect(result.status == 78, "\(command): \(result.stderr)")
            let errors = result.stderr.split(separator: "\n").filter { $0.contains("error:") }
            #expect(errors.count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("the file has no settings"))
        }
    }
}
