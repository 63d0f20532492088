#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CoreMetrics
import Synchronization

/// What the engine and the GenAuth client report, as swift-metrics counters, gauges and timers
/// made by one `MetricsFactory` given at init (never the process-wide `MetricsSystem`, so one
/// process can run several engines, each with its own registry, as the tests do).
///
/// Every series of an app carries the labels `app` (its name) and `app_id`; nothing here ever
/// takes a secret, a fingerprint or an output path (Architecture, invariant 5). The names, types
/// and units are listed in `RotatorMetrics.Name` and in the Operations guide's "Metrics and alert rules".
///
/// `RotatorMetrics.disabled` records nothing and costs one branch per call: the engine and the
/// client default to it, so callers that do not ask for metrics are unchanged.
public final class RotatorMetrics: Sendable {
    /// The metric names, exactly as they appear in the textfile (Prometheus base units:
    /// seconds, Unix time in seconds; counters end in `_total`).
    public enum Name {
        /// Gauge, per app: seconds since the secret on the outputs was obtained (rotated, or
        /// adopted from GenAuth). Absent until the app has a secret. Refreshed at every write
        /// of the textfile, so at most one refresh interval (60 s) old.
        public static let secretAge = "secret_rotator_secret_age_seconds"
        /// Gauge, per app: Unix time (s) the secret on the outputs was obtained; 0 before the first.
        public static let lastSuccess = "secret_rotator_last_success_timestamp_seconds"
        /// Gauge, per app: Unix time (s) the next rotation (a `follow` app: the next poll) is
        /// scheduled, interval, jitter and the app's window included, a backoff not; 0 when due
        /// at once (no secret yet).
        public static let nextRotation = "secret_rotator_next_rotation_timestamp_seconds"
        /// Gauge, per app: failed steps in a row (the engine's `consecutiveFailures`, persisted).
        public static let consecutiveFailures = "secret_rotator_consecutive_failures"
        /// Gauge per app, 1 while a refresh's outcome is unknown (sent, no answer yet, or the
        /// answer lost): the outputs may hold a secret GenAuth already replaced until the daemon
        /// reconciles it. `status` reports the same (WARNING, CRITICAL after 2 minutes).
        public static let refreshOutcomeUnknown = "secret_rotator_refresh_outcome_unknown"
        /// Counter, per app, label `result`: `success` (a refreshed secret is on every output)
        /// or `failure` (a step failed and backs off: the moments `consecutive_failures` goes up).
        public static let rotations = "secret_rotator_rotations_total"
        /// Counter, per app, label `cause` (`missing`, `content`, `mode`, `owner`, `group`, ...,
        /// `OutputDrift.cause`): outputs rewritten from the held secret without calling GenAuth.
        public static let outputRepairs = "secret_rotator_output_repairs_total"
        /// Counter, per app, label `result` (`success`, `failure`): `on_rotate` hook runs.
        public static let hookRuns = "secret_rotator_hook_runs_total"
        /// Counter, per app, labels `unit` (a consumer, e.g. `billing.service`) and `outcome`
        /// (`confirmed`, `signalled`, `not_running`, `failed`): each consumer told of a secret
        /// over D-Bus, and what systemd showed afterwards (`ConsumerPickup`).
        public static let consumerNotifications = "secret_rotator_consumer_notifications_total"
        /// Gauge, per app, label `unit`: Unix time (s) systemd last showed the consumer reloaded
        /// or restarted after a new secret was written (or the signal sent); absent until then.
        public static let consumerLastConfirmed = "secret_rotator_consumer_last_confirmed_timestamp_seconds"
        /// Counter, labels `endpoint` (the V3 operation, e.g. `refresh-application-secret`) and
        /// `outcome` (`APIRequestOutcome`): every HTTP exchange with GenAuth, token fetches and
        /// the one retry after a refused token included.
        public static let apiRequests = "secret_rotator_api_requests_total"
        /// Histogram (s), label `endpoint`: each exchange from sending to the whole answer read.
        public static let apiRequestDuration = "secret_rotator_api_request_duration_seconds"
        /// Histogram (s): from GenAuth's refresh answer (the old secret is dead) to the last
        /// output's fsync, per rotation: what consumers wait for the new secret (Architecture,
        /// "State directory", exposure window).
        public static let exposureWindow = "secret_rotator_exposure_window_seconds"
        /// Gauge, `[cluster]` only: 1 while this host holds its etcd lease.
        public static let clusterLeaseHeld = "secret_rotator_cluster_lease_held"
        /// Gauge, `[cluster]` only: 1 while this host leads its election and rotates.
        public static let clusterLeader = "secret_rotator_cluster_leader"
        /// Gauge, `[cluster]` only: 1 while the watch on the fleet's prefix is up; 0 while
        /// followers fall back to polling.
        public static let clusterWatchUp = "secret_rotator_cluster_watch_up"
        /// Gauge per app, `[cluster]` only: Unix time (s) the last rotation notice from another
        /// host arrived; absent until one does.
        public static let clusterLastNotification = "secret_rotator_cluster_last_notification_timestamp_seconds"
        /// Gauge, label `version`: always 1; tells which build wrote the file.
        public static let buildInfo = "secret_rotator_build_info"
    }

    /// Histogram buckets (upper bounds) of the two timers. API calls: 5 ms to a minute
    /// (`request_timeout` defaults to 10 s). Exposure: a floor of about one output fsync and
    /// one directory fsync (~1-2 ms on a local disk, Tests/Benchmarks) up to 10 s.
    public static let durationBuckets: [String: [Duration]] = [
        Name.apiRequestDuration: [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60),
        ],
        Name.exposureWindow: [
            .microseconds(500), .milliseconds(1), .microseconds(2_500), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
        ],
    ]

    /// Records nothing: the default of `RotationEngine` and `GenAuthClient`.
    public static let disabled = RotatorMetrics()

    /// The series of one app, kept so that a removed or renamed app's series can be dropped.
    private struct AppSeries {
        var name: String
        var obtainedAt: Date?
        var counters: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
    }

    private struct State {
        var apps: [String: AppSeries] = [:]
        /// The ids `track(apps:)` was last given; nil before it was called. A late report about
        /// an app a reload removed (its hook or step was still running) makes no new series.
        var tracked: Set<String>?
        var apiRequests: [String: Counter] = [:]
        var apiDurations: [String: CoreMetrics.Timer] = [:]
        var cluster: [String: Gauge] = [:]
        var onChange: (@Sendable () -> Void)?
    }

    /// Nil when disabled.
    private let factory: (any MetricsFactory)?
    private let exposure: CoreMetrics.Timer?
    private let state = Mutex(State())
    /// False until something reads the values (`startRecording`): a daemon without `[metrics]`
    /// would otherwise keep about seven series per app that nothing ever renders: half of its
    /// memory at start (RssAnon at READY=1, 10,000 apps: 66 MiB with them, 33 MiB without) and
    /// a tenth of its start-up work.
    private let recording: Atomic<Bool>

    private init() {
        factory = nil
        exposure = nil
        recording = Atomic(false)
    }

    /// Metrics made by `factory`, e.g. a `PrometheusMetricsFactory` over a registry the caller
    /// owns (`MetricsTextfile` makes one). Timers become histograms there with
    /// `durationBuckets`, if the factory is set up with them.
    /// - Parameter recording: false records nothing until `startRecording()`.
    public init(factory: any MetricsFactory, recording: Bool = true) {
        self.factory = factory
        self.recording = Atomic(recording)
        exposure = CoreMetrics.Timer(label: Name.exposureWindow, dimensions: [], factory: factory)
        Gauge(label: Name.buildInfo, dimensions: [("version", SecretRotatorVersion.current)], factory: factory).record(1)
    }

    /// Whether anything is recorded (false for `disabled`, and before `startRecording()`).
    public var isEnabled: Bool { factory != nil && recording.load(ordering: .relaxed) }

    /// From now on values are recorded (no effect on `disabled`). Counters count from here,
    /// and the app gauges are empty until the engine next publishes every app's state
    /// (`RotationEngine.apply` does), so call it before giving the engine a config.
    public func startRecording() {
        recording.store(true, ordering: .relaxed)
    }

    /// The factory while values are recorded, else nil.
    private var active: (any MetricsFactory)? {
        recording.load(ordering: .relaxed) ? factory : nil
    }

    /// Called after every change of a value (not for the age refresh), from whichever thread
    /// made it; keep it short. `MetricsTextfile` pokes its writer here. One handler: a second
    /// call replaces the first.
    public func onChange(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.onChange = handler }
    }

    // MARK: - Apps

    /// The configured apps (at start and after a reload): series of apps no longer configured,
    /// and of an app's old name after a rename, are removed; new apps get their counters at 0
    /// (`rotations_total` for both results, `hook_runs_total` when the app has a hook), so a
    /// first failure shows as an increase, not as a new series.
    public func track(apps: [AppConfig]) {
        guard let factory = active else { return }
        let wanted = Dictionary(apps.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        changing { state in
            state.tracked = Set(wanted.keys)
            for (id, series) in state.apps where wanted[id]?.name != series.name {
                Self.destroy(series)
                state.apps[id] = nil
            }
            for app in apps {
                _ = Self.counter(Name.rotations, ("result", "success"), app: app, in: &state, factory: factory)
                _ = Self.counter(Name.rotations, ("result", "failure"), app: app, in: &state, factory: factory)
                if app.onRotate != nil {
                    _ = Self.counter(Name.hookRuns, ("result", "success"), app: app, in: &state, factory: factory)
                    _ = Self.counter(Name.hookRuns, ("result", "failure"), app: app, in: &state, factory: factory)
                }
            }
        }
    }

    /// The gauges that follow an app's durable state: last success, secret age, next
    /// rotation, consecutive failures. Called whenever the engine adopts a new `AppState`.
    public func appStateChanged(_ app: AppConfig, state appState: AppState) {
        guard let factory = active else { return }
        let obtained = appState.secretObtainedAt
        let due = RotationPlanner.scheduledDate(app: app, state: appState)
        changing { state in
            guard state.tracked?.contains(app.id) ?? true else { return }
            Self.gauge(Name.lastSuccess, app: app, in: &state, factory: factory)
                .record(obtained?.timeIntervalSince1970 ?? 0)
            Self.gauge(Name.nextRotation, app: app, in: &state, factory: factory)
                .record(due == .distantPast ? 0 : due.timeIntervalSince1970)
            Self.gauge(Name.consecutiveFailures, app: app, in: &state, factory: factory)
                .record(Double(appState.consecutiveFailures))
            Self.gauge(Name.refreshOutcomeUnknown, app: app, in: &state, factory: factory)
                .record(appState.intent == .refresh ? 1 : 0)
            state.apps[app.id]?.obtainedAt = obtained
        }
    }

    /// Sets every app's `secret_age_seconds` from `now`; the writer calls it before each render.
    public func refreshAges(now: Date) {
        guard let factory = active else { return }
        state.withLock { state in
            for (id, series) in state.apps {
                guard let obtained = series.obtainedAt else { continue }
                let gauge = series.gauges[Name.secretAge] ?? Gauge(
                    label: Name.secretAge, dimensions: [("app", series.name), ("app_id", id)], factory: factory)
                state.apps[id]?.gauges[Name.secretAge] = gauge
                gauge.record(max(0, now.timeIntervalSince(obtained)))
            }
        }
    }

    // MARK: - Events

    /// A rotation attempt ended: `succeeded` when a refreshed secret is on every output, false
    /// for every failed step.
    public func rotationFinished(_ app: AppConfig, succeeded: Bool) {
        guard let factory = active else { return }
        changing { state in
            guard state.tracked?.contains(app.id) ?? true else { return }
            Self.counter(Name.rotations, ("result", succeeded ? "success" : "failure"), app: app, in: &state, factory: factory)
                .increment()
        }
    }

    /// Outputs were repaired from the held secret; one increment per cause (`OutputDrift.cause`).
    public func outputsRepaired(_ app: AppConfig, causes: [String]) {
        guard let factory = active, !causes.isEmpty else { return }
        changing { state in
            guard state.tracked?.contains(app.id) ?? true else { return }
            for cause in causes {
                Self.counter(Name.outputRepairs, ("cause", cause), app: app, in: &state, factory: factory).increment()
            }
        }
    }

    /// An `on_rotate` hook finished (or could not be started: a failure).
    public func hookFinished(_ app: AppConfig, succeeded: Bool) {
        guard let factory = active else { return }
        changing { state in
            guard state.tracked?.contains(app.id) ?? true else { return }
            Self.counter(Name.hookRuns, ("result", succeeded ? "success" : "failure"), app: app, in: &state, factory: factory)
                .increment()
        }
    }

    /// Consumers of `app` were told of a secret at `at`; `outcomes` is what systemd showed.
    public func consumersNotified(_ app: AppConfig, _ outcomes: [ConsumerOutcome], at: Date) {
        guard let factory = active, !outcomes.isEmpty else { return }
        changing { state in
            guard state.tracked?.contains(app.id) ?? true else { return }
            for outcome in outcomes {
                let word = outcome.state.rawValue.replacingOccurrences(of: " ", with: "_")
                let key = Name.consumerNotifications + "\u{0}" + outcome.unit + "\u{0}" + word
                let counter = state.apps[app.id]?.counters[key] ?? Counter(
                    label: Name.consumerNotifications,
                    dimensions: [("app", app.name), ("app_id", app.id), ("unit", outcome.unit), ("outcome", word)], factory: factory)
                state.apps[app.id, default: AppSeries(name: app.name)].counters[key] = counter
                counter.increment()
                guard outcome.state == .confirmed || outcome.state == .signalled else { continue }
                let gaugeKey = Name.consumerLastConfirmed + "\u{0}" + outcome.unit
                let gauge = state.apps[app.id]?.gauges[gaugeKey] ?? Gauge(
                    label: Name.consumerLastConfirmed, dimensions: [("app", app.name), ("app_id", app.id), ("unit", outcome.unit)],
                    factory: factory)
                state.apps[app.id, default: AppSeries(name: app.name)].gauges[gaugeKey] = gauge
                gauge.record(at.timeIntervalSince1970)
            }
        }
    }

    /// One rotation's exposure window (the engine measures it: refresh answer to last fsync).
    public func exposureWindow(_ duration: Duration) {
        guard let exposure, active != nil else { return }
        exposure.recordNanoseconds(Self.nanoseconds(duration))
        changing { _ in }
    }

    /// The fleet's state on this host: lease, leadership and watch, each 0 or 1.
    public func clusterChanged(leaseHeld: Bool, leader: Bool, watchUp: Bool) {
        guard let factory = active else { return }
        changing { state in
            for (name, value) in [(Name.clusterLeaseHeld, leaseHeld), (Name.clusterLeader, leader), (Name.clusterWatchUp, watchUp)] {
                let gauge = state.cluster[name] ?? Gauge(label: name, dimensions: [], factory: factory)
                state.cluster[name] = gauge
                gauge.record(value ? 1 : 0)
            }
        }
    }

    /// A rotation notice from another host arrived for `app` at `at`.
    public func clusterNotified(_ app: AppConfig, at: Date) {
        guard let factory = active else { return }
        changing { state in
            guard state.tracked?.contains(app.id) ?? true else { return }
            Self.gauge(Name.clusterLastNotification, app: app, in: &state, factory: factory).record(at.timeIntervalSince1970)
        }
    }

    /// One HTTP exchange with GenAuth: `endpoint` is the V3 operation name
    /// (`refresh-application-secret`), `duration` from sending to the answer read (or the error).
    public func apiRequest(endpoint: String, outcome: APIRequestOutcome, duration: Duration) {
        guard let factory = active else { return }
        changing { state in
            let key = endpoint + "\u{0}" + outcome.rawValue
            let counter = state.apiRequests[key] ?? Counter(
                label: Name.apiRequests, dimensions: [("endpoint", endpoint), ("outcome", outcome.rawValue)], factory: factory)
            state.apiRequests[key] = counter
            counter.increment()
            let timer = state.apiDurations[endpoint] ?? CoreMetrics.Timer(
                label: Name.apiRequestDuration, dimensions: [("endpoint", endpoint)], factory: factory)
            state.apiDurations[endpoint] = timer
            timer.recordNanoseconds(Self.nanoseconds(duration))
        }
    }

    // MARK: - Helpers

    /// Runs `body` under the lock, then the change handler outside it.
    private func changing(_ body: (inout State) -> Void) {
        let handler = state.withLock { state -> (@Sendable () -> Void)? in
            body(&state)
            return state.onChange
        }
        handler?()
    }

    private static func counter(
        _ name: String, _ label: (String, String), app: AppConfig, in state: inout State, factory: any MetricsFactory
    ) -> Counter {
        let key = name + "\u{0}" + label.1
        if let existing = state.apps[app.id]?.counters[key] { return existing }
        let counter = Counter(label: name, dimensions: [("app", app.name), ("app_id", app.id), label], factory: factory)
        state.apps[app.id, default: AppSeries(name: app.name)].counters[key] = counter
        return counter
    }

    private static func gauge(_ name: String, app: AppConfig, in state: inout State, factory: any MetricsFactory) -> Gauge {
        if let existing = state.apps[app.id]?.gauges[name] { return existing }
        let gauge = Gauge(label: name, dimensions: [("app", app.name), ("app_id", app.id)], factory: factory)
        state.apps[app.id, default: AppSeries(name: app.name)].gauges[name] = gauge
        return gauge
    }

    private static func destroy(_ series: AppSeries) {
        for counter in series.counters.values { counter.destroy() }
        for gauge in series.gauges.values { gauge.destroy() }
    }

    /// Whole nanoseconds, as swift-metrics timers take them; clamped to 0...Int64.max.
    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds < Int64.max / 1_000_000_000 - 1 else { return .max }
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
