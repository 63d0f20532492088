/// The time source for token expiry: a seam so tests can expire a token without waiting.
public protocol TokenClock: Sendable {
    func now() -> ContinuousClock.Instant
}

/// The real, monotonic clock (immune to wall-clock jumps).
public struct SystemTokenClock: TokenClock {
    public init() {}
    public func now() -> ContinuousClock.Instant { ContinuousClock.now }
}
