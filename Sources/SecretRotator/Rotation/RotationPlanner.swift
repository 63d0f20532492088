#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decides the next step for one app from its config, its durable state and the clock.
/// Pure: no I/O and no sleeping, so every crash-resume path and schedule is testable with a
/// fixed `now`. The order of the checks is the safety argument (Architecture, "The engine"):
///
/// 1. one backoff decides every retry: while `nextAttempt` is ahead, every step waits;
/// 2. a held secret newer than the outputs is written before anything else;
/// 3. an unknown refresh is reconciled before any new refresh, and only once it can no longer
///    be in flight (a settle period after it was sent, a second read a settle period later);
/// 4. outputs are compared with the held secret when a pass asks for it (level-triggered);
/// 5. a rotation that was started and failed is retried, then the schedule (a due rotation
///    goes before an owed hook, so a failing hook never stops rotations);
/// 6. owed consumer notifications, then an owed hook;
/// 7. verification: rotate (or fetch for `follow`), and verification against GenAuth.
///
/// Only the scheduled rotation of a `rotate` app that already has a secret waits for the app's
/// `window` (`rotationStart`): recovery, retries of a started rotation, hooks, verification,
/// polls and a first start (which must produce a secret) never do.
public enum RotationPlanner {
    public enum Step: Sendable, Equatable {
        /// The held secret (`version`) is not yet on every output: write it (no API call), then hooks.
        case writeOutputs(version: Int)
        /// A refresh was sent and its outcome is unknown: read the current secret and compare.
        case reconcile
        /// All outputs hold `version` but its hook has not completed.
        case runHook(version: Int)
        /// All outputs hold `version` but a consumer unit has not settled on it: tell those again.
        case notifyConsumers(version: Int)
        /// Compare every output with the held secret and repair drift (no API call).
        case inspectOutputs
        /// Read GenAuth's current secret and adopt it if it changed (settle check after a
        /// rotation, `verify_interval`, or a state without a held secret record).
        case verify
        /// Obtain the current secret without rotating (first start with `fetch`, or `follow`).
        case fetch
        /// Call refresh-application-secret.
        case refresh
        /// Nothing to do until then.
        case wait(until: Date)
        /// The scheduled rotation waits for the app's window: nothing to do until then (the
        /// engine treats it as `wait`; the name tells status and logs why).
        case waitForWindow(until: Date)

        /// When this step falls due: at once, unless it is to wait.
        public func due(now: Date) -> Date {
            waitingUntil ?? now
        }

        /// The end of a wait (`wait` or `waitForWindow`), nil for a step that runs.
        public var waitingUntil: Date? {
            switch self {
            case .wait(let until), .waitForWindow(let until): until
            default: nil
            }
        }

        /// A short name for logs and status ("write_outputs", "reconcile", ...).
        public var name: String {
            switch self {
            case .writeOutputs: "write_outputs"
            case .reconcile: "reconcile"
            case .runHook: "run_hook"
            case .notifyConsumers: "notify_consumers"
            case .inspectOutputs: "inspect_outputs"
            case .verify: "verify"
            case .fetch: "fetch"
            case .refresh: "refresh"
            case .wait: "wait"
            case .waitForWindow: "wait_window"
            }
        }
    }

    /// What the planner knows besides the durable `AppState`.
    public struct Facts: Sendable, Equatable {
        /// Version of the held `CurrentSecret` record, nil when there is none.
        public var heldVersion: Int?
        /// A pass (start, SIGHUP, `fetch`, the periodic re-check) asked to compare the outputs.
        public var outputsCheckDue: Bool

        public init(heldVersion: Int?, outputsCheckDue: Bool = false) {
            self.heldVersion = heldVersion
            self.outputsCheckDue = outputsCheckDue
        }
    }

    public static func nextStep(app: AppConfig, state: AppState, facts: Facts, policy: EnginePolicy, now: Date) -> Step {
        if let retry = state.retryAt, retry > now {
            return .wait(until: retry)
        }
        if let held = facts.heldVersion, held > state.version {
            return .writeOutputs(version: held)
        }
        if state.intent == .refresh {
            let earliest = reconcileNotBefore(state: state, policy: policy)
            return earliest > now ? .wait(until: earliest) : .reconcile
        }
        if facts.outputsCheckDue && facts.heldVersion != nil {
            return .inspectOutputs
        }
        if state.rotationOwed && app.action == .rotate {
            // A started rotation that failed is retried as soon as the backoff allows.
            return .refresh
        }
        let followUp = owedFollowUp(app: app, state: state)
        if let followUp, state.consecutiveFailures == 0 {
            // A notification or hook never tried (the process died between recording the
            // version and running it) runs before a due rotation: consumers are told of every
            // secret they were given.
            return followUp
        }
        let due = rotationStart(app: app, state: state, now: now)
        if due <= now {
            // A due rotation goes before a hook that failed: the new version's hook supersedes
            // the old one, and a failing hook must never stop rotations.
            if state.version == 0 {
                return app.action == .follow || app.firstStart == .fetch ? .fetch : .refresh
            }
            return app.action == .follow ? .fetch : .refresh
        }
        if let followUp {
            return followUp
        }
        if state.version > 0 && facts.heldVersion == nil {
            // A state from an older layout without a secret record (or a lost one): learn the secret, or
            // drift could never be repaired. The next rotation also gives a held secret.
            return .verify
        }
        // Held back by the window (not merely by the interval): the wait says so.
        let heldByWindow = due > dueDate(app: app, state: state)
        if let verify = verifyDate(app: app, state: state, policy: policy) {
            if verify <= now { return .verify }
            if verify < due { return .wait(until: verify) }
        }
        return heldByWindow ? .waitForWindow(until: due) : .wait(until: due)
    }

    /// What is owed after a version reached every output: consumer units not yet settled on it
    /// (they hold a dead secret), then the `on_rotate` hook. Nil when nothing is.
    public static func owedFollowUp(app: AppConfig, state: AppState) -> Step? {
        guard state.version > 0 else { return nil }
        // A failed unit that the config no longer names still holds the app in its backoff:
        // the step then tells nobody and settles the version (the failure ends with it).
        let staleFailure = app.consumers.isEmpty && state.consumers.contains { $0.state == .failed }
        if (!app.consumers.isEmpty || staleFailure) && state.consumersDoneVersion < state.version {
            return .notifyConsumers(version: state.version)
        }
        if let owed = state.hookOwed(hasHook: app.onRotate != nil) {
            return .runHook(version: owed)
        }
        return nil
    }

    /// A refresh whose answer was lost may still be applied by GenAuth after our deadline, so
    /// the first read waits one settle period after it was sent, and the confirming read
    /// another: never a decision on a read taken while the refresh may be in flight.
    public static func reconcileNotBefore(state: AppState, policy: EnginePolicy) -> Date {
        let sent = state.intentStartedAt ?? .distantPast
        return sent.addingTimeInterval(seconds(policy.settlePeriod) * Double(state.unchangedReads + 1))
    }

    /// The next scheduled rotation (or, for `follow`, the next poll): the secret's age for
    /// `rotate` apps (only a new secret moves it), the last check for `follow` apps, plus the
    /// interval and the app's fixed jitter; at once for an app without a secret yet.
    public static func dueDate(app: AppConfig, state: AppState) -> Date {
        guard state.version > 0 else { return .distantPast }
        let base: Date?
        switch app.action {
        case .rotate: base = state.secretObtainedAt
        case .follow: base = state.lastChecked ?? state.secretObtainedAt
        }
        guard let base else { return .distantPast }
        let offset = ScheduleJitter.offset(appID: app.id, jitter: app.jitter)
        return base.addingTimeInterval(seconds(app.interval + offset))
    }

    /// The scheduled rotation as the window allows it, from the config and the state alone (so
    /// `status` can judge "overdue" by it): `dueDate`, or, when that falls outside the app's
    /// window, the next opening plus the app's spread (`windowSpread`). Equals `dueDate` for
    /// apps the window does not hold back (no window, `follow`, no secret yet).
    public static func scheduledDate(app: AppConfig, state: AppState) -> Date {
        let due = dueDate(app: app, state: state)
        guard let window = heldWindow(app: app, state: state), due != .distantPast else { return due }
        let opening = window.nextOpening(atOrAfter: due)
        if opening.start <= due { return due }
        return opening.start.addingTimeInterval(windowSpread(app: app, opening: opening))
    }

    /// When the scheduled rotation may start, asked at `now`: `scheduledDate`, unless that has
    /// passed while no window is open (the daemon was stopped through it), then the next
    /// opening plus the spread. At or before `now` means at once.
    public static func rotationStart(app: AppConfig, state: AppState, now: Date) -> Date {
        let scheduled = scheduledDate(app: app, state: state)
        guard scheduled <= now, scheduled != .distantPast, let window = heldWindow(app: app, state: state) else {
            return scheduled
        }
        let opening = window.nextOpening(atOrAfter: now)
        if opening.start <= now { return scheduled }
        return opening.start.addingTimeInterval(windowSpread(app: app, opening: opening))
    }

    /// Whether the scheduled rotation is due by its interval at `now` but waits for the window
    /// (whatever the next step is: a verification may come first).
    public static func isHeldByWindow(app: AppConfig, state: AppState, now: Date) -> Bool {
        guard heldWindow(app: app, state: state) != nil, !state.rotationOwed else { return false }
        return dueDate(app: app, state: state) <= now && rotationStart(app: app, state: state, now: now) > now
    }

    /// The window that holds back this app's scheduled rotations: only a `rotate` app's, and
    /// only once it has a secret (a first start must produce one, whatever the hour).
    public static func heldWindow(app: AppConfig, state: AppState) -> RotationWindow? {
        guard app.action == .rotate, state.version > 0 else { return nil }
        return app.window
    }

    /// Seconds after an opening at which the app starts: its `ScheduleJitter` offset, scaled
    /// down to the opening's length when the jitter is longer, so a fleet whose rotations all
    /// waited for one window does not start in one burst, and every start is inside it.
    static func windowSpread(app: AppConfig, opening: DateInterval) -> TimeInterval {
        let jitter = seconds(app.jitter)
        guard jitter > 0 else { return 0 }
        let offset = seconds(ScheduleJitter.offset(appID: app.id, jitter: app.jitter))
        return jitter <= opening.duration ? offset : offset * opening.duration / jitter
    }

    /// When a `rotate` app's secret is next read back from GenAuth: the settle check after a
    /// rotation, and every `verify_interval` (off at zero). `follow` apps poll instead.
    public static func verifyDate(app: AppConfig, state: AppState, policy: EnginePolicy) -> Date? {
        guard app.action == .rotate, state.version > 0 else { return nil }
        var candidates: [Date] = []
        if let settle = state.settleCheckDue { candidates.append(settle) }
        if policy.verifyInterval > .zero, let base = state.lastVerified ?? state.secretObtainedAt {
            candidates.append(base.addingTimeInterval(seconds(policy.verifyInterval)))
        }
        return candidates.min()
    }

    static func seconds(_ duration: Duration) -> TimeInterval {
        TimeInterval(DurationSyntax.milliseconds(of: duration)) / 1000
    }
}
