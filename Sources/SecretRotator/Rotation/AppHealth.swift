#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a monitoring check concludes about one app, from its status alone (pure: no I/O).
///
/// An app is healthy when it has a secret, that secret is on every output as configured,
/// its last attempt did not fail, and its next step is not overdue beyond a grace period.
/// Each way of falling short is a `Finding`; the worst finding of all apps decides the exit
/// status of `secret-rotator status` (`Verdict`).
public struct AppHealth: Sendable, Encodable, Equatable {
    public enum Finding: Sendable, Equatable, Encodable, CustomStringConvertible {
        /// The app's records (or the whole state database) could not be read: nothing is known.
        case stateUnreadable(String)
        /// An output could not be inspected (e.g. EACCES): unknown, not known bad.
        case outputUnchecked(path: String, reason: String)
        /// An output is missing, holds other content, or has another mode, owner or group.
        case outputBad(path: String, drift: String)
        /// An output holds other content than the saved record, and the record is what is
        /// behind: the daemon wrote a secret GenAuth answered but could not save its record
        /// (a full or read-only state directory; a refresh recorded as in flight whose answer
        /// is on the outputs but not in the record). The output most likely holds the live
        /// secret; the daemon saves the record once the state directory takes writes.
        case recordNotSaved(path: String)
        /// No secret was ever obtained for the app (never ran, or every attempt failed).
        case neverObtained
        /// The scheduled rotation (or poll) was due more than the grace period ago: the daemon is
        /// stopped or stuck, or every attempt since has failed.
        case overdue(since: Date)
        /// The last attempt failed (`consecutiveFailures` in a row); the daemon retries.
        case failing(attempts: Int, lastError: String?)
        /// A refresh was started and is not settled: GenAuth may already have killed the secret
        /// the outputs hold, until the daemon reconciles (reads it back). Under way while
        /// fresh; its outcome counts as unknown once `stale`: unresolved for longer than
        /// `AppHealth.unresolvedRefreshLimit`.
        case unresolvedRefresh(since: Date?, stale: Bool)
        /// The fleet cannot do its part for this app: no lease (so not rotated
        /// here), a leader that does not list it, or no watch (followed by polling only).
        /// WARNING: the secret on disk is still valid; overdue catches what lasts too long.
        case cluster(String)
        /// A consumer unit has not been confirmed on the app's current version for longer than
        /// `consumer_grace`: GenAuth killed the secret it may still hold.
        case consumerBehind(unit: String, version: Int, since: Date, detail: String?)

        public var verdict: Verdict {
            switch self {
            case .stateUnreadable, .outputUnchecked: .unknown
            case .outputBad: .outputs
            case .recordNotSaved: .failing
            case .neverObtained, .overdue: .overdue
            case .failing, .cluster: .failing
            case .consumerBehind: .consumers
            case .unresolvedRefresh(_, let stale): stale ? .overdue : .failing
            }
        }

        public var description: String {
            switch self {
            case .stateUnreadable(let reason): "state unreadable: \(reason)"
            case .outputUnchecked(let path, let reason): "output \(path) could not be checked: \(reason)"
            case .outputBad(let path, let drift): "output \(path) is not as configured: \(drift)"
            case .recordNotSaved(let path):
                "the state record could not be saved: output \(path) holds a newer secret than the record (written after GenAuth answered); the daemon will save the record once the state directory takes writes"
            case .neverObtained: "no secret obtained yet"
            case .overdue(let since): "overdue: its scheduled rotation was due at \(since.formatted(.iso8601))"
            case .failing(let attempts, let lastError):
                "failing: \(attempts) failed attempt\(attempts == 1 ? "" : "s"); last error: \(lastError ?? "unknown")"
            case .cluster(let problem): "cluster: \(problem)"
            case .consumerBehind(let unit, let version, let since, let detail):
                "consumer \(unit) is not confirmed on version \(version) (written \(since.formatted(.iso8601)))\(detail.map { ": \($0)" } ?? "")"
            case .unresolvedRefresh(let since, false):
                // Not "unknown" yet: the daemon may still be before the call (a pre-flight, the
                // fleet's intent write) or waiting for its answer.
                "a refresh is under way\(since.map { " since \($0.formatted(.iso8601))" } ?? "") and not answered yet: until it is, the outputs may hold a secret GenAuth has already replaced"
            case .unresolvedRefresh(let since, true):
                "a refresh's outcome is unknown\(since.map { " since \($0.formatted(.iso8601))" } ?? ""): the outputs may hold a secret GenAuth has already replaced, until the daemon reconciles it"
            }
        }

        private enum CodingKeys: String, CodingKey { case kind, detail }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(verdict.word, forKey: .kind)
            try container.encode(description, forKey: .detail)
        }
    }

    /// The exit statuses of `secret-rotator status`. The worst verdict of all apps' findings
    /// is the command's exit status, worst meaning: outputs (3) over overdue (2) over unknown
    /// (4) over failing (1). A known bad secret outranks an unknown: one unreadable output
    /// must not turn a missing one elsewhere into UNKNOWN, which monitoring may not page on.
    public enum Verdict: Int32, Sendable, Comparable, Encodable {
        case ok = 0
        /// The last attempt failed; the secret on disk is still the current one.
        case failing = 1
        /// Overdue beyond the grace period, or no secret ever obtained.
        case overdue = 2
        /// An output is missing or drifted: a service may read no secret or a wrong one.
        case outputs = 3
        /// The state could not be read, or an output could not be inspected.
        case unknown = 4
        /// A consumer unit is not confirmed on the current secret past its grace period: the
        /// service may be using a secret GenAuth has killed.
        case consumers = 5

        /// 0 ok, 1 failing, 2 unknown, 3 overdue, 4 consumers, 5 outputs.
        public var severity: Int {
            switch self {
            case .ok: 0
            case .failing: 1
            case .unknown: 2
            case .overdue: 3
            case .consumers: 4
            case .outputs: 5
            }
        }

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.severity < rhs.severity }

        /// Every verdict in the order summaries and perfdata list them.
        public static let listed: [Verdict] = [.ok, .failing, .overdue, .consumers, .outputs, .unknown]

        /// One word for JSON and the table: ok, failing, overdue, outputs, unknown.
        public var word: String {
            switch self {
            case .ok: "ok"
            case .failing: "failing"
            case .overdue: "overdue"
            case .outputs: "outputs"
            case .unknown: "unknown"
            case .consumers: "consumers"
            }
        }

        /// The Monitoring Plugins state (Monitoring Plugins Development Guidelines, "Plugin
        /// Return Codes"): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A failing app still has a
        /// valid secret (WARNING); overdue, never obtained or a bad output is CRITICAL.
        public var pluginState: (code: Int32, word: String) {
            switch self {
            case .ok: (0, "OK")
            case .failing: (1, "WARNING")
            case .overdue, .outputs, .consumers: (2, "CRITICAL")
            case .unknown: (3, "UNKNOWN")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(word)
        }
    }

    public let findings: [Finding]

    public var verdict: Verdict { findings.map(\.verdict).max() ?? .ok }

    /// The grace period when `status --grace` is not given: 10 % of the app's interval, at
    /// least 10 minutes (a daemon restart or a retry does not page anyone).
    public static func defaultGrace(interval: Duration) -> Duration {
        max(interval / 10, .seconds(600))
    }

    /// How long a refresh's outcome may stay unknown before it counts as overdue (CRITICAL):
    /// a running daemon reconciles within seconds, so two minutes (or the grace, if shorter)
    /// means the daemon is stopped, stuck, or cannot reach GenAuth to read the secret back.
    public static let unresolvedRefreshLimit: Duration = .seconds(120)

    /// Whether an app is settled from its records alone: it has a secret, its last attempt
    /// did not fail, no refresh is unsettled and no held secret waits for its outputs (the
    /// engine's answer to a standalone `rotate`/`fetch`). `judge` adds what needs the clock,
    /// the outputs and the fleet; an app `judge` finds `failing`, `neverObtained` or with an
    /// `unresolvedRefresh` is never settled.
    public static func isSettled(_ state: AppState, heldVersion: Int?) -> Bool {
        state.version > 0 && state.consecutiveFailures == 0 && state.intent == nil && (heldVersion ?? 0) <= state.version
    }

    /// - Parameters:
    ///   - outputFindings: the outputs' inspection (`outputBad`/`outputUnchecked`), made by the caller.
    ///   - grace: how long past `app.nextDue` a step may still be pending.
    public static func judge(
        _ app: StatusReport.App, outputFindings: [Finding], now: Date, grace: Duration, cluster: ClusterStatus? = nil
    ) -> AppHealth {
        var findings: [Finding] = app.problems.map { .stateUnreadable($0) }
        if findings.isEmpty {
            findings += outputFindings
            if !app.hasSecret {
                findings.append(.neverObtained)
            } else if let due = app.scheduledDue, now.timeIntervalSince(due) > Double(grace.components.seconds) {
                findings.append(.overdue(since: due))
            }
            if app.consecutiveFailures > 0 {
                findings.append(.failing(attempts: app.consecutiveFailures, lastError: app.lastError))
            }
            // An unsaved record of a refresh's answer explains the recorded intent: the refresh
            // was answered, its outcome is not unknown.
            let answeredUnsaved = outputFindings.contains { if case .recordNotSaved = $0 { true } else { false } }
            if app.unfinishedCall == AppState.Intent.refresh.rawValue, !answeredUnsaved {
                let limit = min(grace, unresolvedRefreshLimit)
                let stale = app.unfinishedSince.map { now.timeIntervalSince($0) > Double(limit.components.seconds) } ?? true
                findings.append(.unresolvedRefresh(since: app.unfinishedSince, stale: stale))
            }
            if let cluster { findings += clusterFindings(app, cluster) }
            for behind in app.consumersBehind {
                if now.timeIntervalSince(behind.since) > RotationPlanner.seconds(app.consumerGrace) {
                    findings.append(.consumerBehind(unit: behind.unit, version: app.version, since: behind.since, detail: behind.detail))
                }
            }
        }
        return AppHealth(findings: findings)
    }

    /// What the fleet's state (the daemon's `cluster.json`) means for one app.
    static func clusterFindings(_ app: StatusReport.App, _ cluster: ClusterStatus) -> [Finding] {
        var findings: [Finding] = []
        let why = cluster.problem.map { " (\($0))" } ?? ""
        if app.action == AppAction.rotate.rawValue {
            if cluster.role == .noLease {
                findings.append(.cluster("not rotated: this host holds no etcd lease, so it takes no part in the election\(why)"))
            } else if cluster.role == .candidate && cluster.leader == nil {
                findings.append(
                    .cluster("no host leads the election (its first key is not a candidate's, or it cannot be read)\(why); nobody rotates this app"))
            } else if cluster.unrotated.contains(app.id) {
                findings.append(
                    .cluster("the leader \(cluster.leader ?? "?") does not list this app, so no host rotates it; give every candidate the same rotate apps"))
            }
        }
        if cluster.watch == .polling {
            findings.append(.cluster("not watching etcd\(why): a new secret is picked up only at the next poll"))
        }
        return findings
    }
}
