import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

@Suite struct HookRunnerTests {
    let runner = HookRunner(gracePeriod: .milliseconds(500))
    let shellEnvironment = ["PATH": "/usr/bin:/bin"]

    @Test func runsArgvWithoutShellAndOnlyTheRotatorEnvironment() async {
        let environment = HookInvocation.environment(appID: "app-1", appName: "billing", version: 7, outputs: ["/a b/x", "/c"])
        let outcome = await runner.run(HookInvocation(argv: ["/usr/bin/env"], environment: environment, timeout: .seconds(30)))
        #expect(outcome.status == .exited(0))
        let lines = Set(outcome.output.split(separator: "\n").map(String.init))
        #expect(lines.contains("ROTATOR_APP_ID=app-1"))
        #expect(lines.contains("ROTATOR_APP_NAME=billing"))
        #expect(lines.contains("ROTATOR_VERSION=7"))
        #expect(lines.contains("ROTATOR_OUTPUTS=/a b/x"))
        let names = Set(lines.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
        #expect(names.isSubset(of: ["PATH", "ROTATOR_APP_ID", "ROTATOR_APP_NAME", "ROTATOR_VERSION", "ROTATOR_OUTPUTS", "/c"]))

        let literal = await runner.run(HookInvocation(argv: ["echo", "$HOME", "a;b"], environment: environment, timeout: .seconds(30)))
        #expect(literal.output == "$HOME a;b\n")
    }

    @Test func reportsExitCodesAndMissingPrograms() async {
        let failing = await runner.run(HookInvocation(argv: ["sh", "-c", "echo oops >&2; exit 3"], environment: [:], timeout: .seconds(30)))
        #expect(failing.status == .exited(3))
        #expect(failing.output == "oops\n")
        let missing = await runner.run(HookInvocation(argv: ["/nonexistent/hook"], environment: [:], timeout: .seconds(30)))
        guard case .failedToStart = missing.status else {
            Issue.record("expected failedToStart, got \(missing.status)")
            return
        }
    }

    /// The reported fault: a timed-out hook's background and foreground children were left
    /// running (re-parented to PID 1), one more pair per retry.
    @Test func timeoutKillsEverythingTheHookStarted() async throws {
        let background = ProcessMarker(), foreground = ProcessMarker()
        defer { background.killLeftovers(); foreground.killLeftovers() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let started = directory.path("started")
        // `echo done` after the foreground sleep keeps the shell from exec'ing into it, so the
        // shell, the background sleep and the foreground sleep are three processes.
        let script = "sleep \(background.seconds) & echo $! > \(started); sleep \(foreground.seconds); echo done"
        let outcome = await runner.run(HookInvocation(argv: ["sh", "-c", script], environment: shellEnvironment, timeout: .seconds(1)))
        #expect(outcome.status == .timedOut)
        #expect(FileManager.default.fileExists(atPath: started), "the hook never reached its background sleep")
        try await waitUntil("background sleep \(background.livePIDs()) survived the timeout") { background.livePIDs().isEmpty }
        try await waitUntil("foreground sleep \(foreground.livePIDs()) survived the timeout") { foreground.livePIDs().isEmpty }
    }

    /// A hook that ignores SIGTERM is killed after the grace period, and the runner does not
    /// return before it and every process it started are gone.
    @Test func timeoutTerminatesThenKills() async throws {
        let child = ProcessMarker()
        defer { child.killLeftovers() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let pidFile = directory.path("pid")
        // The ignored SIGTERM is inherited by each `sleep`, so the children ignore it too.
        let script = "trap '' TERM; echo $$ > \(pidFile); while :; do sleep \(child.seconds); done"
        let outcome = await runner.run(HookInvocation(argv: ["sh", "-c", script], environment: shellEnvironment, timeout: .seconds(1)))
        #expect(outcome.status == .timedOut)
        let pidText = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(pid_t(pidText))
        #expect(kill(pid, 0) != 0, "hook process \(pid) still exists after the runner returned")
        try await waitUntil("the hook's child \(child.livePIDs()) survived the timeout") { child.livePIDs().isEmpty }
    }

    /// Only a child ignores SIGTERM: the shell dies of it at once, and the child must still get
    /// SIGKILL once the grace period is over.
    @Test func childIgnoringSigtermIsKilledAfterTheGracePeriod() async throws {
        let stubborn = ProcessMarker(), foreground = ProcessMarker()
        defer { stubborn.killLeftovers(); foreground.killLeftovers() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let started = directory.path("started")
        let script = "(trap '' TERM; sleep \(stubborn.seconds); echo done) & echo $! > \(started); sleep \(foreground.seconds); echo done"
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await runner.run(HookInvocation(argv: ["sh", "-c", script], environment: shellEnvironment, timeout: .seconds(1)))
        let elapsed = clock.now - start
        #expect(outcome.status == .timedOut)
        #expect(FileManager.default.fileExists(atPath: started), "the hook never started its child")
        try await waitUntil("the child ignoring SIGTERM \(stubborn.livePIDs()) survived") { stubborn.livePIDs().isEmpty }
        try await waitUntil { foreground.livePIDs().isEmpty }
        // SIGKILL comes only after the grace period: the child had its chance to finish.
        #expect(elapsed >= .seconds(1) + runner.gracePeriod - .milliseconds(50), "returned after \(elapsed)")
    }

    /// A hook may leave a daemon behind when it succeeds; that daemon holds the output pipe,
    /// which must not keep the runner waiting for EOF.
    @Test func successfulHookMayLeaveABackgroundChildAndReturnsPromptly() async throws {
        let daemon = ProcessMarker()
        defer { daemon.killLeftovers() }
        let outcome = await runner.run(
            HookInvocation(argv: ["sh", "-c", "sleep \(daemon.seconds) & echo hi; exit 0"], environment: shellEnvironment, timeout: .seconds(30)))
        #expect(outcome.status == .exited(0))
        #expect(outcome.output == "hi\n")
        // Observed, not timed: had the runner waited for the pipe's end, the child would be
        // gone by now (it lives `daemon.seconds`). The child may still be a forked shell about
        // to exec `sleep`, hence the wait.
        try await waitUntil("the background child of a successful hook was killed") { !daemon.livePIDs().isEmpty }
    }

    /// A process left behind that keeps writing to the pipe must not keep the runner reading.
    @Test func successfulHookLeavingAWriterBehindReturnsPromptly() async {
        let writer = ProcessMarker()
        defer { writer.killLeftovers() }
        let outcome = await runner.run(
            HookInvocation(argv: ["sh", "-c", "yes \(writer.seconds) & sleep 0.1; exit 0"], environment: shellEnvironment, timeout: .seconds(30)))
        #expect(outcome.status == .exited(0))
        #expect(outcome.output.hasSuffix("\(writer.seconds)\n") || outcome.output.hasSuffix(writer.seconds))
        // Observed, not timed: `yes` never ends, so a runner that kept reading would have run
        // into the 30 s hook timeout and reported .timedOut; .exited(0) above is "promptly".
        // (The writer itself dies of SIGPIPE once the runner closes the pipe.)
    }

    /// A failed hook is retried: what it left in its group is ended, or each retry adds more.
    @Test func failedHookDoesNotLeaveItsChildrenBehind() async throws {
        let child = ProcessMarker()
        defer { child.killLeftovers() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let started = directory.path("started")
        let outcome = await runner.run(
            HookInvocation(
                argv: ["sh", "-c", "sleep \(child.seconds) & echo $! > \(started); echo reload failed; exit 3"],
                environment: shellEnvironment, timeout: .seconds(30)))
        #expect(outcome.status == .exited(3))
        #expect(outcome.output == "reload failed\n")
        // By PID as well as by marker: the child may have died before it exec'd `sleep`.
        let pid = try #require(readPID(started))
        try await waitUntil("the failed hook's child \(pid) survived") { isGone(pid) }
        try await waitUntil("the failed hook's child \(child.livePIDs()) survived") { child.livePIDs().isEmpty }
    }

    /// Cancelling the caller ends the hook and its group as a timeout would.
    @Test func cancellationEndsTheHookAndItsGroup() async throws {
        let child = ProcessMarker()
        defer { child.killLeftovers() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let started = directory.path("started")
        let runner = runner
        let script = "sleep \(child.seconds) & echo $! > \(started); sleep \(child.seconds); echo done"
        let run = Task {
            await runner.run(HookInvocation(argv: ["sh", "-c", script], environment: shellEnvironment, timeout: .seconds(60)))
        }
        try await waitUntil("the hook never started its child") { FileManager.default.fileExists(atPath: started) }
        run.cancel()
        let outcome = await run.value
        #expect(outcome.status == .cancelled)
        let pid = try #require(readPID(started))
        try await waitUntil("the cancelled hook's child \(pid) survived") { isGone(pid) }
        try await waitUntil("the cancelled hook's children \(child.livePIDs()) survived") { child.livePIDs().isEmpty }
    }

    @Test func oversizeOutputIsTruncatedAndTheExitStatusKept() async {
        let size = HookRunner.outputLimit + 10_000
        let script = "printf BEGIN; head -c \(size) /dev/zero | tr '\\0' x; printf END; exit "
        let succeeded = await runner.run(HookInvocation(argv: ["sh", "-c", script + "0"], environment: shellEnvironment, timeout: .seconds(30)))
        #expect(succeeded.status == .exited(0))
        #expect(succeeded.output.utf8.count == HookRunner.outputLimit)
        #expect(succeeded.output.hasSuffix("xxxEND"), "the end of the output, where errors are, is kept")
        #expect(!succeeded.output.hasPrefix("BEGIN"))
        #expect(succeeded.outputBytesDropped == "BEGIN".count + size + "END".count - HookRunner.outputLimit)
        let failed = await runner.run(HookInvocation(argv: ["sh", "-c", script + "4"], environment: shellEnvironment, timeout: .seconds(30)))
        #expect(failed.status == .exited(4))
        #expect(failed.output.hasSuffix("xxxEND"))
    }
}

/// A unique `sleep` duration whose decimal string marks the processes of one test, so the test
/// can find them in /proc/*/cmdline while other tests (and other builds) run in parallel.
private struct ProcessMarker {
    let seconds = String(Int.random(in: 100_000_000...999_999_999))

    /// Live processes whose argv has the marker as one of its arguments. A zombie has an empty
    /// cmdline, so a killed process that is not yet reaped does not count.
    func livePIDs() -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { return nil }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.contains(seconds) ? pid : nil
        }
    }

    /// Test hygiene only: a failing test must not leave sleeps running for years.
    func killLeftovers() {
        for pid in livePIDs() { kill(pid, SIGKILL) }
    }
}

private struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sr-hook-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

private func readPID(_ path: String) -> pid_t? {
    (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}

/// True when `pid` has exited: no longer in /proc, or a zombie waiting to be reaped.
private func isGone(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
}
