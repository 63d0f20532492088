import Synchronization

/// The global API budget (`requests_per_second`): callers wait for their slot, so apps that
/// fall due together are spread out instead of hitting GenAuth in one burst. A reload sets a
/// new rate (`setRate`), used from the next slot handed out.
public final class RequestRateLimiter: Sendable {
    private let schedule: Mutex<SlotSchedule>

    public init(requestsPerSecond: Double) {
        schedule = Mutex(SlotSchedule(requestsPerSecond: requestsPerSecond, start: ContinuousClock.now))
    }

    /// Waits for the caller's slot (returns at once when the budget has room).
    public func acquire() async {
        let now = ContinuousClock.now
        let slot = schedule.withLock { $0.reserve(now: now) }
        if slot > now {
            try? await QuietSleep.sleep(until: slot)
        }
    }

    /// Slots handed out from now on are `1 / requestsPerSecond` apart; slots already handed
    /// out keep their time.
    public func setRate(requestsPerSecond: Double) {
        schedule.withLock { $0.setRate(requestsPerSecond: requestsPerSecond) }
    }

    /// The time between two slots now (tests read it after a reload).
    var spacing: Duration { schedule.withLock { $0.spacing } }
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

    /// A new rate: the next free slot moves to one new spacing after the last slot handed out
    /// (a lower rate holds the next caller back at once; a higher one lets it go sooner).
    mutating func setRate(requestsPerSecond: Double) {
        let new = Self.spacing(requestsPerSecond)
        nextSlot = nextSlot.advanced(by: new - spacing)
        spacing = new
    }

    private static func spacing(_ requestsPerSecond: Double) -> Duration {
        .nanoseconds(Int64(1_000_000_000 / max(requestsPerSecond, 0.001)))
    }
}
