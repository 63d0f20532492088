import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// The daemon as a real process: SIGKILL at random moments, a second instance, reload,
/// operator requests, --once and the demo. Each test ends by checking invariant 1 against
/// the mock (every output holds the secret GenAuth accepts now).
@Suite(.serialized) struct DaemonProcessTests {
    /// Every kind of mock fault (a refresh applied after the client's deadline included),
    /// outputs deleted or overwritten between kills, 100 SIGKILLs: after the last settle every
    /// output holds GenAuth's current secret with its mode, and every hook ran.
    static let chaosFaults: [MockFault] = [
        .httpStatus(500, jsonBody: true), .httpStatus(502, jsonBody: false), .httpStatus(503, jsonBody: true),
        .throttledInBody, .throttledHTTP(retryAfterSeconds: 1),
        .businessError(statusCode: 404, apiCode: 2011, message: "app not found"),
        .businessError(statusCode: 403, apiCode: nil, message: "forbidden"),
        .delay(milliseconds: 300), .delay(milliseconds: 3_000), .dropBeforeProcessing, .dropAfterProcessing,
        .malformedJSON, .htmlPage, .oversizeBody(bytes: 200_000), .emptySecret, .invalidSecret, .expiredToken,
    ]

    @Test func crashLoopNeverLeavesAServiceWithoutItsSecret() async throws {
        let apps = 20
        let harness = try await DaemonHarness(apps: apps)
        defer { Task { await harness.cleanUp() } }
        // request_timeout 2s: the 3 s delay fault lands after the client's deadline.
        try harness.writeConfig(apps: Array(0..<apps), interval: "1s", requestTimeout: "2s")
        var generator = SystemRandomNumberGenerator()
        let iterations = 100
        var faults = 0
        var tampered = 0
        var unfinishedAtRestart = 0
        var heldNotWrittenAtRestart = 0
        let endpoints: [MockEndpoint?] = [.refreshApplicationSecret, .getApplicationSecret, nil]
        for _ in 0..<iterations {
            // What the kill left behind is what this start must finish.
            let unfinished = harness.unfinishedRollouts(Array(0..<apps))
            unfinishedAtRestart += unfinished.count
            heldNotWrittenAtRestart += unfinished.filter { $0.contains("held") }.count
            for _ in 0..<Int.random(in: 0...2, using: &generator) {
                let fault = Self.chaosFaults.randomElement(using: &generator) ?? .dropAfterProcessing
                let app = DaemonHarness.appID(Int.random(in: 0..<apps, using: &generator))
                harness.state.inject(
                    MockFaultRule(endpoint: endpoints.randomElement(using: &generator) ?? nil, appId: app, count: 1, fault: fault))
                faults += 1
            }
            if Int.random(in: 0..<4, using: &generator) == 0 {
                let path = "\(harness.dropDirectory)/app\(Int.random(in: 0..<apps, using: &generator))"
                if Bool.random(using: &generator) {
                    unlink(path)
                } else {
                    try? Data("tampered\n".utf8).write(to: URL(fileURLWithPath: path))
                }
                tampered += 1
            }
            let (process, _) = try harness.start()
            try await Task.sleep(for: .milliseconds(Int.random(in: 30...500, using: &generator)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let rotations = (0..<apps).map { harness.state.rotationCount(appId: DaemonHarness.appID($0)) }.reduce(0, +)

        // Last start: nothing new falls due, so the daemon only finishes what the kills
        // interrupted, reconciles what the faults left unknown and repairs what was tampered with.
        harness.state.clearFaults()
        try harness.writeConfig(apps: Array(0..<apps), interval: "1h", requestTimeout: "2s")
        let (final, log) = try harness.start()
        // The state may already be settled from the last run; the SIGTERM below still needs a
        // daemon that got as far as taking signals (one killed before main cannot exit 0).
        let settled = (try? await waitUntil(deadline: .seconds(120)) {
            SignalDisposition.ofSIGTERM(pid: final.processIdentifier) != nil
                && harness.violations(Array(0..<apps)).isEmpty && harness.unfinishedRollouts(Array(0..<apps)).isEmpty
                && (0..<apps).allSatisfy { index in
                    guard let state = harness.savedState(index) else { return false }
                    return state.hookDoneVersion == state.version && state.consecutiveFailures == 0
                }
        }) != nil
        var violations = harness.violations(Array(0..<apps)) + harness.unfinishedRollouts(Array(0..<apps))
        for index in 0..<apps {
            guard let state = harness.savedState(index) else {
                violations.append("app\(index): no state")
                continue
            }
            let missing = Set(1...max(1, state.version)).subtracting(harness.hookVersions(index))
            if state.version > 0 && !missing.isEmpty {
                violations.append("app\(index): hook never ran for versions \(missing.sorted())")
            }
        }
        print(
            "crash loop: \(iterations) SIGKILLs, \(faults) faults, \(tampered) outputs deleted or overwritten, \(rotations) rotations across \(apps) apps, \(unfinishedAtRestart) unfinished rollouts found at restarts (\(heldNotWrittenAtRestart) with a secret held but not on every output), violations: \(violations.isEmpty ? "none" : violations.joined(separator: "; "))"
        )
        #expect(unfinishedAtRestart > 0, "no kill landed between a refresh and the last write: the loop proved nothing")
        #expect(settled, "did not settle: \((try? String(contentsOf: log, encoding: .utf8))?.suffix(3000) ?? "")")
        #expect(violations.isEmpty)
        #expect(rotations > apps, "the daemon should have rotated during the loop")

        kill(final.processIdentifier, SIGTERM)
        final.waitUntilExit()
        #expect(final.terminationStatus == 0)
        let everySecret = harness.state.everyIssuedSecret()
        let logs = try FileManager.default.contentsOfDirectory(atPath: harness.directory.path).filter { $0.hasSuffix(".log") }
        for name in logs {
            let text = try String(contentsOfFile: harness.directory.appendingPathComponent(name).path, encoding: .utf8)
            #expect(!everySecret.contains { text.contains($0) }, "a secret appeared in \(name)")
            #expect(!text.contains(harness.accessKeySecret))
        }
    }

    /// `systemctl stop` can race a start. A SIGTERM that arrives once the daemon takes signals
    /// (its own start-up handler, later the service group's) must end it with exit 0, never by
    /// the signal's default action and never by being ignored. The kill is sent the moment
    /// /proc shows SIGTERM caught or ignored, which lands in the start-up window most times.
    @Test func stopDuringStartUpExitsCleanly() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        var duringStartUp = 0
        for attempt in 0..<20 {
            let (process, log) = try harness.start()
            var disposition: SignalDisposition?
            let takesSignals = (try? await waitUntil(deadline: .seconds(30)) {
                disposition = SignalDisposition.ofSIGTERM(pid: process.processIdentifier)
                return disposition != nil || !process.isRunning
            }) != nil
            kill(process.processIdentifier, SIGTERM)
            let exited = (try? await waitUntil(deadline: .seconds(30)) { !process.isRunning }) != nil
            if !exited { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            if disposition == .caught { duringStartUp += 1 }
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(takesSignals && exited, "attempt \(attempt): \(output.suffix(2000))")
            #expect(process.terminationReason == .exit && process.terminationStatus == 0,
                    "attempt \(attempt) (\(String(describing: disposition))): \(process.terminationReason == .exit ? "exit" : "signal") \(process.terminationStatus): \(output.suffix(2000))")
        }
        print("stop during start-up: 20 SIGTERMs, \(duringStartUp) landed before the service group trapped signals")
        #expect(duringStartUp > 0, "no SIGTERM landed in the start-up window: the window was never tested")
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 0)
    }

    @Test func secondDaemonRefusesAndRotateGoesThroughTheRunningOne() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        let (first, _) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0, 1]).isEmpty }
        #expect(StateDirectoryLock.holder(stateDirectory: harness.stateDirectory) == first.processIdentifier)

        let (status, output) = try await harness.run(["run"])
        #expect(status == 75)
        #expect(output.contains("PID \(first.processIdentifier)"))

        harness.state.clearRequestLog()
        let (rotateStatus, rotateOutput) = try await harness.run(["rotate", "app0"])
        #expect(rotateStatus == 0, "\(rotateOutput)")
        #expect(rotateOutput.contains("asked the running daemon (PID \(first.processIdentifier))"))
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 1)
        let refreshes = harness.state.requestLog().filter { $0.path.hasSuffix("refresh-application-secret") }
        #expect(refreshes.count == 1)
        #expect(harness.violations([0, 1]).isEmpty)

        let (fetchStatus, fetchOutput) = try await harness.run(["fetch", "app1"])
        #expect(fetchStatus == 0, "\(fetchOutput)")
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(1)) == 0)

        let (unknownStatus, _) = try await harness.run(["rotate", "no-such-app"])
        #expect(unknownStatus == 64)

        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
    }

    @Test func reloadKeepsTheOldConfigOnErrorsAndAppliesAValidOne() async throws {
        let harness = try await DaemonHarness(apps: 3)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1s")
        let (daemon, log) = try harness.start()
        let app0 = DaemonHarness.appID(0)
        try await waitUntil(deadline: .seconds(30)) { harness.state.rotationCount(appId: app0) >= 1 }

        try Data("[genauth\nbroken = \n".utf8).write(to: URL(fileURLWithPath: harness.configPath))
        kill(daemon.processIdentifier, SIGHUP)
        try await waitUntil(deadline: .seconds(30)) {
            ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("config rejected")
        }
        let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("rotator.toml:1:"), "errors carry file and line")
        let beforeReject = harness.state.rotationCount(appId: app0)
        try await waitUntil(deadline: .seconds(30)) { harness.state.rotationCount(appId: app0) > beforeReject + 1 }
        #expect(daemon.isRunning)

        try harness.writeConfig(apps: [1, 2], interval: "1s")
        kill(daemon.processIdentifier, SIGHUP)
        let app1 = DaemonHarness.appID(1)
        let app2 = DaemonHarness.appID(2)
        try await waitUntil(deadline: .seconds(30)) { harness.output(2) != nil }
        let removedCount = harness.state.rotationCount(appId: app0)
        let app1Count = harness.state.rotationCount(appId: app1)
        try await waitUntil(deadline: .seconds(30)) {
            harness.state.rotationCount(appId: app1) >= app1Count + 2 && harness.state.rotationCount(appId: app2) >= 1
        }
        #expect(harness.state.rotationCount(appId: app0) <= removedCount + 1, "a removed app stops (one step may have been in flight)")
        let settledCount = harness.state.rotationCount(appId: app0)
        try await waitUntil(deadline: .seconds(30)) { harness.state.rotationCount(appId: app1) >= app1Count + 4 }
        #expect(harness.state.rotationCount(appId: app0) == settledCount)

        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    /// Level-triggered outputs under the real daemon: a deleted output is back after SIGHUP
    /// without a GenAuth request for that app, and a changed mode is applied by the reload.
    @Test func reloadRepairsADeletedOutputAndAppliesAChangedMode() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        let (daemon, log) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) {
            harness.violations([0, 1]).isEmpty && harness.hookVersions(0) == [1] && harness.hookVersions(1) == [1]
        }
        let mark = harness.state.requestLog().map(\.sequence).max() ?? -1
        unlink("\(harness.dropDirectory)/app0")
        kill(daemon.processIdentifier, SIGHUP)
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0]).isEmpty }
        let forApp0 = harness.state.requestLog().filter { $0.sequence > mark && $0.appId == DaemonHarness.appID(0) }
        #expect(forApp0.isEmpty, "the repair called GenAuth: \(forApp0.map(\.path))")
        #expect(((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("output drifted (missing)"))

        try harness.writeConfig(apps: [0, 1], interval: "1h", mode: "0640")
        kill(daemon.processIdentifier, SIGHUP)
        var status = stat()
        try await waitUntil(deadline: .seconds(30)) {
            stat("\(harness.dropDirectory)/app1", &status) == 0 && status.st_mode & 0o7777 == 0o640
        }
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(1)) == 0)
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    /// `fetch` every 3 s (a cron workaround for drift) does not stop a rotation due every 8 s.
    @Test func frequentFetchesDoNotPostponeRotation() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "8s", hooks: false)
        let (daemon, _) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) { harness.violations([0]).isEmpty }
        let app0 = DaemonHarness.appID(0)
        let deadline = ContinuousClock.now.advanced(by: .seconds(40))
        var fetches = 0
        while harness.state.rotationCount(appId: app0) < 2 && ContinuousClock.now < deadline {
            let (status, output) = try await harness.run(["fetch", "app0"])
            #expect(status == 0, "\(output)")
            fetches += 1
            try await Task.sleep(for: .seconds(3))
        }
        // Two rotations are due within 16 s of the first fetch; 40 s leaves room for a slow machine.
        #expect(harness.state.rotationCount(appId: app0) >= 2, "rotations while fetching every 3 s: \(harness.state.rotationCount(appId: app0)) after \(fetches) fetches")
        #expect(fetches >= 3, "the loop fetched at all")
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
    }

    /// `rotate` signals whoever holds the lock; a `run --once` (or a daemon starting up) must
    /// not die of SIGUSR1 or SIGHUP in the middle of a step.
    @Test func controlSignalsDoNotKillALockHolderThatIsNotADaemon() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h", hooks: false)
        harness.state.inject(MockFaultRule(endpoint: .getApplicationSecret, count: 2, fault: .delay(milliseconds: 1_500)))
        let (once, log) = try harness.start(["run", "--once"])
        try await waitUntil(deadline: .seconds(30)) {
            StateDirectoryLock.holder(stateDirectory: harness.stateDirectory) == once.processIdentifier
        }
        kill(once.processIdentifier, SIGUSR1)
        kill(once.processIdentifier, SIGHUP)
        try await waitUntil(deadline: .seconds(60)) { !once.isRunning }
        once.waitUntilExit()
        #expect(once.terminationReason == .exit && once.terminationStatus == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        #expect(harness.violations([0, 1]).isEmpty)
    }

    /// A read-only state directory is "cannot be used" (73), not "another instance" (75).
    @Test func readOnlyStateDirectoryIsNotAnotherInstance() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hooks: false)
        try await TestMount.withTmpfs(at: harness.stateDirectory, options: "size=256k,mode=0700,ro") {
            let (status, output) = try await harness.run(["run", "--once"])
            #expect(status == 73, "\(output)")
            #expect(!output.contains("another secret-rotator"))
        }
    }

    /// A hook that prints the file it reloads must not put the secret into the log.
    @Test func hookOutputNeverCarriesTheSecretIntoTheLog() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hookScript: "cat \(harness.dropDirectory)/app0; exit 1")
        let (status, output) = try await harness.run(["run", "--once"])
        #expect(status == 1, "the hook failed: \(output)")
        let secret = try #require(harness.state.currentSecret(appId: DaemonHarness.appID(0)))
        #expect(harness.output(0) == secret)
        #expect(!output.contains(secret), "the secret reached the log through the hook's output")
        #expect(output.contains("<redacted>"))
    }

    /// Exactly one host may rotate an app: `rotate` of a follower is refused, not performed.
    @Test func rotateRefusesAFollower() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hooks: false, action: "follow")
        let (status, output) = try await harness.run(["rotate", "app0"])
        #expect(status == 64, "\(output)")
        #expect(output.contains("follow"))
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 0)
    }

    @Test func runOnceExitCodes() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        let (first, firstOutput) = try await harness.run(["run", "--once"])
        #expect(first == 0, "\(firstOutput)")
        #expect(harness.violations([0, 1]).isEmpty)
        let (again, _) = try await harness.run(["run", "--once"])
        #expect(again == 0, "nothing due is success")
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 0)

        try harness.writeConfig(apps: [0, 1], interval: "1h", extra: "")
        let other = try await DaemonHarness(apps: 1)
        defer { Task { await other.cleanUp() } }
        try other.writeConfig(apps: [0], interval: "1h")
        let (failed, failedOutput) = try await other.run(["run", "--once"], secret: "wrong-access-key-secret")
        #expect(failed == 1, "\(failedOutput)")
        #expect(failedOutput.contains("app0: failed"))

        try Data("[genauth]\n".utf8).write(to: URL(fileURLWithPath: other.configPath))
        let (invalid, _) = try await other.run(["run", "--once"])
        #expect(invalid == 78)
    }

    /// Writes no longer sweep their directory, so start-up (under the state-directory lock)
    /// clears what a crashed writer left next to outputs, and in the JSON record directories
    /// of the file-based store when their records are imported into the database.
    @Test func startUpSweepsTempFilesACrashLeft() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        let (first, firstOutput) = try await harness.run(["run", "--once"])
        #expect(first == 0, "\(firstOutput)")
        let stale = [
            "\(harness.stateDirectory)/apps/\(TemporaryFileName.make(for: "\(DaemonHarness.appID(0)).json", random: 1))",
            "\(harness.stateDirectory)/current/\(TemporaryFileName.make(for: "\(DaemonHarness.appID(1)).json", random: 2))",
            "\(harness.dropDirectory)/\(TemporaryFileName.make(for: "app0", random: 3))",
        ]
        let unrelated = "\(harness.dropDirectory)/.not-a-temp-file"
        // The directories of the file-based store, as a writer of that release killed mid-write left them.
        for directory in ["apps", "current"] {
            try FileManager.default.createDirectory(atPath: "\(harness.stateDirectory)/\(directory)", withIntermediateDirectories: false)
        }
        for path in stale + [unrelated] {
            #expect(FileManager.default.createFile(atPath: path, contents: Data("partial".utf8)))
        }
        let (again, againOutput) = try await harness.run(["run", "--once"])
        #expect(again == 0, "\(againOutput)")
        for path in stale {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) survived start-up")
        }
        #expect(FileManager.default.fileExists(atPath: unrelated))
        #expect(againOutput.contains("removed temp files a killed writer left"))
        #expect(harness.violations([0, 1]).isEmpty)
    }

    @Test func statusShowsTheJournalWithAndWithoutTheDaemon() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h")
        let (never, neverOutput) = try await harness.run(["status"])
        #expect(never == 2, "never obtained: \(neverOutput)")
        #expect(neverOutput.contains("does not exist yet") && neverOutput.contains("daemon not running"))
        #expect(!FileManager.default.fileExists(atPath: harness.stateDirectory), "status creates nothing")

        let (once, onceOutput) = try await harness.run(["run", "--once"])
        #expect(once == 0, "\(onceOutput)")
        let (json, jsonOutput) = try await harness.run(["status", "--json"])
        #expect(json == 0, "\(jsonOutput)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(jsonOutput.utf8)) as? [String: Any])
        let apps = try #require(document["apps"] as? [[String: Any]])
        #expect(apps.map { $0["name"] as? String } == ["app0", "app1"])
        #expect(apps.map { $0["version"] as? Int } == [1, 1])
        #expect(document["daemonPID"] == nil)

        let (daemon, _) = try harness.start()
        try await waitUntil(deadline: .seconds(30)) {
            StateDirectoryLock.holder(stateDirectory: harness.stateDirectory) == daemon.processIdentifier
        }
        let (running, runningOutput) = try await harness.run(["status"])
        #expect(running == 0, "\(runningOutput)")
        #expect(runningOutput.contains("daemon running (PID \(daemon.processIdentifier))"))
        #expect(runningOutput.contains("app0") && runningOutput.contains("in 1h"))
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()

        // A failing app makes status exit 1 and name the error; no secret is printed.
        let (rotateFailed, _) = try await harness.run(["rotate", "app1"], secret: "wrong-access-key-secret")
        #expect(rotateFailed != 0)
        let (failing, failingOutput) = try await harness.run(["status"])
        #expect(failing == 1, "\(failingOutput)")
        #expect(failingOutput.contains("FAILING") && failingOutput.contains("app1: 1 failed attempt; last error:"))
        #expect(!harness.state.everyIssuedSecret().contains { failingOutput.contains($0) })
    }

    /// The state directory is private to the daemon's user: `status` from anyone else says so
    /// (exit 77) instead of showing apps as never rotated.
    @Test(.enabled(if: HostCapabilities.canRunAsAnotherUser, HostCapabilities.runAsAnotherUserReason))
    func statusRefusesAStateDirectoryItCannotRead() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h")
        let (once, onceOutput) = try await harness.run(["run", "--once"])
        #expect(once == 0, "\(onceOutput)")
        // The config where user nobody can read it; the state stays in the root-only directory.
        let open = FileManager.default.temporaryDirectory.appendingPathComponent("sr-status-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: open, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: open) }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: open.path)
        let config = open.appendingPathComponent("rotator.toml")
        try FileManager.default.copyItem(atPath: harness.configPath, toPath: config.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: config.path)

        let result = try CLI.run(
            ["status", "--config", config.path], environment: harness.environment(),
            launcher: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        #expect(result.status == 77, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("cannot read \(harness.stateDirectory)"))
        #expect(result.stdout.isEmpty)
    }

    /// `run --once` with an output it cannot write: one attempt, then the backoff is reported
    /// (it used to retry 16 times in one second).
    @Test func runOnceMakesOneAttemptPerApp() async throws {
        let harness = try await DaemonHarness(apps: 2)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0, 1], interval: "1h", hooks: false)
        let (first, firstOutput) = try await harness.run(["run", "--once"])
        #expect(first == 0, "\(firstOutput)")
        let mark = harness.state.requestLog().map(\.sequence).max() ?? 0
        unlink("\(harness.dropDirectory)/app0")
        #expect(mkdir("\(harness.dropDirectory)/app0", 0o700) == 0)
        let (failed, output) = try await harness.run(["run", "--once"])
        #expect(failed == 1, "\(output)")
        let attempts = output.split(separator: "\n").filter { $0.contains("1 output not written") && $0.contains("retrying in") }.count
        #expect(attempts == 1, "\(output)")
        #expect(output.contains("app0: failed") && output.contains("next attempt"))
        #expect(harness.violations([1]).isEmpty)
        // A new process has not had its record confirmed: one read before a repair that would
        // replace what the output holds (a restored record may be dead), and never a refresh.
        let calls = harness.state.requestLog().filter { $0.sequence > mark && $0.appId == DaemonHarness.appID(0) }
        #expect(calls.map(\.path) == ["/api/v3/get-application-secret"], "one confirming read, no refresh: \(calls.map(\.path))")
    }

    /// The state directory on a full tmpfs: `rotate` exits non-zero naming ENOSPC and sends no
    /// refresh, `status` exits 1; once space returns the app converges with exactly one rotation.
    @Test func fullStateDirectoryFailsLoudlyAndConvergesWithOneRotation() async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hooks: false)
        try await TestMount.withTmpfs(at: harness.stateDirectory) {
            let (first, firstOutput) = try await harness.run(["run", "--once"])
            #expect(first == 0, "\(firstOutput)")
            let filler = TestMount.fill(harness.stateDirectory)

            let (rotate, rotateOutput) = try await harness.run(["rotate", "app0"])
            #expect(rotate != 0, "\(rotateOutput)")
            #expect(rotateOutput.contains("ENOSPC"), "\(rotateOutput)")
            #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 0, "no refresh without a durable intent")
            // With no space SQLite cannot even open the database to read it: unknown (4).
            let (status, statusOutput) = try await harness.run(["status"])
            #expect(status == 4, "\(statusOutput)")
            #expect(statusOutput.contains("ENOSPC"))

            unlink(filler)
            let (again, againOutput) = try await harness.run(["rotate", "app0"])
            #expect(again == 0, "\(againOutput)")
            #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 1)
            #expect(harness.violations([0]).isEmpty)
            let (healthy, healthyOutput) = try await harness.run(["status"])
            #expect(healthy == 0, "\(healthyOutput)")
        }
    }

    /// A state database that cannot be opened (a directory, a link) made
    /// `run` exit 1; an unusable state directory is 73, as secret-rotator(8) says.
    @Test(arguments: ["directory", "link"])
    func unusableStateDatabaseExits73(_ how: String) async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: [0], interval: "1h", hooks: false)
        try FileManager.default.createDirectory(atPath: harness.stateDirectory, withIntermediateDirectories: true)
        let database = harness.stateDirectory + "/state.sqlite"
        if how == "directory" {
            try FileManager.default.createDirectory(atPath: database, withIntermediateDirectories: false)
        } else {
            #expect(symlink(harness.directory.path + "/elsewhere.sqlite", database) == 0)
        }
        for command in [["run", "--once"], ["rotate", "app0"]] {
            let (status, output) = try await harness.run(command)
            #expect(status == 73, "\(command): \(output)")
            #expect(output.contains("cannot use the state directory"), "\(output)")
        }
        #expect(harness.state.rotationCount(appId: DaemonHarness.appID(0)) == 0)
    }

    /// A first pass over 2,500 apps in one drop directory (it used to crash with SIGSEGV in the
    /// temp-file sweep past ~1,100 entries): exits 0 with every file right.
    @Test func runOnceOverTwoThousandFiveHundredAppsInOneDirectory() async throws {
        let apps = 2_500
        let harness = try await DaemonHarness(apps: apps)
        defer { Task { await harness.cleanUp() } }
        try harness.writeConfig(apps: Array(0..<apps), interval: "1h", requestsPerSecond: 1_000, hooks: false)
        let (status, output) = try await harness.run(["run", "--once"], timeout: .seconds(600))
        #expect(status == 0, "\(output.suffix(3000))")
        let violations = harness.violations(Array(0..<apps))
        #expect(violations.isEmpty, "\(violations.prefix(5))")
    }

    @Test func demoRunsAndProducesRotatedFiles() async throws {
        let (status, output) = try await DemoRun.run(duration: "7s")
        #expect(status == 0, "\(output)")
        #expect(output.contains("billing: secret fetched and written"))
        #expect(output.contains("billing: secret rotated and written"))
        #expect(output.contains("every file holds the secret the mock accepts now, with its configured mode;"))
        // The consumer's check: each raw file's secret authenticated at the mock's token endpoint.
        #expect(output.contains("a consumer reading each raw file was accepted by the mock's token endpoint (POST /oidc/token)."))
    }
}

/// How a process handles SIGTERM, from the masks in /proc/<pid>/status (nil: default action).
enum SignalDisposition: Equatable {
    case caught, ignored

    static func ofSIGTERM(pid: Int32) -> SignalDisposition? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func has(_ field: String) -> Bool {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("\(field):") }),
                  let mask = UInt64(line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces), radix: 16)
            else { return false }
            return mask & (1 << UInt64(SIGTERM - 1)) != 0
        }
        if has("SigCgt") { return .caught }
        if has("SigIgn") { return .ignored }
        return nil
    }
}

enum DemoRun {
    static func run(duration: String) async throws -> (Int32, String) {
        let result = try CLI.run(["demo", "--duration", duration])
        return (result.status, result.stdout + result.stderr)
    }
}
