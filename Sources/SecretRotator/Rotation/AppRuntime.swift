#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the engine knows of one app besides its durable `AppState`, kept only in memory: an
/// operator's request and its one-time backoff override, the held secret's version, whether
/// GenAuth confirmed the held record since start-up, the fleet's hand-over and the time a
/// notice announced. A value, so every decision over it is a pure function (`AppDecisions`)
/// with a table test, and the engine only stores what they return.
public struct AppRuntime: Sendable, Equatable {
    /// An operator's request (`.refresh` or `.fetch`), or a fetch a notice or a hand-over queued.
    public var request: RotationPlanner.Step?
    /// The next step may run once despite a pending backoff (an operator asked).
    public var backoffOverride = false
    /// A pass (start, SIGHUP, `fetch`, the periodic re-check) asked to compare the outputs.
    public var outputsCheckDue = false
    /// Version of the held `CurrentSecret` record, nil when there is none.
    public var heldVersion: Int?
    /// Fingerprint (`SecretFingerprint`) of the held secret GenAuth confirmed since this
    /// process started (it answered that secret, or a read found it current). A record loaded
    /// from disk has none until then: it may be a restored backup whose secret GenAuth killed
    /// since, so a repair that would write it over an output's content reads GenAuth first.
    public var confirmedFingerprint: String?
    /// Another leader left this app with an unfinished refresh (its intent in etcd): until
    /// then (a settle period after that intent) its request may still land at GenAuth, so
    /// nothing about the app is decided here before a read.
    public var handOverUntil: Date?
    /// During a hand-over, the held secret is as new as the last notice: a change the first
    /// read finds can only be the old leader's last refresh, so the wait ends there.
    public var handOverCurrent = false
    /// When the leader obtained the secret a notice announced: a secret fetched for that
    /// notice counts from then, so a candidate that takes over rotates on the fleet's
    /// schedule, not a fetch's round trip later.
    public var upstreamRotatedAt: Date?

    public init(heldVersion: Int? = nil) {
        self.heldVersion = heldVersion
    }

    /// The planner's view of it.
    var facts: RotationPlanner.Facts {
        RotationPlanner.Facts(heldVersion: heldVersion, outputsCheckDue: outputsCheckDue)
    }
}

/// This host's part in a fleet, as a value: whether it is in one (`[cluster]`), whether it
/// leads the election, and whether its leadership is suspended (leading, but etcd has not
/// confirmed the lease lately).
public struct FleetView: Sendable, Equatable {
    public var inFleet: Bool
    public var leading: Bool
    public var suspended: Bool

    public static let singleHost = FleetView(inFleet: false, leading: false, suspended: false)

    public init(inFleet: Bool, leading: Bool, suspended: Bool) {
        self.inFleet = inFleet
        self.leading = leading
        self.suspended = suspended
    }

    /// Whether this host rotates `rotate` apps now (always on a single host).
    public var rotatesLocally: Bool { !inFleet || leading }

    /// The app as this host treats it: a `rotate` app of a fleet this host does not lead is
    /// followed (fetched on notices and polled on its interval), never rotated.
    public func effective(_ app: AppConfig) -> AppConfig {
        guard inFleet, app.action == .rotate, !leading else { return app }
        var follower = app
        follower.action = .follow
        return follower
    }

    /// The role `AppTransitions` announces by (`announce` actions are a leader's).
    public func role(of app: AppConfig) -> AppTransitions.FleetRole {
        guard inFleet, app.action == .rotate else { return .none }
        return leading ? .leader : .notLeading
    }
}
