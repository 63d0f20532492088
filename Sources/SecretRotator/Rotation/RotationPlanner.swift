#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decides the next step for one app from its config, its durable state and the clock.
/// Pure: no I/O and no sleeping, so every crash-resume path and schedule is testable with a
/// fixed `now`. The order of the checks is the crash-safety argument:
/// a pending secret is finished before anything else, an unknown refresh is reconciled before
/// any new refresh, an owed hook is run before the schedule is consulted.
public enum RotationPlanner {
    public enum Step: Sendable, Equatable {
        /// A received secret is not yet on every output: write it (no API call), then hooks.
        case finishPending(version: Int)
        /// A refresh was started and its outcome is unknown: read the current secret and compare.
        case reconcile
        /// All outputs hold `version` but its hook has not completed.
        case runHook(version: Int)
        /// Obtain the current secret without rotating (first start with `fetch`, or `follow`).
        case fetch
        /// Call refresh-application-secret.
        case refresh
        /// Nothing to do until then.
        case wait(until: Date)

        /// When this step falls due: at once, unless it is to wait.
        public func due(now: Date) -> Date {
            if case .wait(let until) = self { return until }
            return now
        }
    }

    public static func nextStep(
        app: AppConfig, state: AppState, pendingVersion: Int?, now: Date
    ) -> Step {
        if let pendingVersion {
            return .finishPending(version: pendingVersion)
        }
        if state.intent == .refresh {
            return .reconcile
        }
        if app.onRotate != nil, state.version > 0, state.hookDoneVersion < state.version {
            if let retry = state.nextAttempt, retry > now { return .wait(until: retry) }
            return .runHook(version: state.version)
        }
        let due = dueDate(app: app, state: state)
        if due > now {
            return .wait(until: due)
        }
        if state.version == 0 {
            return app.action == .follow || app.firstStart == .fetch ? .fetch : .refresh
        }
        return app.action == .follow ? .fetch : .refresh
    }

    /// The next time the app should be worked on: the persisted backoff after failures, else
    /// the last success plus the interval plus the app's fixed jitter; at once for a new app.
    public static func dueDate(app: AppConfig, state: AppState) -> Date {
        if state.consecutiveFailures > 0, let retry = state.nextAttempt {
            return retry
        }
        guard let last = state.lastSuccess else {
            return state.nextAttempt ?? .distantPast
        }
        let offset = ScheduleJitter.offset(appID: app.id, jitter: app.jitter)
        return last.addingTimeInterval(seconds(app.interval + offset))
    }

    static func seconds(_ duration: Duration) -> TimeInterval {
        TimeInterval(DurationSyntax.milliseconds(of: duration)) / 1000
    }
}
