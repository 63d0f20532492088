#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The decisions over an app's in-memory `AppRuntime`: which step runs next (the planner's
/// step, then requests and the fleet's hand-over over it), what an operator's request, a
/// leadership change or a notice changes, and what a finished step leaves asked for. Pure: the
/// engine stores what these return and performs nothing they did not decide
/// (`AppDecisionsTests` has a table per function). The durable state's own transitions are
/// `AppTransitions`'.
public enum AppDecisions {
    /// The step to run and whether it answers an operator's request (or a queued fetch).
    public struct Plan: Sendable, Equatable {
        public var step: RotationPlanner.Step
        public var isRequest: Bool

        public init(_ step: RotationPlanner.Step, isRequest: Bool = false) {
            self.step = step
            self.isRequest = isRequest
        }
    }

    /// The step to run next. A request never overtakes recovery (a held secret to write, a
    /// refresh to reconcile, a hook owed), only the schedule; every step, requested or not,
    /// waits for the backoff (`AppState.retryAt`), unless an operator's override clears it once.
    public static func plan(
        app: AppConfig, state stored: AppState, runtime: AppRuntime, fleet: FleetView, policy: EnginePolicy, now: Date
    ) -> Plan {
        var state = stored
        if runtime.backoffOverride { state.nextAttempt = nil }
        let effective = fleet.effective(app)
        let planned = RotationPlanner.nextStep(app: effective, state: state, facts: runtime.facts, policy: policy, now: now)
        let recovering = state.intent != nil || (runtime.heldVersion ?? 0) > state.version || state.version == 0
        let inBackoff = state.isInBackoff(at: now)
        if let until = runtime.handOverUntil {
            // Another leader's refresh may still land until a settle period after its intent:
            // the hand-over reads at once (a change there is that refresh: done) and again
            // once the period is over; no rotation before (a read could have missed the late
            // refresh, and a rotation would then be the second). Recovery goes on. Every read
            // here waits for the backoff like any step: a failing GenAuth must not turn the
            // hand-over into a loop of reads.
            if until > now {
                if runtime.request == .fetch, !recovering, !inBackoff {
                    return Plan(.fetch, isRequest: true)
                }
                switch planned {
                case .refresh, .fetch, .verify: return Plan(.wait(until: until))
                case .wait(let due), .waitForWindow(let due): return Plan(.wait(until: min(due, until)))
                default: return Plan(planned)
                }
            }
            if !recovering, !inBackoff, planned.waitingUntil != nil || planned == .refresh { return Plan(.fetch) }
        }
        // A first fetch also goes first: it gives a later reconcile a secret to compare with.
        // An owed hook does not hold a request back: the new version's hook supersedes it.
        guard let asked = runtime.request, !recovering else { return Plan(planned) }
        // A failed request stays asked for, and is retried after the backoff like any step.
        if inBackoff { return Plan(planned) }
        // A fetch request checks the outputs first (they are part of what it answers).
        if asked == .fetch, planned == .inspectOutputs { return Plan(planned) }
        // Only the leader rotates: elsewhere an operator's rotate is answered with a fetch.
        if asked == .refresh, effective.action == .follow {
            // Suspended (etcd has not confirmed the lease for a moment): kept for when it does.
            return fleet.suspended ? Plan(planned) : Plan(.fetch, isRequest: true)
        }
        return Plan(asked, isRequest: true)
    }

    /// What the engine tells the operator's log about a request.
    public enum RequestNotice: Sendable, Equatable {
        /// This host leads, but etcd has not confirmed its lease lately: the rotation waits.
        case waitsForLease
        /// This host does not lead: a rotate is answered with a fetch.
        case notLeader
        /// A pending backoff (retry due at the date) is overridden once.
        case backoffOverridden(retryAt: Date)
    }

    /// An operator asked for `step` (`.refresh` or `.fetch`). A rotation already asked for is
    /// not replaced by a fetch (it answers both); a fetch also compares the outputs; a pending
    /// backoff is overridden once.
    public static func request(
        _ step: RotationPlanner.Step, app: AppConfig, state: AppState, runtime: inout AppRuntime, fleet: FleetView, now: Date
    ) -> [RequestNotice] {
        var notices: [RequestNotice] = []
        if step == .refresh, app.action == .rotate, fleet.effective(app).action == .follow {
            notices.append(fleet.suspended ? .waitsForLease : .notLeader)
        }
        if runtime.request != .refresh { runtime.request = step }
        if step == .fetch { runtime.outputsCheckDue = true }
        if let retry = state.retryAt, retry > now {
            runtime.backoffOverride = true
            notices.append(.backoffOverridden(retryAt: retry))
        }
        return notices
    }

    /// This host won (`leading`) or lost the election, for one `rotate` app. On winning, an
    /// app with an interrupted rotation (`intentStarted`: another leader recorded an intent
    /// and never published) or one a notice (`noticeAt`) shows rotated after the secret held
    /// here is read from GenAuth before anything is rotated: the hand-over reconciles instead
    /// of rotating twice. `catchUpAll` (etcd's records could not be read) reads every app.
    public static func leadershipChanged(
        state: AppState, runtime: inout AppRuntime, leading: Bool, intentStarted: Date?, noticeAt: Date?, catchUpAll: Bool,
        settlePeriod: Duration
    ) {
        guard leading else {
            runtime.handOverUntil = nil
            runtime.handOverCurrent = false
            return
        }
        let behind = noticeAt.map { announced in state.secretObtainedAt.map { $0 < announced } ?? true } ?? false
        if let started = intentStarted {
            runtime.handOverUntil = started.addingTimeInterval(RotationPlanner.seconds(settlePeriod))
            if !behind { runtime.handOverCurrent = true }
            // A changed secret the hand-over read finds is the old leader's rotation, made
            // about when its intent was: the schedule counts from then.
            if noticeAt == nil { runtime.upstreamRotatedAt = started }
        }
        if catchUpAll || intentStarted != nil || behind {
            runtime.request = .fetch
            if let noticeAt { runtime.upstreamRotatedAt = noticeAt }
        }
    }

    /// A notice says another host rotated the app at `rotatedAt`: fetch its secret (within the
    /// backoff, like every step). `live` notices come from the watch; others from a snapshot
    /// after a (re)connect, and are acted on only if the held secret is older. Returns whether
    /// a fetch was queued.
    public static func notified(state: AppState, runtime: inout AppRuntime, rotatedAt: Date, live: Bool) -> Bool {
        if !live, let obtained = state.secretObtainedAt, obtained >= rotatedAt { return false }
        runtime.upstreamRotatedAt = rotatedAt
        if runtime.request != .refresh { runtime.request = .fetch }
        return true
    }

    /// A step starts: a request and a backoff override are used up only by the step that runs.
    public static func stepStarting(_ plan: Plan, runtime: inout AppRuntime) {
        if plan.isRequest { runtime.request = nil }
        runtime.backoffOverride = false
    }

    /// A step that started at `startedAt` finished, the app's state going from `before` to
    /// `after`. A request whose step failed before it was answered (`RequestOutcome`) is asked
    /// for again: it runs after the backoff instead of being lost while the CLI says the
    /// daemon keeps trying; once answered it is not (a rotation whose hook then failed was
    /// rotated a second time; the hook is retried alone). The hand-over's read after its
    /// settle period ends the hand-over once it answered (a failed one is retried).
    public static func stepFinished(
        _ plan: Plan, startedAt: Date, before: AppState, after: AppState, runtime: inout AppRuntime
    ) {
        if plan.isRequest, runtime.request == nil {
            let outcome = RequestOutcome.judge(
                plan.step == .refresh ? .rotate : .fetch, before: before, after: after, heldVersion: runtime.heldVersion,
                onlyItsStep: true)
            if outcome == .failed { runtime.request = plan.step }
        }
        if plan.step == .fetch, let until = runtime.handOverUntil, until <= startedAt, after.lastChecked != before.lastChecked {
            runtime.handOverUntil = nil
            runtime.handOverCurrent = false
        }
    }

    /// A secret reached every output. One that changed upstream while this host held the
    /// newest secret of a hand-over can only be the old leader's last refresh: the hand-over
    /// is over, nothing more can land.
    public static func secretWritten(origin: AppTransitions.SecretOrigin, runtime: inout AppRuntime) {
        runtime.outputsCheckDue = false
        if origin == .changedUpstream, runtime.handOverCurrent {
            runtime.handOverCurrent = false
            runtime.handOverUntil = nil
        }
    }

    /// When a secret adopted now (`now`) counts as obtained: the leader's rotation time for the
    /// secret a notice announced (so the schedule follows the fleet's), if it is recent (within
    /// the app's interval) and not in the future; otherwise `now`. Uses the announcement up.
    public static func obtainedAt(
        origin: AppTransitions.SecretOrigin, now: Date, interval: Duration, runtime: inout AppRuntime
    ) -> Date {
        guard origin == .changedUpstream || origin == .fetched, let announced = runtime.upstreamRotatedAt else { return now }
        runtime.upstreamRotatedAt = nil
        guard announced <= now, now.timeIntervalSince(announced) < RotationPlanner.seconds(interval) else { return now }
        return announced
    }
}

extension AppState {
    /// When the backoff of the current failure streak ends: `nextAttempt` while failing, nil
    /// when the app is not failing (the one backoff rule: planner, engine, forecast, CLI).
    public var retryAt: Date? {
        consecutiveFailures > 0 ? nextAttempt : nil
    }

    /// Whether a failure's backoff holds every step of the app back at `now`.
    public func isInBackoff(at now: Date) -> Bool {
        retryAt.map { $0 > now } ?? false
    }

    /// The version whose `on_rotate` hook is owed (the one rule for planner, `status` and the
    /// CLI): the current version, once there is one, until its hook completed; nil when the
    /// app has no hook (`hasHook`) or nothing is owed.
    public func hookOwed(hasHook: Bool) -> Int? {
        hasHook && version > 0 && hookDoneVersion < version ? version : nil
    }
}
