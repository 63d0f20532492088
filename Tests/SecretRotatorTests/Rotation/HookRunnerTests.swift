import Foundation
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

    /// A hook that ignores SIGTERM is killed after the grace period, and the runner does not
    /// return before the process is gone.
    @Test func timeoutTerminatesThenKills() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sr-hook-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pidFile = directory.appendingPathComponent("pid").path
        let script = "trap '' TERM; echo $$ > \(pidFile); while :; do sleep 1; done"
        let outcome = await runner.run(HookInvocation(argv: ["sh", "-c", script], environment: ["PATH": "/usr/bin:/bin"], timeout: .seconds(1)))
        #expect(outcome.status == .timedOut)
        let pidText = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(pid_t(pidText))
        #expect(kill(pid, 0) != 0, "hook process \(pid) still exists after the runner returned")
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
