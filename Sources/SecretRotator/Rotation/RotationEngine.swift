#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HeapModule
import Logging
import NIOPosix

/// Carries out every app's steps. Decisions are pure and made elsewhere: which step runs
/// (`AppDecisions` over `RotationPlanner`), what an outcome changes (`AppTransitions`); the
/// engine schedules steps (`RotationEngine+Scheduling`), performs each action through a seam
/// (GenAuth, the state directory, outputs, hooks, systemd) and feeds its result back as the
/// next event (`RotationEngine+Executor`), committing each new state to disk before adopting
/// it (Architecture, "The engine").
///
/// Scheduling is continuous: each app's step starts when it is due, at most `max_concurrent`
/// at once, API calls paced by `requests_per_second`; a slow hook or call of one app never
/// holds back another's step. One step per app at a time.
public actor RotationEngine {
    public internal(set) var config: RotatorConfig
    var policy: EnginePolicy
    /// How long one step may run before the daemon stops feeding the watchdog: the longest
    /// hook timeout, four request timeouts and a minute. Computed once per config, as the
    /// scheduler reads it at every turn.
    public private(set) var stepBudget: Duration
    let api: any SecretAPI
    let stateDirectory: StateDirectory
    let writer: OutputWriter
    let hooks: any HookRunning
    /// systemd, for consumer units (`consumers`): told over D-Bus, then checked.
    let units: any SystemdUnitManaging
    /// Blocking file I/O (outputs, their pre-flight and inspection) runs here, off the actor
    /// and off the cooperative pool: an fsync of one app no longer holds back the others, and
    /// concurrent writes let the file system group their journal commits.
    let fileIO: NIOThreadPool
    let now: @Sendable () -> Date
    let limiter: RequestRateLimiter
    var random: any RandomNumberGenerator & Sendable
    let logger: Logger
    /// Where rotations, repairs, hook runs, the exposure window and each app's state gauges are
    /// reported (`MetricsTextfile`); `.disabled` records nothing.
    let metrics: RotatorMetrics

    /// Each configured app's durable state, as last committed.
    var states: [String: AppState] = [:]
    /// Each app's in-memory runtime (`AppRuntime`); an app without an entry has the default.
    var runtimes: [String: AppRuntime] = [:]
    /// Secrets adopted while the state directory could not keep them (ENOSPC, EROFS...): newer
    /// than the record on disk and already on the outputs, so they, not the older record, are
    /// what a repair compares with until a save succeeds.
    var unsavedSecrets: [String: CurrentSecret] = [:]
    /// This host's part in the fleet, as the decisions see it.
    var fleet = FleetView.singleHost
    /// The fleet this host is part of (`[cluster]`), nil on a single host.
    var fence: (any RotationFence)?

    // Scheduling (`RotationEngine+Scheduling`).
    var running: [String: ContinuousClock.Instant] = [:]
    /// The tasks of steps started by `startDue`/`runDue`, for `cancelInFlight`.
    var stepTasks: [String: Task<Void, Never>] = [:]
    /// Running apps that are inside their hook: they keep their one-step-per-app turn but not a
    /// `max_concurrent` slot, so slow hooks cannot hold back other apps' API work.
    var inHook: Set<String> = []
    /// When each idle app's planned step falls due (`.distantPast`: at once). A plan depends
    /// only on the app's state and facts, never on the clock beyond the absolute time it waits
    /// for, so it is cached until one of those changes: a pass over N apps plans each app a
    /// few times instead of N times.
    var dueCache: [String: Date] = [:]
    /// Idle apps by due date, earliest first (ties in config order): a scan starts the apps
    /// at the top instead of walking all N apps each time a step finishes (a pass over N apps
    /// was O(N²)). An entry whose date no longer matches `dueCache` is stale and skipped when
    /// it reaches the top.
    var dueOrder = Heap<DueEntry>()
    /// Idle apps whose due date is not known (never planned, or invalidated): planned at the
    /// next scan, which pushes them into `dueOrder`.
    var unplanned: Set<String> = []
    var finishWaiters: [CheckedContinuation<Void, Never>] = []
    var workFinished: @Sendable () -> Void = {}

    /// Each configured app's position in `config.apps`.
    var appIndex: [String: Int] = [:]
    /// Apps by name and id, for operators' requests (each O(1), so `rotate --all` is O(N)).
    var lookup = AppLookup([])
    /// The start each app's window wait was last logged with: one line per wait, not per plan.
    var windowWaitLogged: [String: Date] = [:]
    /// When the refresh answer of an app's rotation in progress arrived: the exposure window
    /// (GenAuth has killed the old secret; consumers hold it until every output is durable)
    /// runs from here to the last output's fsync.
    var answerArrived: [String: ContinuousClock.Instant] = [:]
    /// The exposure window of each app's last rotation, logged on its `rotated` entry.
    var exposure: [String: Duration] = [:]

    // GenAuth's recovery (`RotationEngine+GenAuth`).
    /// Apps waiting on the backoff of a transient failure (`AppState.FailureKind.transient`),
    /// kept as each state is adopted: GenAuth's recovery visits these, never every app.
    var transientBackoff: Set<String> = []
    /// Apps whose backoff a recovery already cut short in their current failure streak: a
    /// retry that fails again waits its normal backoff, however often GenAuth flaps.
    var pulledForward: Set<String> = []
    /// A GenAuth call failed transiently and none has answered since: the next answer is a
    /// recovery (at most one per streak of answers).
    var genAuthFailing = false
    /// GenAuth answered after an outage; the recovery runs once the answering step is done.
    var recoveryDue = false

    public init(
        config: RotatorConfig, api: any SecretAPI, stateDirectory: StateDirectory,
        writer: OutputWriter = OutputWriter(), hooks: any HookRunning = HookRunner(),
        units: any SystemdUnitManaging = SystemdBusUnits(),
        fileIO: NIOThreadPool = RotationEngine.sharedFileIO,
        now: @escaping @Sendable () -> Date = { Date() },
        random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
        metrics: RotatorMetrics = .disabled,
        logger: Logger = Logger(label: "secret-rotator.engine")
    ) {
        self.config = config
        self.policy = EnginePolicy(config: config)
        self.stepBudget = Self.stepBudget(of: config)
        self.api = api
        self.stateDirectory = stateDirectory
        self.writer = writer
        self.hooks = hooks
        self.units = units
        self.fileIO = fileIO
        self.now = now
        self.random = random
        self.metrics = metrics
        self.logger = logger
        self.limiter = RequestRateLimiter(requestsPerSecond: config.genauth.requestsPerSecond)
        self.appIndex = Self.indices(of: config)
        self.lookup = AppLookup(config.apps)
        self.unplanned = Set(config.apps.map(\.id))
    }

    /// The threads for blocking file I/O: 16, so that up to 16 fsyncs of different apps are
    /// in flight at once (NIO's own singleton has one per core, 2 here). Started on first use;
    /// idle threads wait on a condition variable and do not wake.
    public static let sharedFileIO: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    /// The configured app with this id: O(1) through `appIndex`, as every step looks its app
    /// up (a scan of the config per step made a pass over N apps O(N²)).
    public func app(withID appID: String) -> AppConfig? {
        appIndex[appID].map { config.apps[$0] }
    }

    static func stepBudget(of config: RotatorConfig) -> Duration {
        (config.apps.map(\.hookTimeout).max() ?? .zero) + config.genauth.requestTimeout * 4 + .seconds(60)
    }

    static func indices(of config: RotatorConfig) -> [String: Int] {
        Dictionary(config.apps.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func state(of appID: String) -> AppState? { states[appID] }

    /// The app's durable state, or a fresh one.
    func currentState(_ appID: String) -> AppState {
        states[appID] ?? AppState(appID: appID)
    }

    /// The app's runtime value (the default when none is kept).
    func runtime(_ appID: String) -> AppRuntime {
        runtimes[appID] ?? AppRuntime()
    }

    /// Changes the app's runtime value in place; a default value is not kept.
    func updateRuntime<T>(_ appID: String, _ change: (inout AppRuntime) -> T) -> T {
        var value = runtimes[appID] ?? AppRuntime()
        let result = change(&value)
        runtimes[appID] = value == AppRuntime() ? nil : value
        return result
    }

    /// Prepares the state directory and loads every app's records. Corrupt records are moved
    /// aside and reported, never dropped silently. Every output is checked at the first pass.
    public func start() throws(StateDirectoryError) {
        for corrupt in try stateDirectory.prepare(now: now()) {
            reportCorrupt(corrupt, app: app(withID: corrupt.appID))
        }
        let loaded = stateDirectory.loadAll(appIDs: config.apps.map(\.id), now: now())
        for corrupt in loaded.corrupt {
            reportCorrupt(corrupt, app: app(withID: corrupt.appID))
        }
        for app in config.apps {
            setState(loaded.states[app.id] ?? AppState(appID: app.id), of: app.id)
            updateRuntime(app.id) { $0.heldVersion = loaded.secretVersions[app.id] }
        }
        publishAllStates()
        sweepOutputDirectories()
        checkOutputs()
    }

    /// Applies a reloaded config: added apps start from their records (or fresh), removed apps
    /// are no longer scheduled (their records stay for a later re-add), every output is
    /// compared again, so an added output or a changed mode is applied at once, and the API
    /// budget takes the new `requests_per_second`. The GenAuth client itself is the caller's
    /// to replace (`ReloadableGenAuthClient`).
    public func apply(_ newConfig: RotatorConfig) {
        config = newConfig
        policy = EnginePolicy(config: newConfig)
        stepBudget = Self.stepBudget(of: newConfig)
        limiter.setRate(requestsPerSecond: newConfig.genauth.requestsPerSecond)
        for app in newConfig.apps where states[app.id] == nil {
            load(app)
        }
        let ids = Set(newConfig.apps.map(\.id))
        states = states.filter { ids.contains($0.key) }
        transientBackoff = transientBackoff.filter { ids.contains($0) }
        pulledForward = pulledForward.filter { ids.contains($0) }
        // A removed app keeps what protects it if it comes back (a fleet hand-over still in its
        // settle period, what GenAuth confirmed, an announced rotation time), never what was
        // asked of it: a request made before the removal must not rotate it on a later re-add.
        for id in runtimes.keys where !ids.contains(id) {
            updateRuntime(id) { runtime in
                runtime.request = nil
                runtime.backoffOverride = false
            }
        }
        dueCache = [:]
        dueOrder = Heap()
        appIndex = Self.indices(of: newConfig)
        lookup = AppLookup(newConfig.apps)
        unplanned = Set(newConfig.apps.map(\.id).filter { running[$0] == nil })
        publishAllStates()
        sweepOutputDirectories()
        checkOutputs()
    }

    /// An app added by a reload: its records, or a fresh start.
    func load(_ app: AppConfig) {
        let loaded = stateDirectory.loadState(appID: app.id, now: now())
        if let corrupt = loaded.corrupt { reportCorrupt(corrupt, app: app) }
        setState(loaded.state ?? AppState(appID: app.id), of: app.id)
        let secret = stateDirectory.loadSecret(appID: app.id, now: now())
        if let corrupt = secret.corrupt { reportCorrupt(corrupt, app: app) }
        updateRuntime(app.id) { $0.heldVersion = secret.secret?.version }
        invalidate(app.id)
    }

    /// Every configured app's series, and its state gauges, after a start or a reload.
    func publishAllStates() {
        metrics.track(apps: config.apps)
        for app in config.apps {
            if let state = states[app.id] { metrics.appStateChanged(app, state: state) }
        }
    }

    /// Writes do not sweep their directory (a pass over N apps in one directory would list it
    /// N times); start-up and a reload clear the temp files a killed writer left, once per
    /// directory. Best effort: a failed write sweeps its directory again.
    func sweepOutputDirectories() {
        // Template text does not matter for sweeping, only paths, owners and directory safety.
        let specs = config.apps.flatMap { app in app.outputs.map { $0.outputSpec(template: nil) } }
        for sweep in writer.sweepStaleTemporaries(for: specs) {
            if !sweep.removed.isEmpty {
                logger.info(
                    "removed temp files a killed writer left",
                    metadata: ["target_path": "\(sweep.directory)", "files": "\(sweep.removed.joined(separator: " "))"])
            }
            if let error = sweep.error {
                logger.warning("cannot sweep stale temp files: \(error)", metadata: ["target_path": "\(sweep.directory)"])
            }
        }
    }

    /// Called whenever a step finishes, so a scheduler can look at the clock again at once.
    public func onWorkFinished(_ handler: @escaping @Sendable () -> Void) {
        workFinished = handler
    }

    /// Asks every app (or the named ones) to compare its outputs with the held secret at its
    /// next step: the level-triggered pass (start, SIGHUP, `fetch`, the periodic re-check).
    public func checkOutputs(appIDs: [String]? = nil) {
        for id in appIDs ?? config.apps.map(\.id) {
            updateRuntime(id) { $0.outputsCheckDue = true }
            invalidate(id)
        }
    }

    /// Asks for a rotation (`.refresh`) or a fetch of an app (`AppDecisions.request`). A
    /// pending backoff is overridden once, and the log says so. Returns false for an unknown app.
    public func request(_ step: RotationPlanner.Step, forApp nameOrID: String) -> Bool {
        guard let app = lookup.app(named: nameOrID) else { return false }
        let state = currentState(app.id)
        let notices = updateRuntime(app.id) { runtime in
            AppDecisions.request(step, app: app, state: state, runtime: &runtime, fleet: fleet, now: now())
        }
        invalidate(app.id)
        for notice in notices { log(notice, step, app) }
        return true
    }
}
