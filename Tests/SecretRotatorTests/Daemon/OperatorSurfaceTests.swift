import Foundation
import AsyncHTTPClient
import GenAuthMock
import NIOCore
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// The operator surface as a packaged install meets it: `status` and requests from root and
/// monitoring users beside a daemon running as its own user, a daemon that dies while a request
/// waits, and the monitoring formats when nothing can be judged. Each case once failed.
@Suite(.serialized) struct OperatorSurfaceTests {
    /// The packaged layout: the daemon's user owns the state and output directories; root runs
    /// `status`. Directories were judged against root alone (every output "unsafeDirectory",
    /// exit 3); and a monitoring user got 78 for a valid config instead of 77.
    @Test(.enabled(if: HostCapabilities.canRunAsAnotherUser, HostCapabilities.runAsAnotherUserReason))
    func statusFromRootJudgesTheDaemonsDirectoriesAsTheDaemonWould() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h", hooks: false)
        let (once, onceOutput) = try await harness.run(["run", "--once"])
        #expect(once == 0, "\(onceOutput)")
        // Hand everything the daemon owns to uid 65534, as the package gives it to secret-rotator.
        for path in [harness.stateDirectory, harness.dropDirectory] {
            let enumerator = FileManager.default.enumerator(atPath: path)
            chown(path, 65534, 65534)
            while let entry = enumerator?.nextObject() as? String { chown("\(path)/\(entry)", 65534, 65534) }
        }
        let (status, statusOutput) = try await harness.run(["status"])
        #expect(status == 0, "\(statusOutput)")
        #expect(!statusOutput.contains("unsafeDirectory"))

        // Another unprivileged user: not 78 (the config is valid), 77 (cannot read the state).
        chmod(harness.directory.path, 0o755)
        chmod(harness.configPath, 0o644)
        chmod(harness.stateDirectory, 0o700)
        let stranger = try CLI.run(
            ["status", "--config", harness.configPath], environment: harness.environment(),
            launcher: ["/usr/bin/setpriv", "--reuid=12345", "--regid=12345", "--clear-groups"])
        #expect(stranger.status == 77, "\(stranger.stdout)\(stranger.stderr)")
    }

    /// A database the daemon refuses (a stranger's file, a link) is not vouched for by status.
    @Test(arguments: ["stranger", "link"])
    func statusRefusesADatabaseTheDaemonRefuses(_ how: String) async throws {
        guard getuid() == 0 else { return }
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hooks: false)
        let (once, onceOutput) = try await harness.run(["run", "--once"])
        #expect(once == 0, "\(onceOutput)")
        let database = "\(harness.stateDirectory)/state.sqlite"
        if how == "stranger" {
            chown(database, 4242, 4242)
        } else {
            try FileManager.default.moveItem(atPath: database, toPath: harness.directory.appendingPathComponent("copy.sqlite").path)
            try FileManager.default.createSymbolicLink(atPath: database, withDestinationPath: harness.directory.appendingPathComponent("copy.sqlite").path)
        }
        let (daemon, _) = try await harness.run(["run", "--once"])
        #expect(daemon == 73)
        let (status, statusOutput) = try await harness.run(["status"])
        #expect(status == 4, "\(statusOutput)")
    }

    /// Root's `rotate` to a daemon running as its own user: the request directory and file
    /// are given to the state directory's owner (they were root's 0700, which the daemon
    /// could not read, and the write itself was refused).
    @Test func requestsFromRootBelongToTheDaemonsUser() throws {
        guard getuid() == 0 else { return }
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = root.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        chown(state, 65534, 65534)
        let requests = ControlRequests(stateDirectory: StateDirectory(path: state))
        try requests.submit(appID: "app-1", kind: .rotate)
        var status = stat()
        #expect(stat(requests.directory, &status) == 0 && status.st_uid == 65534 && status.st_gid == 65534)
        let file = "\(requests.directory)/\(StateDirectory.fileName(for: "app-1")).rotate"
        #expect(stat(file, &status) == 0 && status.st_uid == 65534, "the daemon can read and remove it")
        // A directory an earlier version left root-owned is handed over too.
        chown(requests.directory, 0, 0)
        try requests.submit(appID: "app-2", kind: .fetch)
        #expect(stat(requests.directory, &status) == 0 && status.st_uid == 65534)
        #expect(requests.drain().map(\.appID).sorted() == ["app-1", "app-2"])
    }

    /// A daemon killed while a request waits: `rotate` says so at once instead of waiting out
    /// its timeout; a fetch answered while a hook keeps failing is an answer, not a timeout.
    @Test func requestsEndWhenTheDaemonDiesAndAFetchWithAFailingHookIsAnswered() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h", hookScript: "exit 3")
        let (daemon, _) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0, 1]).isEmpty }
        try await waitUntil(deadline: .seconds(30)) { (harness.savedState(0)?.consecutiveFailures ?? 0) > 0 }

        let fetch = try CLI.run(["fetch", "app0", "--timeout", "60s", "--config", harness.configPath], environment: harness.environment())
        // Answered either way, never a timeout: the read succeeded (0), or the record already
        // shows the hook's next failure (1, naming it). It used to wait out --timeout.
        #expect(fetch.status == 0 || fetch.status == 1, "\(fetch.stdout)\(fetch.stderr)")
        if fetch.status == 1 {
            #expect(fetch.stderr.contains("app0: ") && fetch.stderr.contains("hook failed (exited with status 3)"), "\(fetch.stderr)")
        } else {
            #expect(fetch.stdout.contains("app0: unchanged (version 1)"), "\(fetch.stdout)")
        }
        #expect(!fetch.stderr.contains("timed out"))

        harness.state.inject(.init(endpoint: .refreshApplicationSecret, appId: DaemonHarness.appID(1), count: 1, fault: .delay(milliseconds: 60_000)))
        let (rotate, log) = try harness.start(["rotate", "app1", "--timeout", "120s"])
        try await waitUntil(deadline: .seconds(30)) {
            harness.state.requestLog().contains { $0.path.hasSuffix("refresh-application-secret") }
        }
        kill(daemon.processIdentifier, SIGKILL)
        daemon.waitUntilExit()
        try await waitUntil(deadline: .seconds(30), "ended well before its 120 s timeout") { !rotate.isRunning }
        if rotate.isRunning { kill(rotate.processIdentifier, SIGKILL) }
        rotate.waitUntilExit()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(rotate.terminationStatus == 1)
        #expect(text.contains("the daemon (PID \(daemon.processIdentifier)) exited before answering for app1"), "\(text)")
    }

    /// --nagios and --json answer in their own format even for a bad command line or a state
    /// directory that is a file.
    @Test func statusAnswersInItsFormatWhenItCannotJudge() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hooks: false)
        for arguments in [["--bogus"], ["--state-dir", "relative"], ["--json"]] {
            let (code, output) = try await harness.run(["status", "--nagios"] + arguments)
            #expect(code == 3, "\(arguments): \(output)")
            #expect(output.hasPrefix("SECRET-ROTATOR UNKNOWN - ") && output.split(separator: "\n").count == 1, "\(arguments): \(output)")
        }
        let file = harness.directory.appendingPathComponent("not-a-directory").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        let result = try CLI.run(["status", "--json", "--state-dir", file, "--config", harness.configPath], environment: harness.environment())
        #expect(result.status == 4)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(document["verdict"] as? String == "unknown" && document["exitStatus"] as? Int == 4)
        #expect((document["error"] as? String)?.contains("is not a directory") == true)
        let unknown = try CLI.run(["status", "--json", "app9", "--config", harness.configPath], environment: harness.environment())
        #expect(unknown.status == 64)
        #expect((try? JSONSerialization.jsonObject(with: Data(unknown.stdout.utf8)) as? [String: Any])?["exitStatus"] as? Int == 64)
    }

    /// A refresh whose outcome is unknown (the secret on disk may be dead): not ok. WARNING
    /// at first, CRITICAL once it stays unresolved past the limit. And a known CRITICAL is not
    /// hidden behind an UNKNOWN elsewhere.
    @Test func anUnresolvedRefreshIsNotHealthyAndKnownBadOutranksUnknown() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            _ = try await fixture.startedEngine()
            let now = fixture.clock.now()
            var state = try #require(store.loadState(appID: GenAuthHarness.appId, now: now).state)
            state.intent = .refresh
            state.intentStartedAt = now
            try store.saveState(state)
            func verdict(at time: Date) -> AppHealth.Verdict {
                StatusReport.read(config: config, stateDirectory: store, now: time, checkOutputs: true).apps[0].health.verdict
            }
            #expect(verdict(at: now.addingTimeInterval(5)) == .failing)
            #expect(verdict(at: now.addingTimeInterval(121)) == .overdue)
            // Fresh, it may not even be sent yet (a pre-flight, the fleet's intent write): under
            // way, not "unknown"; past the limit its outcome is unknown.
            func words(at time: Date) -> String {
                StatusReport.read(config: config, stateDirectory: store, now: time, checkOutputs: true).apps[0].health.findings
                    .map(\.description).joined(separator: "; ")
            }
            #expect(words(at: now.addingTimeInterval(5)).contains("a refresh is under way since"), "\(words(at: now.addingTimeInterval(5)))")
            #expect(!words(at: now.addingTimeInterval(5)).contains("outcome is unknown"))
            #expect(words(at: now.addingTimeInterval(121)).contains("a refresh's outcome is unknown since"))
        }
        let mixed = [AppHealth.Verdict.unknown, .outputs, .failing].max()
        #expect(mixed == .outputs)
        #expect([AppHealth.Verdict.unknown, .overdue].max() == .overdue)
        #expect([AppHealth.Verdict.unknown, .failing].max() == .unknown)
        #expect(AppHealth(findings: [.outputUnchecked(path: "/a", reason: "EACCES"), .outputBad(path: "/b", drift: "missing")]).verdict == .outputs)
    }

    @Test func transportFailuresAreDescribedInWords() {
        let refused = GenAuthError.describe(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        #expect(refused == "connection failed: Connection refused (errno \(ECONNREFUSED))")
        #expect(GenAuthError.describe(HTTPClientError.remoteConnectionClosed) == "the server closed the connection before answering")
        #expect(GenAuthError.describe(HTTPClientError.deadlineExceeded) == "no complete answer within request_timeout")
    }
}
