import Dispatch
import Synchronization

/// `Task.sleep` without waking libdispatch's workqueue monitor. On Swift 6.3 for Linux a
/// clock-based `Task.sleep` is scheduled by the runtime straight onto libdispatch's default
/// (non-overcommit) root queue, bypassing the executor hooks; the first worker of that queue
/// starts a 1 s monitor timer that then wakes the process every second forever. This sleep
/// arms a timer on a serial queue instead (serial queues run on overcommit workers, which are
/// not monitored) and is cancelled like `Task.sleep` (it throws `CancellationError`).
public enum QuietSleep {
    private static let queue = DispatchQueue(label: "secret-rotator.sleep")

    /// DispatchWorkItem is thread-safe (cancel may be called from any thread) but not marked Sendable here.
    private final class Timer: @unchecked Sendable {
        let item: DispatchWorkItem
        init(_ item: DispatchWorkItem) { self.item = item }
    }

    public static func sleep(for duration: Duration) async throws {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = max(0, seconds) * 1_000_000_000 + max(0, attoseconds / 1_000_000_000)
        let state = Mutex<(continuation: CheckedContinuation<Void, any Error>?, timer: Timer?)>((nil, nil))
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let item = DispatchWorkItem {
                    // The timer is dropped here and on cancel: state holds the item and the item
                    // holds state, a cycle that leaked every sleep (LeakSanitizer in CI).
                    let waiter = state.withLock { value -> CheckedContinuation<Void, any Error>? in
                        defer {
                            value.continuation = nil
                            value.timer = nil
                        }
                        return value.continuation
                    }
                    waiter?.resume()
                }
                let cancelled = state.withLock { value -> Bool in
                    if Task.isCancelled { return true }
                    value.continuation = continuation
                    value.timer = Timer(item)
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                queue.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds)), execute: item)
            }
        } onCancel: {
            let (waiter, timer) = state.withLock { value -> (CheckedContinuation<Void, any Error>?, Timer?) in
                defer {
                    value.continuation = nil
                    value.timer = nil
                }
                return (value.continuation, value.timer)
            }
            timer?.item.cancel()
            waiter?.resume(throwing: CancellationError())
        }
    }

    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await sleep(for: deadline - ContinuousClock.now)
    }
}
