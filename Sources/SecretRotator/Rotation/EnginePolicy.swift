/// The timing rules every app's transitions share, derived from the config.
public struct EnginePolicy: Sendable, Equatable {
    public var retry: RetryPolicy
    /// How long after a refresh was sent GenAuth may still apply it, as far as we assume: two
    /// request timeouts plus 5 s. A reconcile read comes no earlier, and the check that GenAuth
    /// still holds what we wrote comes one settle period after each rotation.
    public var settlePeriod: Duration
    /// `verify_interval`; `.zero` turns periodic verification off.
    public var verifyInterval: Duration

    public init(retry: RetryPolicy, settlePeriod: Duration, verifyInterval: Duration) {
        self.retry = retry
        self.settlePeriod = settlePeriod
        self.verifyInterval = verifyInterval
    }

    public init(config: RotatorConfig) {
        self.init(
            retry: config.defaults.retry, settlePeriod: Self.settlePeriod(requestTimeout: config.genauth.requestTimeout),
            verifyInterval: config.defaults.verifyInterval)
    }

    public static func settlePeriod(requestTimeout: Duration) -> Duration {
        requestTimeout * 2 + .seconds(5)
    }
}
