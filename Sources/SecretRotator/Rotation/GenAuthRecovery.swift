#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When GenAuth answers again after transient failures, when each app waiting on a transient
/// failure's backoff is retried (pure; table test in `GenAuthRecoveryScheduleTests`): one
/// request slot apart from the answer, in the order their retries were due (ties in config
/// order), each at a jitter inside its slot so that hosts of a fleet do not retry in step.
public enum GenAuthRecovery {
    /// An app waiting on a transient backoff: its id, when its retry was due, its config position.
    public struct Waiting: Sendable, Equatable {
        public var appID: String
        public var retryDue: Date
        public var index: Int

        public init(appID: String, retryDue: Date, index: Int) {
            self.appID = appID
            self.retryDue = retryDue
            self.index = index
        }
    }

    /// - Parameters:
    ///   - answeredAt: when GenAuth answered.
    ///   - spacing: the request budget's slot, seconds (`requests_per_second`).
    ///   - jitter: a fraction in [0, 1) for each app in turn.
    /// - Returns: each app's new retry date, earliest first: slot k (from 1) plus its jitter.
    public static func schedule(
        _ waiting: [Waiting], answeredAt: Date, spacing: TimeInterval, jitter: () -> Double
    ) -> [(appID: String, retryAt: Date)] {
        waiting.sorted { ($0.retryDue, $0.index) < ($1.retryDue, $1.index) }.enumerated().map { slot, app in
            (app.appID, answeredAt.addingTimeInterval(spacing * (Double(slot + 1) + jitter())))
        }
    }
}
