import Subprocess
import SystemPackage

/// One `on_rotate` run: argv without a shell, a fixed environment and a deadline.
public struct HookInvocation: Sendable, Equatable {
    public var argv: [String]
    public var environment: [String: String]
    public var timeout: Duration

    public init(argv: [String], environment: [String: String], timeout: Duration) {
        self.argv = argv
        self.environment = environment
        self.timeout = timeout
    }

    /// The environment a hook sees: the app's identity and output paths, a PATH to find
    /// `systemctl`, and nothing inherited, because the daemon's own environment may hold the
    /// access key secret (GENAUTH_ACCESS_KEY_SECRET). Never the application secret.
    public static func environment(appID: String, appName: String, version: Int, outputs: [String]) -> [String: String] {
        [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ROTATOR_APP_ID": appID,
            "ROTATOR_APP_NAME": appName,
            "ROTATOR_VERSION": String(version),
            // One path per line: paths may contain spaces or colons, not newlines (config rule).
            "ROTATOR_OUTPUTS": outputs.joined(separator: "\n"),
        ]
    }
}

public struct HookOutcome: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        /// Ran past its timeout; it was sent SIGTERM and, after a grace period, SIGKILL.
        case timedOut
        case failedToStart(String)
    }

    public var status: Status
    /// stdout and stderr combined, for the log: all of it, or its last `HookRunner.outputLimit`
    /// bytes when there was more.
    public var output: String
    /// Bytes dropped from the start of the output to keep its end within the limit; 0 when the
    /// whole output is in `output`.
    public var outputBytesDropped: Int = 0

    public var succeeded: Bool { status == .exited(0) }
}

/// The seam the engine uses to run hooks, so tests can count runs or inject failures.
public protocol HookRunning: Sendable {
    func run(_ invocation: HookInvocation) async -> HookOutcome
}

/// Runs hooks with swift-subprocess. A timeout cancels the run, which makes the library
/// send SIGTERM, wait `gracePeriod`, then SIGKILL (its teardown sequence).
///
/// Only the last `outputLimit` bytes of the output are kept: a longer output is not an error,
/// and the exit status is reported as it was.
public struct HookRunner: HookRunning {
    public var gracePeriod: Duration
    /// Bytes of output kept per run (the last ones).
    public static let outputLimit = 64 * 1024

    public init(gracePeriod: Duration = .seconds(5)) {
        self.gracePeriod = gracePeriod
    }

    public func run(_ invocation: HookInvocation) async -> HookOutcome {
        guard !invocation.argv.isEmpty else {
            return HookOutcome(status: .failedToStart("empty command"), output: "")
        }
        let gracePeriod = gracePeriod
        return await withTaskGroup(of: HookOutcome?.self) { group in
            group.addTask { await Self.execute(invocation, gracePeriod: gracePeriod) }
            group.addTask {
                try? await Task.sleep(for: invocation.timeout)
                return Task.isCancelled ? nil : HookOutcome(status: .timedOut, output: "")
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            // Wait for the cancelled run: the teardown (SIGTERM, then SIGKILL) finishes before we return.
            while await group.next() != nil {}
            return first ?? HookOutcome(status: .timedOut, output: "")
        }
    }

    /// nil when cancelled by the timeout.
    private static func execute(_ invocation: HookInvocation, gracePeriod: Duration) async -> HookOutcome? {
        let program = invocation.argv[0]
        let executable: Executable = program.hasPrefix("/") ? .path(FilePath(program)) : .name(program)
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: gracePeriod)]
        let environment = Environment.custom(
            // The library hands these to execve as C strings: each needs its NUL terminator.
            invocation.environment.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)\0".utf8) })
        do {
            // Not `.string(limit:)`: that fails the whole run when the output is longer.
            let result = try await Subprocess.run(
                executable, arguments: Arguments(Array(invocation.argv.dropFirst())), environment: environment,
                workingDirectory: FilePath("/"), platformOptions: options, input: .none, output: .sequence,
                error: .combinedWithOutput
            ) { execution in
                await collect(execution.standardOutput)
            }
            if Task.isCancelled { return nil }
            let (output, dropped) = result.closureResult.text()
            switch result.terminationStatus {
            case .exited(let code): return HookOutcome(status: .exited(code), output: output, outputBytesDropped: dropped)
            case .signaled(let signal):
                return HookOutcome(status: .signalled(signal), output: output, outputBytesDropped: dropped)
            }
        } catch {
            if Task.isCancelled { return nil }
            return HookOutcome(status: .failedToStart("\(error)"), output: "")
        }
    }

    /// The whole output, or its end; a read error or cancellation ends it with what arrived.
    private static func collect(_ output: SubprocessOutputSequence) async -> HookOutputTail {
        var tail = HookOutputTail(limit: outputLimit)
        do {
            for try await chunk in output {
                chunk.withUnsafeBytes { tail.append($0) }
            }
        } catch {
            // Nothing to add: the output so far is what there is.
        }
        return tail
    }
}
