import Foundation
import Synchronization

@testable import SecretRotator

/// A clock that moves only when the test says so, so backoff, schedules and token expiry are
/// checked without waiting. Hand `now` to whatever takes `now: @Sendable () -> Date` (the
/// engine, the coordinator, the metrics textfile) and `tokenClock` to the GenAuth client: both
/// read the same offset, so one `advance(by:)` moves every reader together.
package final class ManualClock: Sendable {
    // A Date, not an offset: `set(_:)` then `now()` gives back exactly the date set, which
    // tests compare for equality with the engine's due dates.
    private let current: Mutex<Date>
    private let startDate: Date
    private let startInstant = ContinuousClock.now

    /// Starts at a fixed date (2030-03-17), far from any real one, so a test that reads the
    /// real clock by mistake stands out.
    package init(start: Date = Date(timeIntervalSince1970: 1_900_000_000)) {
        startDate = start
        current = Mutex(start)
    }

    /// The clock's reading; a closure so it can be passed where a `now` parameter is expected.
    package var now: @Sendable () -> Date {
        { [self] in current.withLock { $0 } }
    }

    /// The same clock for what measures intervals on `ContinuousClock` (the token cache).
    package var tokenClock: any TokenClock { ManualTokenClock(clock: self) }

    package func advance(by duration: Duration) {
        // Whole and fractional parts apart: `.seconds(x)` comes back as exactly x.
        let (whole, attoseconds) = duration.components
        let seconds = TimeInterval(whole) + TimeInterval(attoseconds) / 1e18
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    /// Moves to `date` (backwards too: a wall clock can be set back).
    package func set(_ date: Date) { current.withLock { $0 = date } }

    fileprivate var instant: ContinuousClock.Instant {
        startInstant.advanced(by: .seconds(current.withLock { $0 }.timeIntervalSince(startDate)))
    }
}

private struct ManualTokenClock: TokenClock {
    let clock: ManualClock
    func now() -> ContinuousClock.Instant { clock.instant }
}
