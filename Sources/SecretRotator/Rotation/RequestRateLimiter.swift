/// The global API budget (`requests_per_second`): callers wait for their slot, so apps that
/// fall due together are spread out instead of hitting GenAuth in one burst.
public actor RequestRateLimiter {
    private let spacing: Duration
    private var nextSlot: ContinuousClock.Instant

    public init(requestsPerSecond: Double) {
        let nanoseconds = Int64(1_000_000_000 / max(requestsPerSecond, 0.001))
        spacing = .nanoseconds(nanoseconds)
        nextSlot = ContinuousClock.now
    }

    public func acquire() async {
        let now = ContinuousClock.now
        let slot = max(now, nextSlot)
        nextSlot = slot + spacing
        if slot > now {
            try? await Task.sleep(until: slot, clock: .continuous)
        }
    }
}
