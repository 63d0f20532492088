/// One loop's retries against etcd (publishing notices, recording an intent, campaigning,
/// keeping the lease alive, revoking it, re-establishing the watch), all through the one
/// backoff (`RetryBackoff`: exponential with full jitter, so a fleet that lost etcd together
/// does not come back together). It counts consecutive failures and tells its caller when the
/// loop changes state (working to failing and back), so the log gets one line per change,
/// never one per try.
struct EtcdRetry {
    let backoff: RetryBackoff
    /// Failures since the last success (0: working).
    private(set) var failures = 0

    init(policy: RetryPolicy) {
        backoff = RetryBackoff(policy: policy)
    }

    /// The same backoff with no wait longer than `limit` (a keepalive must try again well
    /// within the lease's TTL); the first wait is shortened too if it exceeds `limit`.
    init(policy: RetryPolicy, atMost limit: Duration) {
        self.init(policy: RetryPolicy(initial: min(policy.initial, limit), max: min(policy.max, limit), multiplier: policy.multiplier))
    }

    /// Records a failed try. Returns the wait before the next one (jittered, between the
    /// policy's first wait and the current ceiling), and whether it began a failing streak
    /// (the caller logs then, and only then).
    mutating func failed() -> (delay: Duration, began: Bool) {
        failures += 1
        var random = SystemRandomNumberGenerator()
        return (backoff.delay(afterFailures: failures, using: &random), failures == 1)
    }

    /// Records a successful try; returns how many failures it ended (0: it was working, so
    /// there is nothing to log).
    @discardableResult
    mutating func succeeded() -> Int {
        defer { failures = 0 }
        return failures
    }
}

extension RetryPolicy {
    /// The backoff of every retry against etcd: a first wait of 200 ms, doubling up to 5 s.
    /// Never more than five tries a second, and a fleet finds etcd back within about 5 s of
    /// its return.
    public static let etcd = RetryPolicy(initial: .milliseconds(200), max: .seconds(5), multiplier: 2)
}
