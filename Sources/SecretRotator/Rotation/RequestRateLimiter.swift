/// The global API budget (`requests_per_second`): callers wait for their slot, so apps that
/// fall due together are spread out instead of hitting GenAuth in one burst.
public actor RequestRateLimiter {
    private var schedule: SlotSchedule

    public init(requestsPerSecond: Double) {
        schedule = SlotSchedule(requestsPerSecond: requestsPerSecond, start: ContinuousClock.now)
    }

    public func acquire() async {
        let now = ContinuousClock.now
        let slot = schedule.reserve(now: now)
        if slot > now {
            try? await QuietSleep.sleep(until: slot)
        }
    }
}

/// The decision behind `RequestRateLimiter`, without a clock so it is tested without waiting:
/// each caller gets the next free slot, slots are `1/rate` apart, and idle time earns no
/// credit (after a quiet hour, ten callers still go one slot apart, not all at once).
struct SlotSchedule {
    typealias Instant = ContinuousClock.Instant

    let spacing: Duration
    private var nextSlot: Instant

    init(requestsPerSecond: Double, start: Instant) {
        spacing = .nanoseconds(Int64(1_000_000_000 / max(requestsPerSecond, 0.001)))
        nextSlot = start
    }

    /// When a caller arriving at `now` may send its request.
    mutating func reserve(now: Instant) -> Instant {
        let slot = max(now, nextSlot)
        nextSlot = slot.advanced(by: spacing)
        return slot
    }
}
