#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon knows about one consumer unit of an app: when it was last told of a new
/// secret, when systemd last showed it had picked one up, and how that went. Kept in the
/// app's `AppState` (state database), so `status` reads it and a restart resumes from it.
public struct ConsumerRecord: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable, Equatable {
        /// systemd shows the unit reloaded or restarted after the secret was written.
        case confirmed
        /// The signal was delivered to the main process; systemd cannot show more.
        case signalled
        /// The unit was not running: nothing holds the old secret, and it reads the new one
        /// when it starts. Not a failure.
        case notRunning = "not running"
        /// systemd refused, the job failed, or the unit shows no reload or restart since the write.
        case failed
    }

    /// The unit's name, e.g. `billing.service`.
    public var unit: String
    /// The version this record is about (what `lastNotified` told it of).
    public var version: Int
    public var state: State
    public var lastNotified: Date?
    /// When a version was last confirmed picked up (`confirmed`, `signalled`), kept across failures.
    public var lastConfirmed: Date?
    /// Why it failed, or what systemd showed; free of secrets (unit names and D-Bus errors only).
    public var detail: String?
    /// Since when it has failed without a pickup in between: the first failed notification
    /// of the streak. A consumer that fails at every rotation stays behind from there, however
    /// often the app rotates (measured from each new version, it never looked late).
    public var failingSince: Date?

    public init(
        unit: String, version: Int, state: State, lastNotified: Date?, lastConfirmed: Date?, detail: String?,
        failingSince: Date? = nil
    ) {
        self.unit = unit
        self.version = version
        self.state = state
        self.lastNotified = lastNotified
        self.lastConfirmed = lastConfirmed
        self.detail = detail
        self.failingSince = failingSince
    }

    /// Whether the unit needs nothing more for `version`.
    public func isSettled(at version: Int) -> Bool {
        self.version >= version && state != .failed
    }
}

/// What one notification found, fed to `AppTransitions` as part of `consumersNotified`.
public struct ConsumerOutcome: Sendable, Equatable {
    public var unit: String
    public var state: ConsumerRecord.State
    public var detail: String?

    public init(unit: String, state: ConsumerRecord.State, detail: String? = nil) {
        self.unit = unit
        self.state = state
        self.detail = detail
    }
}
