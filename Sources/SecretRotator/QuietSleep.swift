import Dispatch
import Synchronization

/// `Task.sleep` without waking libdispatch's workqueue monitor. On Swift 6.3 for Linux a
/// clock-based `Task.sleep` is scheduled by the runtime straight onto libdispatch's default
/// (non-overcommit) root queue, bypassing the executor hooks; the first worker of that queue
/// starts a 1 s monitor timer that then wakes the process every second forever. This sleep
/// arms a timer on a serial queue instead (serial queues run on overcommit workers, which are
/// not monitored) and is cancelled like `Task.sleep` (it throws `CancellationError`).
///
/// The timer is a dispatch timer source, cancelled when the sleep ends either way: a cancelled
/// source leaves libdispatch at once with everything its handler holds. `asyncAfter` with a
/// cancelled `DispatchWorkItem` does not: the item, its block and the continuation state stay
/// in the timer heap until the original deadline. The daemon's loop cancels one sleep of up to
/// 5 minutes at every wake-up, so those items piled up by the thousand (about 2 KB per step;
/// Tests/Benchmarks/soak.py measures it).
public enum QuietSleep {
    private static let queue = DispatchQueue(label: "secret-rotator.sleep")

    /// A dispatch source is thread-safe (cancel may be called from any thread) but not marked Sendable.
    private final class Timer: @unchecked Sendable {
        let source: any DispatchSourceTimer
        init(_ source: any DispatchSourceTimer) { self.source = source }
    }

    private struct Sleeper {
        var continuation: CheckedContinuation<Void, any Error>?
        var timer: Timer?
    }

    /// Sleeps for `duration` (a negative one returns at the next turn of the timer queue).
    /// - Throws: `CancellationError` when the task is cancelled first.
    public static func sleep(for duration: Duration) async throws {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = max(0, seconds) * 1_000_000_000 + max(0, attoseconds / 1_000_000_000)
        let state = Mutex(Sleeper())
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let started = state.withLock { value -> Bool in
                    if Task.isCancelled { return false }
                    let source = DispatchSource.makeTimerSource(queue: queue)
                    source.setEventHandler {
                        let (waiter, timer) = Self.take(state)
                        // Cancelling releases this handler, which holds `state`: nothing is left behind.
                        timer?.source.cancel()
                        waiter?.resume()
                    }
                    source.schedule(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds)))
                    value.continuation = continuation
                    value.timer = Timer(source)
                    source.resume()
                    return true
                }
                if !started { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let (waiter, timer) = Self.take(state)
            timer?.source.cancel()
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Takes the waiter and the timer out of `state`, once: whoever comes second finds neither.
    private static func take(_ state: borrowing Mutex<Sleeper>) -> (CheckedContinuation<Void, any Error>?, Timer?) {
        state.withLock { value in
            defer { value = Sleeper() }
            return (value.continuation, value.timer)
        }
    }

    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await sleep(for: deadline - ContinuousClock.now)
    }
}
