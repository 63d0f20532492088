import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sends notifications to the service manager from a thread of its own, so no caller ever waits
/// for PID 1: sd_notify(3) does a blocking `sendmsg` on a datagram socket, and a service
/// manager that stops reading would otherwise hold the scheduler loop (and the SIGTERM
/// handling) for as long as it does not read. Callers only change a `NotificationQueue` under
/// a lock; the thread takes from it what is due and sends it. While a send blocks, later
/// messages wait in the bounded queue (the oldest dropped and counted when it is full).
///
/// The thread sleeps on a semaphore while nothing is due (no periodic wake-up) and ends when
/// the last reference to this object goes, after the send in progress returns.
final class NotificationSender: Sendable {
    private let core: Core

    /// Starts the sending thread. `send` delivers one notification (sd_notify in the daemon).
    /// If no thread can be started, every message is sent in the caller's thread instead.
    init(queue: NotificationQueue, send: @escaping @Sendable (String) -> Void) {
        core = Core(queue: queue, send: send)
        core.start()
    }

    deinit {
        core.close()
    }

    /// Changes the queue at the current time and wakes the thread.
    func submit(_ change: (inout NotificationQueue, ContinuousClock.Instant) -> Void) {
        core.submit(change)
    }

    /// Messages dropped so far because the queue was full (the service manager was not reading).
    var dropped: Int { core.state.withLock { $0.queue.dropped } }

    /// Status texts replaced by a later one before they were sent.
    var superseded: Int { core.state.withLock { $0.queue.superseded } }

    /// Waits until every message submitted so far has been handed to the service manager (a
    /// coalesced status text excepted), at most `timeout`: before the process exits, so the last
    /// STOPPING=1 is not lost with the thread. Returns at once when nothing is waiting.
    func flush(upTo timeout: Duration) {
        core.flush(upTo: timeout)
    }

    /// Ends the thread and waits for it: once the send in progress (if any) returns, nothing
    /// more is sent. For tests that change `NOTIFY_SOCKET` afterwards.
    func shutDown() {
        core.close()
        core.waitForEnd()
    }

    /// What the thread owns; the thread keeps it alive while it runs.
    private final class Core: Sendable {
        struct State {
            var queue: NotificationQueue
            var closed = false
            var threadRunning = false
            /// A send is in progress (taken from the queue, not yet returned).
            var sending = false
            /// `flush` callers, told when nothing is left to send at once.
            var flushWaiters: [Semaphore] = []
        }

        let state: Mutex<State>
        private let send: @Sendable (String) -> Void
        private let wakeup = Semaphore()
        private let ended = Semaphore()

        init(queue: NotificationQueue, send: @escaping @Sendable (String) -> Void) {
            state = Mutex(State(queue: queue))
            self.send = send
        }

        func start() {
            let context = Unmanaged.passRetained(self).toOpaque()
            var thread = pthread_t()
            let created = pthread_create(
                &thread, nil,
                { raw in
                    guard let raw else { return nil }
                    let core = Unmanaged<Core>.fromOpaque(raw).takeRetainedValue()
                    core.run()
                    return nil
                }, context)
            guard created == 0 else {
                Unmanaged<Core>.fromOpaque(context).release()
                return
            }
            state.withLock { $0.threadRunning = true }
            pthread_detach(thread)
        }

        func submit(_ change: (inout NotificationQueue, ContinuousClock.Instant) -> Void) {
            let threadRunning = state.withLock { state -> Bool in
                guard !state.closed else { return true }
                change(&state.queue, .now)
                return state.threadRunning
            }
            if threadRunning {
                wakeup.signal()
            } else {
                // No thread (pthread_create failed): send what is due here, as sd_notify always did.
                drainDue()
            }
        }

        func close() {
            state.withLock { $0.closed = true }
            wakeup.signal()
        }

        func flush(upTo timeout: Duration) {
            let waiter = Semaphore()
            let pending = state.withLock { state -> Bool in
                guard state.threadRunning, !state.closed, state.sending || state.queue.hasMessages else { return false }
                state.flushWaiters.append(waiter)
                return true
            }
            guard pending else { return }
            wakeup.signal()
            waiter.wait(timeout: timeout)
        }

        func waitForEnd() {
            guard state.withLock({ $0.threadRunning }) else { return }
            ended.wait(timeout: nil)
            // Left signalled for any later caller.
            ended.signal()
        }

        private func run() {
            defer { ended.signal() }
            while true {
                let (next, drained) = state.withLock { state -> (NotificationQueue.Next?, [Semaphore]) in
                    let next = state.closed ? nil : state.queue.next(now: .now)
                    if case .send = next {
                        state.sending = true
                        return (next, [])
                    }
                    state.sending = false
                    defer { state.flushWaiters = [] }
                    return (next, state.flushWaiters)
                }
                for waiter in drained { waiter.signal() }
                switch next {
                case nil: return
                case .send(let message): send(message)
                case .wait(let until): wakeup.wait(timeout: until - .now)
                case .idle: wakeup.wait(timeout: nil)
                }
            }
        }

        private func drainDue() {
            while case .send(let message) = state.withLock({ $0.queue.next(now: .now) }) {
                send(message)
            }
        }
    }

    /// A counting semaphore on the monotonic clock, waited on without any periodic wake-up.
    private final class Semaphore: @unchecked Sendable {
        // DispatchSemaphore is thread-safe; it is not marked Sendable in corelibs-libdispatch.
        private let semaphore = DispatchSemaphore(value: 0)

        func signal() { semaphore.signal() }

        /// Waits for a signal, or at most `timeout` (nil: without limit).
        func wait(timeout: Duration?) {
            guard let timeout else {
                semaphore.wait()
                return
            }
            let (seconds, attoseconds) = timeout.components
            let nanoseconds = max(0, seconds) * 1_000_000_000 + max(0, attoseconds / 1_000_000_000)
            _ = semaphore.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds)))
        }
    }
}
