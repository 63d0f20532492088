import Subprocess
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
    public enum Status: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)
        /// Ran past its timeout; its whole process group was sent SIGTERM and, after a grace
        /// period, SIGKILL.
        case timedOut
        /// The calling task was cancelled while the hook ran; its process group was ended as on
        /// a timeout.
        case cancelled
        case failedToStart(String)

        /// For the log and `status`: "exited with status 3", "killed by signal 9", "timed out",
        /// "could not start: …" (not the enum's debug form).
        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            case .timedOut: "timed out (its process group was terminated)"
            case .cancelled: "cancelled at shutdown"
            case .failedToStart(let reason): "could not start: \(reason)"
            }
        }
    }

    /// What a failure's log MESSAGE says: the status and the first non-empty line of `output`
    /// (already redacted by the caller), at most `lineLimit` characters, e.g. `exited with
    /// status 1: Failed to reload-or-restart billing.service: Access denied`. The whole output
    /// stays in the entry's HOOK_OUTPUT field.
    public static func failureDetail(status: Status, output: String, lineLimit: Int = 200) -> String {
        let lines = output.split(whereSeparator: \.isNewline).lazy.map { text in
            var line = text.drop(while: \.isWhitespace)
            while line.last?.isWhitespace == true { line.removeLast() }
            return line
        }
        guard let line = lines.first(where: { !$0.isEmpty }) else { return status.description }
        return "\(status): \(line.count > lineLimit ? String(line.prefix(lineLimit)) + "…" : line)"
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

/// Runs hooks with swift-subprocess, each in its own session and process group (setsid(2)).
///
/// The rules, in the order a run meets them:
/// - A hook has `invocation.timeout` to exit. If it is still running then, every process in its
///   process group gets SIGTERM (and SIGCONT, so stopped ones can act on it, as systemd.kill(5)
///   does), then up to `gracePeriod` to exit, then SIGKILL; the outcome is `.timedOut`.
/// - A hook that exits with status 0 may leave processes behind (it may start a daemon): they
///   are not signalled. A hook that exits otherwise gets the same SIGTERM/SIGKILL sequence for
///   whatever it left in its group, because a failed hook is retried and each retry would add
///   more of them.
/// - Output (stdout and stderr on one pipe) is read until the hook's own exit plus at most
///   `outputDrainBound`, not until end-of-file: a process the hook left behind may hold the pipe
///   open indefinitely. The pipe is closed when `run` returns, so such a process should send its
///   output elsewhere. Only the last `outputLimit` bytes are kept.
/// - `run` returns once the hook has exited (it is then reaped) and, after a timeout or a
///   failure, once no process of its group is left: at most `gracePeriod` after SIGTERM plus
///   `killWait` after SIGKILL.
///
/// A process that leaves the group (setsid, setpgid, job control with `set -m`) is out of reach;
/// under systemd the service's control group still ends it when the service stops.
public struct HookRunner: HookRunning {
    /// Time between SIGTERM and SIGKILL.
    public var gracePeriod: Duration
    /// Bytes of output kept per run (the last ones).
    public static let outputLimit = 64 * 1024
    /// How long output is still read after the hook exited: what it wrote just before exiting
    /// is already in the pipe, this only bounds the wait.
    static let outputDrainBound: Duration = .milliseconds(250)
    /// How long to wait for SIGKILLed processes to disappear before returning anyway (a process
    /// in uninterruptible sleep dies only when the kernel call returns).
    static let killWait: Duration = .seconds(1)

    public init(gracePeriod: Duration = .seconds(5)) {
        self.gracePeriod = gracePeriod
    }

    /// Runs one hook under the rules above. A hook that cannot be started (no such program, not
    /// executable) is `.failedToStart` with swift-subprocess's error text.
    public func run(_ invocation: HookInvocation) async -> HookOutcome {
        guard let program = invocation.argv.first else {
            return HookOutcome(status: .failedToStart("empty command"), output: "")
        }
        let executable: Executable = program.hasPrefix("/") ? .path(FilePath(program)) : .name(program)
        var options = PlatformOptions()
        // setsid(2) in the child: the hook leads a new session and process group numbered with its
        // PID, so `kill(-pid)` reaches what it starts, and neither the daemon nor its group.
        options.createSession = true
        // The library runs this when our task is cancelled, and also when its run fails, then
        // possibly after it has reaped the hook: so it targets the leader alone, and `supervise`
        // deals with the group while the leader is known to be unreaped.
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: gracePeriod)]
        let environment = Environment.custom(
            // The library hands these to execve as C strings: each needs its NUL terminator.
            invocation.environment.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)\0".utf8) })
        let timeout = invocation.timeout
        let gracePeriod = gracePeriod
        do {
            let result = try await Subprocess.run(
                executable, arguments: Arguments(Array(invocation.argv.dropFirst())), environment: environment,
                workingDirectory: FilePath("/"), platformOptions: options, input: .none, output: .sequence,
                error: .combinedWithOutput
            ) { execution in
                await Self.supervise(
                    HookProcessGroup(id: execution.processIdentifier.value), output: execution.standardOutput,
                    timeout: timeout, gracePeriod: gracePeriod)
            }
            let supervised = result.closureResult
            let (output, dropped) = supervised.output.text()
            let status: HookOutcome.Status
            switch supervised.ending {
            case .timedOut: status = .timedOut
            case .cancelled: status = .cancelled
            case .exited:
                switch result.terminationStatus {
                case .exited(let code): status = .exited(code)
                case .signaled(let signal): status = .signalled(signal)
                }
            }
            return HookOutcome(status: status, output: output, outputBytesDropped: dropped)
        } catch {
            // swift-subprocess's SubprocessError describes itself in words ("Executable … is
            // not found or cannot be executed"); the errno, when it has one, is added by it.
            return HookOutcome(status: .failedToStart(String(describing: error)), output: "")
        }
    }

    struct Supervised: Sendable {
        enum Ending: Sendable { case exited, timedOut, cancelled }
        var ending: Ending
        var output: HookOutputTail
    }

    /// Reads the output and watches the leader until it exits or the timeout, ending the group
    /// where the rules above say so. Runs inside the `run` body closure, where the leader is not
    /// yet reaped (see `HookProcessGroup`).
    private static func supervise(
        _ group: HookProcessGroup, output: SubprocessOutputSequence, timeout: Duration, gracePeriod: Duration
    ) async -> Supervised {
        let cancellation = CancellationFlag()
        // The work below must finish even when our task is cancelled: it is what keeps the hook's
        // processes from outliving the run, and its sleeps would end at once in a cancelled task.
        // So it runs in a task of its own that we wait for, and cancellation becomes a flag.
        return await withTaskCancellationHandler {
            await Task {
                await watch(group, output: output, timeout: timeout, gracePeriod: gracePeriod, cancellation: cancellation)
            }.value
        } onCancel: {
            cancellation.set()
        }
    }

    private static func watch(
        _ group: HookProcessGroup, output: SubprocessOutputSequence, timeout: Duration, gracePeriod: Duration,
        cancellation: CancellationFlag
    ) async -> Supervised {
        await withTaskGroup(of: HookOutputTail?.self) { tasks in
            tasks.addTask { await collect(output) }
            let deadline = ContinuousClock.now + timeout
            let ending: Supervised.Ending
            let leader = await waitForLeader(group, until: deadline, cancellation: cancellation)
            if leader == .unknown {
                // The group can no longer be signalled safely; the library reports the rest.
                ending = cancellation.isSet ? .cancelled : .exited
            } else if cancellation.isSet {
                // Checked before the leader's state: the library's own teardown sends the leader
                // SIGTERM on cancellation, so the leader may already be dead of it.
                ending = .cancelled
                await terminate(group, gracePeriod: gracePeriod)
            } else {
                switch leader {
                case .exited(0), .unknown:
                    ending = .exited
                case .exited, .signalled:
                    ending = .exited
                    await terminate(group, gracePeriod: gracePeriod)
                case .running:
                    ending = .timedOut
                    await terminate(group, gracePeriod: gracePeriod)
                }
            }
            // The library stops the read as soon as the leader exits (it cancels its pending I/O
            // then: Configuration.run in 1.0.2), after draining what the pipe holds; the bound is
            // for everything else, e.g. a leader that does not die of SIGKILL in time.
            tasks.addTask {
                try? await QuietSleep.sleep(for: outputDrainBound)
                return nil
            }
            var tail = HookOutputTail(limit: outputLimit)
            while let next = await tasks.next() {
                // Either the output ended (stop the timer) or time is up (stop reading; the
                // collector then returns what it has).
                tasks.cancelAll()
                if let next { tail = next }
            }
            return Supervised(ending: ending, output: tail)
        }
    }

    /// The whole output, or its end; a read error or cancellation ends it with what arrived.
    private static func collect(_ output: SubprocessOutputSequence) async -> HookOutputTail {
        var tail = HookOutputTail(limit: outputLimit)
        do {
            for try await chunk in output {
                chunk.withUnsafeBytes { tail.append($0) }
                // Once the leader has exited, the library answers reads from what the pipe holds
                // and ends the sequence only when it finds the pipe empty, so a process the hook
                // left behind that keeps the pipe full could keep this loop going: reads that do
                // not wait never see the cancellation, so it is checked here.
                if Task.isCancelled { break }
            }
        } catch {
            // Nothing to add: the output so far is what there is.
        }
        return tail
    }

    /// Polls the leader until it has exited, `deadline` has passed or `cancellation` is set;
    /// `.running` in the latter two cases. Polling, because the library's exit notification is
    /// internal and reaping would release the group number.
    private static func waitForLeader(
        _ group: HookProcessGroup, until deadline: ContinuousClock.Instant, cancellation: CancellationFlag
    ) async -> HookProcessGroup.LeaderState {
        var pause = Duration.milliseconds(1)
        while true {
            let state = group.leaderState()
            let now = ContinuousClock.now
            if state != .running || now >= deadline || cancellation.isSet { return state }
            try? await QuietSleep.sleep(for: min(pause, deadline - now))
            // Quick answers for quick hooks, at most 50 ms late for slow ones.
            pause = min(pause * 2, .milliseconds(50))
        }
    }

    /// SIGTERM and SIGCONT to the group, up to `gracePeriod` for its members to exit, then
    /// SIGKILL and up to `killWait` for them to disappear. Only while the leader is unreaped.
    private static func terminate(_ group: HookProcessGroup, gracePeriod: Duration) async {
        group.signal(SIGTERM)
        group.signal(SIGCONT)
        await poll(until: ContinuousClock.now + gracePeriod) { group.liveMemberCount() == 0 }
        // Sent even when the group looked empty: a process forked while /proc was being listed
        // can be missed, and an empty group is unaffected.
        group.signal(SIGKILL)
        await poll(until: ContinuousClock.now + killWait) { group.liveMemberCount() == 0 }
    }

    /// Checks `condition` with growing pauses (1 ms to 50 ms) until it holds or `deadline` passes.
    private static func poll(until deadline: ContinuousClock.Instant, _ condition: () -> Bool) async {
        var pause = Duration.milliseconds(1)
        while !condition() {
            let now = ContinuousClock.now
            guard now < deadline else { return }
            try? await QuietSleep.sleep(for: min(pause, deadline - now))
            pause = min(pause * 2, .milliseconds(50))
        }
    }
}

/// Set from a task cancellation handler, read by the supervision loop.
private final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
