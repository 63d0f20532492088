#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What rotates when over the coming days (`secret-rotator plan`), from the config and the
/// durable states alone: each app's next step as the planner schedules it (window and jitter
/// included), then its repeats every interval, as if every step succeeded on time. Pure.
public struct RotationForecast: Sendable, Encodable {
    public enum Kind: String, Sendable, Encodable {
        /// refresh-application-secret: consumers lose the old secret.
        case rotate
        /// A `follow` app reads GenAuth's current secret (nothing is rotated).
        case poll
        /// A first start with `first_start = "fetch"`: the current secret is written as it is.
        case fetch
    }

    public struct Entry: Sendable, Encodable, Equatable {
        /// When it starts (UTC in JSON).
        public let at: Date
        public let app: String
        public let appID: String
        public let kind: Kind
        /// Why: "scheduled", "first start", or "retry" (a started rotation that failed).
        public let reason: String
        /// `at` on the wall clock of the app's window zone ("Tue 02:23 Europe/Berlin"); nil
        /// for apps without a window.
        public let local: String?
        /// What a rotation touches (`RotationForecast.consumers(of:)`).
        public let consumers: [String]
    }

    /// Start and end of the horizon.
    public let from: Date
    public let until: Date
    /// Every entry in the horizon, by time (then app name).
    public let entries: [Entry]
    /// Names of the apps that had more than `perAppLimit` entries: only the first are listed.
    public let truncatedApps: [String]

    /// At most this many entries per app: a 1-minute test interval over 366 days would
    /// otherwise list half a million lines.
    public static let perAppLimit = 1_000

    /// - Parameters:
    ///   - states: each app's durable state by app id; a missing one is an app that never ran.
    ///   - days: the horizon in days from `now` (1...366; the caller checks).
    ///   - scheduleAs: the app as the engine schedules it (a fleet's candidate that does not
    ///     lead polls instead of rotating, `StatusReport.scheduledApp`).
    public init(
        apps: [AppConfig], states: [String: AppState], now: Date, days: Int,
        scheduleAs: (AppConfig) -> AppConfig = { $0 }
    ) {
        from = now
        until = now.addingTimeInterval(TimeInterval(days) * 86_400)
        var entries: [Entry] = []
        var truncated: [String] = []
        for configured in apps {
            let app = scheduleAs(configured)
            let found = Self.entries(app, state: states[app.id] ?? AppState(appID: app.id), now: now, until: until)
            entries += found.entries
            if found.truncated { truncated.append(app.name) }
        }
        self.entries = entries.sorted { ($0.at, $0.app) < ($1.at, $1.app) }
        truncatedApps = truncated
    }

    /// The consumers a rotation of `app` touches, as `plan` names them: its systemd units
    /// (`consumers`), then the program (argv[0]) of its `on_rotate` hook.
    public static func consumers(of app: AppConfig) -> [String] {
        var names = app.consumers
        if let program = app.onRotate?.first { names.append(program) }
        return names
    }

    /// One app's entries: its next step as planned at `now`, then one per repeat.
    private static func entries(_ app: AppConfig, state initial: AppState, now: Date, until: Date) -> (
        entries: [Entry], truncated: Bool
    ) {
        var state = initial
        let scheduledKind: Kind = app.action == .rotate ? .rotate : .poll
        var at: Date
        var kind: Kind
        var reason: String
        if state.version == 0 {
            // A first start goes at once, never held to a window: it must produce a secret.
            at = now
            kind = app.action == .follow || app.firstStart == .fetch ? .fetch : .rotate
            reason = "first start"
        } else if app.action == .rotate && state.rotationOwed {
            // Retried after the backoff, never held to a window (the rotation already started).
            at = max(now, state.nextAttempt ?? now)
            kind = .rotate
            reason = "retry"
        } else {
            // A pending backoff (a failed verification, say) comes first; the window is then
            // asked about the time the backoff ends.
            var from = now
            if let retry = state.retryAt { from = max(now, retry) }
            at = max(from, RotationPlanner.rotationStart(app: app, state: state, now: from))
            kind = scheduledKind
            reason = "scheduled"
        }
        let consumers = consumers(of: app)
        let window = app.action == .rotate ? app.window : nil
        var entries: [Entry] = []
        while at <= until {
            guard entries.count < perAppLimit else { return (entries, true) }
            entries.append(
                Entry(
                    at: at, app: app.name, appID: app.id, kind: kind, reason: reason, local: window.map { $0.localTime(at) },
                    consumers: kind == .rotate ? consumers : []))
            // As if the step succeeded at `at`: the next one counts from it.
            state.version = max(state.version, 1)
            if kind != .poll { state.secretObtainedAt = at }
            state.lastChecked = at
            state.rotationOwed = false
            state.consecutiveFailures = 0
            let next = RotationPlanner.rotationStart(app: app, state: state, now: at)
            guard next > at else { break }
            at = next
            kind = scheduledKind
            reason = "scheduled"
        }
        return (entries, false)
    }
}
