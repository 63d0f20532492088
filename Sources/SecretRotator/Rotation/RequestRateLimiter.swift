import Synchronization

/// The global API budget (`requests_per_second`): callers wait for their slot, so apps that
/// fall due together are spread out instead of hitting GenAuth in one burst. A reload sets a
/// new rate (`setRate`), and it applies at once, also to callers already waiting: they take
/// a new slot on the new schedule (a raised budget must not leave them asleep until a slot
/// the old, slower rate gave them).
public final class RequestRateLimiter: Sendable {
    private struct State {
        var schedule: SlotSchedule
        /// Moves on at every rate change; a waiter that sees it move takes a new slot.
        var generation = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state: Mutex<State>

    public init(requestsPerSecond: Double) {
        state = Mutex(State(schedule: SlotSchedule(requestsPerSecond: requestsPerSecond, start: ContinuousClock.now)))
    }

    /// Waits for the caller's slot (returns at once when the budget has room).
    public func acquire() async {
        while true {
            let now = ContinuousClock.now
            let (slot, generation) = state.withLock { ($0.schedule.reserve(now: now), $0.generation) }
            if slot <= now || Task.isCancelled { return }
            let rateChanged = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try? await QuietSleep.sleep(until: slot)
                    return false
                }
                group.addTask { await self.rateChange(after: generation) }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            if !rateChanged { return }
        }
    }

    /// Slots handed out from now on follow `1 / requestsPerSecond`; callers waiting for a slot
    /// of the old rate take a new one.
    public func setRate(requestsPerSecond: Double) {
        let now = ContinuousClock.now
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.schedule.setRate(requestsPerSecond: requestsPerSecond, now: now)
            state.generation += 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The time between two slots now (tests read it after a reload).
    var spacing: Duration { state.withLock { $0.schedule.spacing } }

    /// Returns (true) when the rate changes after `generation`, or (false) when cancelled.
    private func rateChange(after generation: Int) async -> Bool {
        let id = state.withLock { state -> Int in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.generation != generation || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
            return state.withLock { $0.generation != generation }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

/// The decision behind `RequestRateLimiter`, without a clock so it is tested without waiting:
/// each caller gets the next free slot, slots are `1/rate` apart, and idle time earns no
/// credit (after a quiet hour, ten callers still go one slot apart, not all at once).
struct SlotSchedule {
    typealias Instant = ContinuousClock.Instant

    private(set) var spacing: Duration
    private var nextSlot: Instant

    init(requestsPerSecond: Double, start: Instant) {
        spacing = Self.spacing(requestsPerSecond)
        nextSlot = start
    }

    /// When a caller arriving at `now` may send its request.
    mutating func reserve(now: Instant) -> Instant {
        let slot = max(now, nextSlot)
        nextSlot = slot.advanced(by: spacing)
        return slot
    }

    /// A new rate at `now`. Slots handed out but not yet reached are given up (their callers
    /// take new ones), so the next free slot is one new spacing after the last slot given, but
    /// never later than one new spacing from now: a call may have gone out just now.
    mutating func setRate(requestsPerSecond: Double, now: Instant) {
        let new = Self.spacing(requestsPerSecond)
        nextSlot = min(nextSlot.advanced(by: new - spacing), now.advanced(by: new))
        spacing = new
    }

    private static func spacing(_ requestsPerSecond: Double) -> Duration {
        .nanoseconds(Int64(1_000_000_000 / max(requestsPerSecond, 0.001)))
    }
}
