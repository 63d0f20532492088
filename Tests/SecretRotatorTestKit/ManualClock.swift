import Foundation
import Synchronization

@testable import SecretRotator

/// A clock that moves only when the test says so, so backoff, schedules and token expiry are
/// checked without waiting. Hand `now` to whatever takes `now: @Sendable () -> Date` (the
/// engine, the coordinator, the metrics textfile) and `tokenClock` to the GenAuth client: both
/// read the same offset, so one `advance(by:)` moves every reader together.
package final class ManualClock: Sendable {
    private let offset = Mutex<Duration>(.zero)
    private let startDate: Date
    private let startInstant = ContinuousClock.now

    /// Starts at a fixed date (2030-03-17), far from any real one, so a test that reads the
    /// real clock by mistake stands out.
    package init(start: Date = Date(timeIntervalSince1970: 1_900_000_000)) {
        startDate = start
    }

    /// The clock's reading; a closure so it can be passed where a `now` parameter is expected.
    package var now: @Sendable () -> Date {
        { [self] in startDate.addingTimeInterval(offset.withLock { $0 }.timeInterval) }
    }

    /// The same clock for what measures intervals on `ContinuousClock` (the token cache).
    package var tokenClock: any TokenClock { ManualTokenClock(clock: self) }

    package func advance(by duration: Duration) { offset.withLock { $0 += duration } }

    /// Moves to `date` (backwards too: a wall clock can be set back).
    package func set(_ date: Date) {
        let target = Duration.seconds(date.timeIntervalSince(startDate))
        offset.withLock { $0 = target }
    }

    fileprivate var elapsed: Duration { offset.withLock { $0 } }
    fileprivate var origin: ContinuousClock.Instant { startInstant }
}

private struct ManualTokenClock: TokenClock {
    let clock: ManualClock
    func now() -> ContinuousClock.Instant { clock.origin.advanced(by: clock.elapsed) }
}

extension Duration {
    /// The duration in seconds, as `Date` arithmetic wants it.
    package var timeInterval: TimeInterval {
        TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18
    }
}
