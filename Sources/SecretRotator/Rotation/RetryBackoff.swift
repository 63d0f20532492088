/// How long to wait before the next attempt after consecutive failures: exponential growth
/// from `retry.initial` by `retry.multiplier`, capped at `retry.max`, with full jitter so a
/// fleet that failed together does not retry together. Pure: the caller supplies the random
/// source, so tests see exact sequences.
public struct RetryBackoff: Sendable {
    public let policy: RetryPolicy

    /// A server's Retry-After is honoured, but a hostile or broken value cannot park an app
    /// for longer than this.
    public static let retryAfterLimit: Duration = .seconds(86_400)

    public init(policy: RetryPolicy) {
        self.policy = policy
    }

    /// The upper bound of the wait after `failures` consecutive failures (1 = first failure).
    public func ceiling(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        let initial = Double(DurationSyntax.milliseconds(of: policy.initial))
        let maximum = Double(DurationSyntax.milliseconds(of: policy.max))
        var value = initial
        var step = 1
        while step < failures && value < maximum {
            value *= policy.multiplier
            step += 1
        }
        return .milliseconds(Int64(min(value, maximum)))
    }

    /// A wait drawn uniformly between `retry.initial` and the ceiling, never shorter than a
    /// Retry-After the server sent.
    public func delay(
        afterFailures failures: Int, retryAfter: Duration? = nil, using generator: inout some RandomNumberGenerator
    ) -> Duration {
        let ceiling = ceiling(afterFailures: max(1, failures))
        let low = DurationSyntax.milliseconds(of: policy.initial)
        let high = max(low, DurationSyntax.milliseconds(of: ceiling))
        let drawn = Duration.milliseconds(Int64.random(in: low...high, using: &generator))
        guard let retryAfter else { return drawn }
        return max(drawn, min(retryAfter, Self.retryAfterLimit))
    }

    /// Permanent and authentication failures will not heal by retrying soon: wait the longest
    /// allowed time, so a broken app is reported loudly but never hammers the API.
    public var permanentFailureDelay: Duration { policy.max }
}
