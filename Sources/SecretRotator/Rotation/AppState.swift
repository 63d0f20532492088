#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon remembers about one app across restarts (DESIGN §2, invariants 4 and 8).
/// It never holds a secret: secrets in flight live in a separate 0600 `PendingSecret` record.
public struct AppState: Codable, Sendable, Equatable {
    /// A step that must be finished or reconciled after a crash.
    public enum Intent: String, Codable, Sendable {
        /// refresh-application-secret is about to be or was called; the outcome may be unknown.
        case refresh
        /// get-application-secret is about to be or was called; harmless to repeat.
        case fetch
    }

    public var appID: String
    /// Counts the secrets written for this app; shown as `version` in json outputs and hooks.
    public var version: Int = 0
    /// When the secret now on disk was obtained from GenAuth.
    public var lastSuccess: Date?
    public var consecutiveFailures: Int = 0
    /// Backoff after failures, persisted so that a restart cannot cause a burst.
    public var nextAttempt: Date?
    /// The last failure, already free of secrets, for status output.
    public var lastError: String?
    public var intent: Intent?
    public var intentStartedAt: Date?
    /// The highest version whose on_rotate hook finished; lower than `version` means a hook is owed.
    public var hookDoneVersion: Int = 0
    /// `SecretFingerprint` of the secret the outputs hold, to reconcile without storing it.
    public var secretFingerprint: String?

    public init(appID: String) {
        self.appID = appID
    }
}

/// A secret received from GenAuth but not yet on every output: written (0600, fsynced) before
/// anything else happens, so a crash resumes from it instead of rotating again.
public struct PendingSecret: Codable, Sendable, Equatable, CustomStringConvertible {
    public let appID: String
    public let version: Int
    public let obtainedAt: Date
    private let secret: String

    public init(appID: String, version: Int, obtainedAt: Date, secret: SecretValue) {
        self.appID = appID
        self.version = version
        self.obtainedAt = obtainedAt
        self.secret = secret.exposed
    }

    public var secretValue: SecretValue { SecretValue(secret) }

    public var description: String { "PendingSecret(app \(appID), version \(version), secret <redacted>)" }
}
