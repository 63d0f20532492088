#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon remembers about one app across restarts (Architecture, invariants 4, 8
/// and 10). It never holds a secret: the secret the outputs should hold lives in a separate
/// 0600 `CurrentSecret` record.
///
/// Kept as a row of the state database's `app_state` table (`StateDatabase`). JSON records of
/// the earlier file-based store decode too, for the import: every field but `appID`
/// is optional there, and the oldest layout's `lastSuccess` key is read as `secretObtainedAt`.
public struct AppState: Codable, Sendable, Equatable {
    /// A call whose outcome must be settled after a crash or a timeout.
    public enum Intent: String, Codable, Sendable {
        /// refresh-application-secret is about to be or was sent; the outcome may be unknown.
        case refresh
        /// Written by older layouts around a read; harmless, treated as nothing owed.
        case fetch
    }

    /// The last output repair, for `status`: when and why (`missing`, `content`, `mode`, ...).
    public struct Repair: Codable, Sendable, Equatable {
        public var at: Date
        public var causes: [String]

        public init(at: Date, causes: [String]) {
            self.at = at
            self.causes = causes
        }
    }

    /// What kind of failure the current backoff follows (`consecutiveFailures` > 0), so the
    /// engine can tell an outage that ended from a failure that will not heal by itself.
    public enum FailureKind: String, Codable, Sendable {
        /// GenAuth unreachable or answering 5xx/429 without a Retry-After (also a read whose
        /// answer was lost): retried soon once GenAuth answers any call again.
        case transient
        /// Transient, but the server named its own time (`Retry-After`): that time is kept.
        case throttled
        /// Will not heal soon (bad credentials, unknown app): waits its long backoff.
        case permanent
        /// GenAuth refused to let us read or rotate (403): waits its long backoff.
        case forbidden
        /// Our own side failed (an output, a hook, a consumer, the state directory).
        case local
    }

    public var appID: String
    /// The version every output holds (counts secrets written; `version` in json outputs and hooks).
    public var version: Int = 0
    /// When the secret on disk was obtained: rotated by us, or found changed upstream. Only a new
    /// secret moves this, so only a new secret moves the rotation schedule.
    public var secretObtainedAt: Date?
    /// When GenAuth last confirmed the secret (a fetch, a verification or a reconcile read).
    public var lastChecked: Date?
    public var consecutiveFailures: Int = 0
    /// The one backoff every step obeys after a failure, persisted so a restart cannot burst.
    public var nextAttempt: Date?
    /// The last failure, already free of secrets, for status output.
    public var lastError: String?
    /// The kind of the failure `nextAttempt` waits after; nil when nothing failed, and in
    /// records from before it was kept (those keep their backoff).
    public var lastFailureKind: FailureKind?
    public var intent: Intent?
    /// When the refresh in `intent` was sent (or about to be).
    public var intentStartedAt: Date?
    /// Reads after an unknown refresh outcome that still found the old secret. Two, a settle
    /// period apart, are needed before the refresh is declared not to have happened.
    public var unchangedReads: Int = 0
    /// A rotation was started (by the schedule or an operator) and has not yet produced a
    /// secret: after a failed or unapplied refresh, the refresh is retried once the backoff
    /// allows, whatever the schedule says.
    public var rotationOwed: Bool = false
    /// The highest version whose on_rotate hook finished; lower than `version` means a hook is owed.
    public var hookDoneVersion: Int = 0
    /// `SecretFingerprint` of the secret the outputs hold, to compare without storing it here.
    public var secretFingerprint: String?
    /// A one-off check that GenAuth still holds what we wrote, one settle period after a rotation.
    public var settleCheckDue: Date?
    /// When the outputs' secret was last found to be GenAuth's current one by `verify`.
    public var lastVerified: Date?
    public var lastRepair: Repair?
    /// The highest version every consumer unit was told of and settled on (confirmed,
    /// signalled or not running); lower than `version` means a notification is owed.
    public var consumersDoneVersion: Int = 0
    /// Per consumer unit: last notified, last confirmed, state (`ConsumerRecord`).
    public var consumers: [ConsumerRecord] = []
    /// The highest version the fleet was told of (a rotation notice etcd accepted), or that
    /// needs no notice (a follower's, a single host's). Lower than `version` means a notice is
    /// owed: it is published when etcd accepts it, however long etcd refuses (Architecture, Fleet).
    public var announcedVersion: Int = 0

    public init(appID: String) {
        self.appID = appID
    }

    enum CodingKeys: String, CodingKey {
        case appID, version, consecutiveFailures, nextAttempt, lastError, intent, intentStartedAt, unchangedReads, rotationOwed
        case hookDoneVersion, secretFingerprint, settleCheckDue, lastVerified, lastRepair, lastChecked
        case secretObtainedAt, consumersDoneVersion, consumers, lastFailureKind, announcedVersion
    }

    /// Named `lastSuccess` in the oldest layout's JSON records; the meaning (when the secret was
    /// obtained) is kept. Read only when importing such a record.
    private enum LegacyCodingKeys: String, CodingKey {
        case lastSuccess
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        appID = try c.decode(String.self, forKey: .appID)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 0
        secretObtainedAt = try c.decodeIfPresent(Date.self, forKey: .secretObtainedAt)
        if secretObtainedAt == nil, let legacy = try? decoder.container(keyedBy: LegacyCodingKeys.self) {
            secretObtainedAt = try legacy.decodeIfPresent(Date.self, forKey: .lastSuccess)
        }
        lastChecked = try c.decodeIfPresent(Date.self, forKey: .lastChecked)
        consecutiveFailures = try c.decodeIfPresent(Int.self, forKey: .consecutiveFailures) ?? 0
        nextAttempt = try c.decodeIfPresent(Date.self, forKey: .nextAttempt)
        lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
        // An unknown word (a newer version's kind) is read as no kind: the backoff is kept.
        lastFailureKind = try? c.decodeIfPresent(FailureKind.self, forKey: .lastFailureKind)
        intent = try c.decodeIfPresent(Intent.self, forKey: .intent)
        if intent == .fetch { intent = nil }
        intentStartedAt = try c.decodeIfPresent(Date.self, forKey: .intentStartedAt)
        unchangedReads = try c.decodeIfPresent(Int.self, forKey: .unchangedReads) ?? 0
        rotationOwed = try c.decodeIfPresent(Bool.self, forKey: .rotationOwed) ?? false
        hookDoneVersion = try c.decodeIfPresent(Int.self, forKey: .hookDoneVersion) ?? 0
        secretFingerprint = try c.decodeIfPresent(String.self, forKey: .secretFingerprint)
        settleCheckDue = try c.decodeIfPresent(Date.self, forKey: .settleCheckDue)
        lastVerified = try c.decodeIfPresent(Date.self, forKey: .lastVerified)
        lastRepair = try c.decodeIfPresent(Repair.self, forKey: .lastRepair)
        consumersDoneVersion = try c.decodeIfPresent(Int.self, forKey: .consumersDoneVersion) ?? 0
        // What each consumer was last told is bookkeeping for `status`: an unreadable column
        // loses only that (its units show as pending), not the whole record with the version.
        consumers = (try? c.decodeIfPresent([ConsumerRecord].self, forKey: .consumers)) ?? []
        // A record from before notices were owed owes none: what it holds was announced then or never will be.
        announcedVersion = try c.decodeIfPresent(Int.self, forKey: .announcedVersion) ?? version
    }
}

/// The secret an app's outputs should hold, kept privately (0600, fsynced) in the state
/// directory: written before any output, so a crash resumes from it instead of rotating again,
/// and kept afterwards, so drifted outputs are repaired without calling GenAuth.
///
/// When `version` is above `AppState.version`, it is not yet on every output. Pending records of
/// the older file-based layout have the same shape and are read as this.
public struct CurrentSecret: Codable, Sendable, Equatable, CustomStringConvertible {
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

    public var fingerprint: String { SecretFingerprint.of(secretValue) }

    public var description: String { "CurrentSecret(app \(appID), version \(version), secret <redacted>)" }
}
