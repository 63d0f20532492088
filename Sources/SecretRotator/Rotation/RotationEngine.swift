#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HeapModule
import Logging
import NIOPosix

/// Carries out every app's steps: plans with `RotationPlanner`, performs the I/O (GenAuth
/// calls, the state directory, outputs, hooks) and feeds each outcome to `AppTransitions`,
/// committing the new state to disk before adopting it (Architecture, "The engine").
///
/// Scheduling is continuous: each app's step starts when it is due, at most `max_concurrent`
/// at once, API calls paced by `requests_per_second`; a slow hook or call of one app never
/// holds back another's step. One step per app at a time.
public actor RotationEngine {
    public private(set) var config: RotatorConfig
    private var policy: EnginePolicy
    private let api: any SecretAPI
    private let stateDirectory: StateDirectory
    private let writer: OutputWriter
    private let hooks: any HookRunning
    /// systemd, for consumer units (`consumers`): told over D-Bus, then checked.
    private let units: any SystemdUnitManaging
    /// Blocking file I/O (outputs, their pre-flight and inspection) runs here, off the actor
    /// and off the cooperative pool: an fsync of one app no longer holds back the others, and
    /// concurrent writes let the file system group their journal commits.
    private let fileIO: NIOThreadPool
    let now: @Sendable () -> Date
    private let limiter: RequestRateLimiter
    private var random: any RandomNumberGenerator & Sendable
    private let logger: Logger
    /// Where rotations, repairs, hook runs, the exposure window and each app's state gauges are
    /// reported (`MetricsTextfile`); `.disabled` records nothing.
    private let metrics: RotatorMetrics

    private var states: [String: AppState] = [:]
    /// Version of each app's held `CurrentSecret` record (the secret itself stays on disk).
    private var heldVersions: [String: Int] = [:]
    /// Apps whose outputs a pass asked to compare with the held secret.
    private var outputsCheckDue: Set<String> = []
    /// The fingerprint of each app's secret that GenAuth confirmed since this process started
    /// (it answered that secret, or a read found it current). A record loaded from disk is not
    /// in here until then: it may be a restored backup whose secret GenAuth killed since, so a
    /// repair that would write it over an output's content reads GenAuth first.
    private var confirmedRecords: [String: String] = [:]
    /// Drift an inspection found, kept for the `repairOutputs` action that rewrites it.
    struct PendingRepair {
        var record: CurrentSecret
        var document: SecretDocument
        var drifted: [(OutputSpec, OutputDrift)]
    }
    /// Apps an operator asked to rotate or fetch now (`rotate`/`fetch` commands).
    private var requested: [String: RotationPlanner.Step] = [:]
    /// Apps whose next step may run once despite a pending backoff (an operator asked).
    private var backoffOverride: Set<String> = []
    var running: [String: ContinuousClock.Instant] = [:]
    /// The tasks of steps started by `startDue`/`runDue`, for `cancelInFlight`.
    private var stepTasks: [String: Task<Void, Never>] = [:]
    /// Running apps that are inside their hook: they keep their one-step-per-app turn but not a
    /// `max_concurrent` slot, so slow hooks cannot hold back other apps' API work.
    private var inHook: Set<String> = []
    /// Secrets adopted while the state directory could not keep them (ENOSPC, EROFS...): newer
    /// than the record on disk and already on the outputs, so they, not the older record, are
    /// what a repair compares with until a save succeeds.
    private var unsavedSecrets: [String: CurrentSecret] = [:]
    /// When each idle app's planned step falls due (`.distantPast`: at once). A plan depends
    /// only on the app's state and facts, never on the clock beyond the absolute time it waits
    /// for, so it is cached until one of those changes: a pass over N apps plans each app a
    /// few times instead of N times.
    private var dueCache: [String: Date] = [:]
    /// Idle apps by due date, earliest first (ties in config order): a scan starts the apps
    /// at the top instead of walking all N apps each time a step finishes (a pass over N apps
    /// was O(N²): 15 % of the engine's time at 10,000 apps). An entry whose date no longer
    /// matches `dueCache` is stale and skipped when it reaches the top.
    private var dueOrder = Heap<DueEntry>()
    /// Idle apps whose due date is not known (never planned, or invalidated): planned at the
    /// next scan, which pushes them into `dueOrder`.
    private var unplanned: Set<String> = []
    /// Each configured app's position in `config.apps`.
    private var appIndex: [String: Int] = [:]
    /// Apps by name and id, for operators' requests (each O(1), so `rotate --all` is O(N)).
    private var lookup = AppLookup([])
    /// The start each app's window wait was last logged with: one line per wait, not per plan.
    private var windowWaitLogged: [String: Date] = [:]

    private struct DueEntry: Comparable {
        let due: Date
        let index: Int
        let appID: String
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.due, lhs.index) < (rhs.due, rhs.index) }
    }
    /// When the refresh answer of an app's rotation in progress arrived: the exposure window
    /// (GenAuth has killed the old secret; consumers hold it until every output is durable)
    /// runs from here to the last output's fsync.
    private var answerArrived: [String: ContinuousClock.Instant] = [:]
    /// The exposure window of each app's last rotation, logged on its `rotated` entry.
    private var exposure: [String: Duration] = [:]
    var finishWaiters: [CheckedContinuation<Void, Never>] = []
    /// The fleet this host is part of (`[cluster]`), nil on a single host. With one, `rotate`
    /// apps are rotated only while `leading`; otherwise they are followed like `follow` apps.
    var fence: (any RotationFence)?
    var leading = false
    /// Leading, but etcd has not confirmed the lease lately: nothing is rotated, and an
    /// operator's rotate waits for the lease to be confirmed instead of becoming a fetch.
    private var leadershipSuspended = false
    /// When the leader obtained the secret a notice announced, per app: a secret fetched for
    /// that notice counts from then, so a candidate that takes over rotates on the fleet's
    /// schedule, not a fetch's round trip later.
    private var upstreamRotatedAt: [String: Date] = [:]
    /// Apps another leader left with an unfinished refresh (its intent in etcd): until a settle
    /// period after that intent, its request may still land at GenAuth, so nothing about the
    /// app is decided here before then (the single-host rule for an unknown outcome).
    private var handOverUntil: [String: Date] = [:]
    /// Of those, the apps whose held secret is as new as the last notice: a change their
    /// first read finds can only be the old leader's last refresh, so the wait ends there.
    private var handOverCurrent: Set<String> = []
    private var workFinished: @Sendable () -> Void = {}
    /// Apps waiting on the backoff of a transient failure (`AppState.FailureKind.transient`),
    /// kept as each state is adopted: GenAuth's recovery visits these, never every app.
    private var transientBackoff: Set<String> = []
    /// Apps whose backoff a recovery already cut short in their current failure streak: a
    /// retry that fails again waits its normal backoff, however often GenAuth flaps.
    private var pulledForward: Set<String> = []
    /// A GenAuth call failed transiently and none has answered since: the next answer is a
    /// recovery (at most one per streak of answers).
    private var genAuthFailing = false

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

    /// The configured app with this id: O(1) through `appIndex`, as every step looks its app
    /// up (a scan of the config per step made a pass over N apps O(N²)).
    public func app(withID appID: String) -> AppConfig? {
        appIndex[appID].map { config.apps[$0] }
    }

    private static func indices(of config: RotatorConfig) -> [String: Int] {
        Dictionary(config.apps.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The time between two GenAuth calls the budget allows now (`requests_per_second`).
    var requestSpacing: Duration { limiter.spacing }

    /// Entries in the due-date heap, live and stale (tests check it stays bounded).
    var dueOrderCount: Int { dueOrder.count }

    /// Forgets the app's planned due date; it is planned again at the next scan.
    private func invalidate(_ appID: String) {
        dueCache[appID] = nil
        if running[appID] == nil && appIndex[appID] != nil { unplanned.insert(appID) }
    }

    /// The threads for blocking file I/O: 16, so that up to 16 fsyncs of different apps are
    /// in flight at once (NIO's own singleton has one per core, 2 here). Started on first use;
    /// idle threads wait on a condition variable and do not wake.
    public static let sharedFileIO: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

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
            heldVersions[app.id] = loaded.secretVersions[app.id]
        }
        publishAllStates()
        sweepOutputDirectories()
        checkOutputs()
    }

    /// Every configured app's series, and its state gauges, after a start or a reload.
    private func publishAllStates() {
        metrics.track(apps: config.apps)
        for app in config.apps {
            if let state = states[app.id] { metrics.appStateChanged(app, state: state) }
        }
    }

    private func reportCorrupt(_ corrupt: StateDirectory.CorruptRecord, app: AppConfig?) {
        let log = app.map(appLogger) ?? logger
        log.critical(
            "a state record was unreadable; moved aside, the app starts over and reads GenAuth's current secret",
            metadata: ["target_path": "\(corrupt.movedTo)", "reason": "\(corrupt.reason)", "event": "state_corrupt"])
    }

    /// Called whenever a step finishes, so a scheduler can look at the clock again at once.
    public func onWorkFinished(_ handler: @escaping @Sendable () -> Void) {
        workFinished = handler
    }

    /// Applies a reloaded config: added apps start from their records (or fresh), removed apps
    /// are no longer scheduled (their records stay for a later re-add), every output is
    /// compared again, so an added output or a changed mode is applied at once, and the API
    /// budget takes the new `requests_per_second`. The GenAuth client itself is the caller's
    /// to replace (`ReloadableGenAuthClient`).
    public func apply(_ newConfig: RotatorConfig) {
        config = newConfig
        policy = EnginePolicy(config: newConfig)
        limiter.setRate(requestsPerSecond: newConfig.genauth.requestsPerSecond)
        for app in newConfig.apps where states[app.id] == nil {
            load(app)
        }
        let ids = Set(newConfig.apps.map(\.id))
        states = states.filter { ids.contains($0.key) }
        transientBackoff = transientBackoff.filter { ids.contains($0) }
        pulledForward = pulledForward.filter { ids.contains($0) }
        requested = requested.filter { ids.contains($0.key) }
        dueCache = [:]
        dueOrder = Heap()
        appIndex = Self.indices(of: newConfig)
        lookup = AppLookup(newConfig.apps)
        unplanned = Set(newConfig.apps.map(\.id).filter { running[$0] == nil })
        publishAllStates()
        sweepOutputDirectories()
        checkOutputs()
    }

    /// Writes do not sweep their directory (a pass over N apps in one directory would list it
    /// N times); start-up and a reload clear the temp files a killed writer left, once per
    /// directory. Best effort: a failed write sweeps its directory again.
    private func sweepOutputDirectories() {
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

    /// Asks every app (or the named ones) to compare its outputs with the held secret at its
    /// next step: the level-triggered pass (start, SIGHUP, `fetch`, the periodic re-check).
    public func checkOutputs(appIDs: [String]? = nil) {
        let ids = appIDs ?? config.apps.map(\.id)
        outputsCheckDue.formUnion(ids)
        for id in ids { invalidate(id) }
    }

    /// Asks for a rotation (`.refresh`) or a fetch of an app. A pending backoff is overridden
    /// once, and the log says so. Returns false for an unknown app.
    public func request(_ step: RotationPlanner.Step, forApp nameOrID: String) -> Bool {
        guard let app = lookup.app(named: nameOrID) else { return false }
        if step == .refresh, effective(app).action == .follow, app.action == .rotate, leadershipSuspended {
            appLogger(app).notice(
                "this host leads, but etcd has not confirmed its lease lately; the rotation runs once it does",
                metadata: ["event": "cluster_rotate_waits"])
        } else if step == .refresh, effective(app).action == .follow, app.action == .rotate {
            appLogger(app).notice(
                "this host does not lead the fleet's election, so it does not rotate; the request is answered with a fetch (rotate on the leader)",
                metadata: ["event": "cluster_not_leader"])
        }
        // A rotation already asked for is not replaced by a fetch: it answers both.
        if requested[app.id] != .refresh { requested[app.id] = step }
        invalidate(app.id)
        if step == .fetch { outputsCheckDue.insert(app.id) }
        if let state = states[app.id], state.consecutiveFailures > 0, let retry = state.nextAttempt, retry > now() {
            backoffOverride.insert(app.id)
            appLogger(app).notice(
                "an operator's \(step.name) overrides the backoff once (the next retry was due at \(retry.formatted(.iso8601)))",
                metadata: ["event": "backoff_overridden"])
        }
        return true
    }

    public func state(of appID: String) -> AppState? { states[appID] }

    // MARK: - Fleet

    /// Makes this engine part of a fleet: from now on `rotate` apps are rotated only while
    /// `leadershipChanged(leading: true, ...)` holds, and every refresh asks `fence` first.
    public func joinCluster(_ fence: any RotationFence) {
        self.fence = fence
        leading = false
        for app in config.apps where app.action == .rotate { invalidate(app.id) }
        workFinished()
    }

    /// This host won (`leading`) or lost the election. On winning, apps with an interrupted
    /// rotation (`intents`: another leader recorded an intent and never published) and apps a
    /// notice shows rotated after the secret held here are read from GenAuth before anything
    /// is rotated: the hand-over reconciles instead of rotating twice. `catchUpAll` (etcd's
    /// records could not be read) reads every `rotate` app.
    public func leadershipChanged(
        leading: Bool, suspended: Bool = false, intents: [String: Date] = [:], notices: [String: Date] = [:], catchUpAll: Bool = false
    ) {
        self.leading = leading
        leadershipSuspended = !leading && suspended
        if !leading {
            handOverUntil = [:]
            handOverCurrent = []
        }
        for app in config.apps where app.action == .rotate {
            if leading {
                let state = states[app.id] ?? AppState(appID: app.id)
                let behind = notices[app.id].map { announced in state.secretObtainedAt.map { $0 < announced } ?? true } ?? false
                if let started = intents[app.id] {
                    handOverUntil[app.id] = started.addingTimeInterval(RotationPlanner.seconds(policy.settlePeriod))
                    if !behind { handOverCurrent.insert(app.id) }
                    // A changed secret the hand-over read finds is the old leader's rotation,
                    // made about when its intent was: the schedule counts from then.
                    if notices[app.id] == nil { upstreamRotatedAt[app.id] = started }
                }
                if catchUpAll || intents[app.id] != nil || behind {
                    requested[app.id] = .fetch
                    if let announced = notices[app.id] { upstreamRotatedAt[app.id] = announced }
                }
            }
            invalidate(app.id)
        }
        workFinished()
    }

    /// A notice says another host rotated `appID` at `rotatedAt`: fetch its secret now (within
    /// the backoff, like every step). `live` notices come from the watch; others from a
    /// snapshot after a (re)connect, and are acted on only if the held secret is older.
    /// Returns whether a fetch was queued.
    @discardableResult
    public func notified(appID: String, rotatedAt: Date, live: Bool) -> Bool {
        guard let index = appIndex[appID] else { return false }
        let app = config.apps[index]
        let state = states[app.id] ?? AppState(appID: app.id)
        if !live, let obtained = state.secretObtainedAt, obtained >= rotatedAt { return false }
        upstreamRotatedAt[app.id] = rotatedAt
        if requested[app.id] != .refresh { requested[app.id] = .fetch }
        invalidate(app.id)
        workFinished()
        return true
    }

    /// Whether this host currently rotates `rotate` apps (always true without a fleet).
    public var rotatesLocally: Bool { fence == nil || leading }

    /// The app as this host treats it now: a `rotate` app of a fleet this host does not lead
    /// is followed (fetched on notices and polled on its interval), never rotated.
    private func effective(_ app: AppConfig) -> AppConfig {
        guard fence != nil, app.action == .rotate, !leading else { return app }
        var follower = app
        follower.action = .follow
        return follower
    }

    /// Starts every step that is due now, within `max_concurrent`, without waiting for any of
    /// them; returns when to call again, as `nextWake()` does (nil: not before a step
    /// finishes, which calls the `onWorkFinished` handler, or no apps at all).
    @discardableResult
    public func startDue() -> Date? {
        startDueSteps { _ in true }
        return nextWake()
    }

    /// Runs until no app has a step due now (at most `maxStepsPerApp` steps each, so a caller
    /// like `run --once` makes one attempt per app and then reports its backoff). Returns when
    /// the earliest app falls due; an app that used up its steps and is still due is left out
    /// of that date (a caller waking for it "now" would loop through the same steps at once),
    /// and is started again by the next call.
    @discardableResult
    public func runDue(maxStepsPerApp: Int = 8) async -> Date? {
        var steps: [String: Int] = [:]
        while true {
            for app in startDueSteps(where: { (steps[$0.id] ?? 0) < maxStepsPerApp }) {
                steps[app.id, default: 0] += 1
            }
            if running.isEmpty { break }
            await withCheckedContinuation { finishWaiters.append($0) }
        }
        return nextWake(skippingDue: Set(steps.lazy.filter { $0.value >= maxStepsPerApp }.map(\.key)))
    }

    private var busySlots: Int { running.count - inHook.count }

    /// Starts the idle apps whose step is due now and that `allowed` admits, within
    /// `max_concurrent`; returns them.
    @discardableResult
    private func startDueSteps(where allowed: (AppConfig) -> Bool) -> [AppConfig] {
        let now = now()
        planUnplanned()
        var started: [AppConfig] = []
        var heldBack: [DueEntry] = []
        while busySlots < config.defaults.maxConcurrent, let top = dueOrder.min, top.due <= now {
            let entry = dueOrder.removeMin()
            guard running[entry.appID] == nil, dueCache[entry.appID] == entry.due, let index = appIndex[entry.appID] else { continue }
            let app = config.apps[index]
            guard allowed(app) else {
                heldBack.append(entry)
                continue
            }
            // Due: plan again at `now`, a cached due time may have become a new wait (pushed anew).
            dueCache[app.id] = nil
            guard dueDate(app) <= now else { continue }
            start(app)
            started.append(app)
        }
        for entry in heldBack { dueOrder.insert(entry) }
        return started
    }

    /// Plans every idle app whose due date is not known, in config order.
    private func planUnplanned() {
        guard !unplanned.isEmpty else { return }
        let ids = unplanned.compactMap { id in appIndex[id].map { ($0, id) } }.sorted { $0.0 < $1.0 }
        unplanned = []
        for (index, id) in ids where running[id] == nil {
            _ = dueDate(config.apps[index])
        }
    }

    /// When the app's planned step falls due (`.distantPast`: at once), from the cache when known.
    private func dueDate(_ app: AppConfig) -> Date {
        if let cached = dueCache[app.id] { return cached }
        let step = plan(for: app).step
        if case .waitForWindow(let until) = step, windowWaitLogged[app.id] != until {
            windowWaitLogged[app.id] = until
            appLogger(app).info(
                "the scheduled rotation waits for the app's window \(app.window?.description ?? "?"): it starts at \(until.formatted(.iso8601))",
                metadata: ["event": "rotation_waits_for_window", "starts_at": "\(until.formatted(.iso8601))"])
        }
        let due = step.due(now: .distantPast)
        dueCache[app.id] = due
        if let index = appIndex[app.id] { dueOrder.insert(DueEntry(due: due, index: index, appID: app.id)) }
        // Stale entries of far-off dates would pile up (every 5-minute re-check plans each app
        // again): past twice the apps, the heap is rebuilt from the live due dates.
        if dueOrder.count > 2 * appIndex.count + 64 {
            dueOrder = Heap(dueCache.compactMap { id, due in appIndex[id].map { DueEntry(due: due, index: $0, appID: id) } })
        }
        return due
    }

    private func start(_ app: AppConfig) {
        running[app.id] = .now
        unplanned.remove(app.id)
        dueCache[app.id] = nil
        stepTasks[app.id] = Task { await self.work(appID: app.id) }
    }

    /// Waits until no step is running (graceful shutdown: the step in flight completes).
    public func drain() async {
        while !running.isEmpty {
            await withCheckedContinuation { finishWaiters.append($0) }
        }
    }

    /// Whether any step is running now.
    public var hasRunningSteps: Bool { !running.isEmpty }

    /// Cancels the steps in flight: API calls end at once (a refresh cut off this way is an
    /// unknown outcome, already durable as an intent, and reconciled at the next start, never
    /// sent again), hooks are ended with their process group. Writes in progress complete.
    /// For a shutdown that cannot wait for a `request_timeout` of up to 5 minutes.
    public func cancelInFlight() {
        for task in stepTasks.values { task.cancel() }
    }

    /// Runs one app's steps until it has nothing left to do now, or one step failed (used by a
    /// standalone `rotate` and `fetch`). Returns whether the app ended healthy.
    public func settle(appID: String, maxSteps: Int = 8) async -> Bool {
        for _ in 0..<maxSteps {
            guard let app = app(withID: appID), running[appID] == nil else { return false }
            if plan(for: app).step.waitingUntil != nil { break }
            let failuresBefore = states[appID]?.consecutiveFailures ?? 0
            running[appID] = .now
            await work(appID: appID)
            if (states[appID]?.consecutiveFailures ?? 0) > failuresBefore { return false }
        }
        return isHealthy(appID)
    }

    /// No failure, nothing owed: the outputs hold the held secret and no refresh is unsettled.
    public func isHealthy(_ appID: String) -> Bool {
        guard let state = states[appID] else { return false }
        return state.consecutiveFailures == 0 && state.intent == nil && (heldVersions[appID] ?? 0) <= state.version
            && state.version > 0
    }

    /// How long the oldest running step has run, for the watchdog (nil: none running).
    public func longestRunningStep() -> Duration? {
        running.values.min().map { ContinuousClock.now - $0 }
    }

    /// When a scheduler should call `startDue` again: the due date of the earliest idle app
    /// (clamped to now), or nil when nothing can start before a step finishes (every
    /// `max_concurrent` slot is busy; the finishing step calls the `onWorkFinished` handler)
    /// or there are no apps. Never a date that only a finishing step could make actionable:
    /// with every slot busy, "now" for a due app made the daemon's loop spin at 100 % of a
    /// core until a slot freed.
    public func nextWake() -> Date? {
        nextWake(skippingDue: [])
    }

    /// `nextWake()`, leaving out the apps in `held` while they are due (not once they wait).
    private func nextWake(skippingDue held: Set<String>) -> Date? {
        let now = now()
        planUnplanned()
        if busySlots >= config.defaults.maxConcurrent { return nil }
        var skipped: [DueEntry] = []
        defer { for entry in skipped { dueOrder.insert(entry) } }
        while let top = dueOrder.min {
            // Stale entries at the top go; the first live one is the earliest idle app.
            if running[top.appID] != nil || dueCache[top.appID] != top.due || appIndex[top.appID] == nil {
                dueOrder.removeMin()
            } else if top.due <= now, held.contains(top.appID) {
                skipped.append(dueOrder.removeMin())
            } else {
                return max(top.due, now)
            }
        }
        return nil
    }

    public func status() -> StatusReport {
        StatusReport(
            apps: config.apps.map { app in
                let state = states[app.id] ?? AppState(appID: app.id)
                let held = heldVersions[app.id]
                return StatusReport.App(
                    app: app, state: state, pendingVersion: held.flatMap { $0 > state.version ? $0 : nil },
                    nextDue: plan(for: app).step.due(now: now()), hasSecret: held != nil,
                    waitingForWindow: RotationPlanner.isHeldByWindow(app: effective(app), state: state, now: now()))
            })
    }

    // MARK: - Planning

    /// The step to run, and whether it is an operator's request. A request never overtakes
    /// recovery (a held secret to write, a refresh to reconcile, a hook owed), only the schedule.
    private func plan(for app: AppConfig) -> (step: RotationPlanner.Step, isRequest: Bool) {
        var state = states[app.id] ?? AppState(appID: app.id)
        if backoffOverride.contains(app.id) { state.nextAttempt = nil }
        let facts = RotationPlanner.Facts(heldVersion: heldVersions[app.id], outputsCheckDue: outputsCheckDue.contains(app.id))
        let planned = RotationPlanner.nextStep(app: effective(app), state: state, facts: facts, policy: policy, now: now())
        let recovering = state.intent != nil || (heldVersions[app.id] ?? 0) > state.version || state.version == 0
        if let until = handOverUntil[app.id] {
            // Another leader's refresh may still land until a settle period after its intent:
            // the hand-over reads at once (a change there is that refresh: done) and again
            // once the period is over; no rotation before (a read could have missed the late
            // refresh, and a rotation would then be the second). Recovery goes on.
            // Every read here waits for the backoff like any step (invariant 11): a failing
            // GenAuth must not turn the hand-over into a loop of reads.
            let inBackoff = state.consecutiveFailures > 0 && (state.nextAttempt ?? .distantPast) > now()
            if until > now() {
                if requested[app.id] == .fetch, !recovering, !inBackoff {
                    return (.fetch, true)
                }
                switch planned {
                case .refresh, .fetch, .verify: return (.wait(until: until), false)
                case .wait(let due), .waitForWindow(let due): return (.wait(until: min(due, until)), false)
                default: return (planned, false)
                }
            }
            if !recovering, !inBackoff, planned.waitingUntil != nil { return (.fetch, false) }
            if !recovering, !inBackoff, planned == .refresh { return (.fetch, false) }
        }
        // A first fetch also goes first: it gives a later reconcile a secret to compare with.
        // An owed hook does not hold a request back: the new version's hook supersedes it.
        // (Writing a held secret and reconciling are recovery, so never overtaken.)
        guard let asked = requested[app.id], !recovering else { return (planned, false) }
        // A request waits for the backoff like every other step (invariant 11): only the one
        // override an operator's request grants skips it (`state.nextAttempt` is cleared above
        // then). A failed request stays asked for, and without this it was retried at once,
        // over and over, while GenAuth refused connections (thousands of attempts a second).
        if state.consecutiveFailures > 0, let retry = state.nextAttempt, retry > now() { return (planned, false) }
        // A fetch request checks the outputs first (they are part of what it answers).
        if asked == .fetch, planned == .inspectOutputs { return (planned, false) }
        // Only the leader rotates: elsewhere an operator's rotate is answered with a fetch.
        if asked == .refresh, effective(app).action == .follow {
            // Suspended (etcd has not confirmed the lease for a moment): kept for when it does.
            if leadershipSuspended { return (planned, false) }
            return (.fetch, true)
        }
        return (asked, true)
    }

    private func load(_ app: AppConfig) {
        let loaded = stateDirectory.loadState(appID: app.id, now: now())
        if let corrupt = loaded.corrupt { reportCorrupt(corrupt, app: app) }
        setState(loaded.state ?? AppState(appID: app.id), of: app.id)
        let secret = stateDirectory.loadSecret(appID: app.id, now: now())
        if let corrupt = secret.corrupt { reportCorrupt(corrupt, app: app) }
        heldVersions[app.id] = secret.secret?.version
        invalidate(app.id)
    }

    // MARK: - Steps

    private func work(appID: String) async {
        defer { finished(appID) }
        guard let app = app(withID: appID) else { return }
        let (step, isRequest) = plan(for: app)
        if step.waitingUntil != nil { return }
        // A request and a backoff override are used up only by the step that runs.
        if isRequest { requested[app.id] = nil }
        backoffOverride.remove(app.id)
        let before = states[app.id] ?? AppState(appID: app.id)
        defer {
            // A request whose step failed stays asked for: it runs again after the backoff
            // instead of being lost while the CLI says the daemon keeps trying. Not once it
            // was answered: a rotation that produced a new version whose hook then failed
            // was rotated a second time; the hook is retried alone.
            let after = states[app.id] ?? AppState(appID: app.id)
            let answered: Bool
            switch step {
            case .refresh: answered = after.version > before.version || (heldVersions[app.id] ?? 0) > before.version
            default: answered = after.lastChecked != before.lastChecked
            }
            if isRequest, !answered, after.consecutiveFailures > before.consecutiveFailures, requested[app.id] == nil {
                requested[app.id] = step
            }
        }
        // The hand-over's read after the settle period: what it finds decides, the wait is over.
        let lastHandOverRead = step == .fetch && (handOverUntil[app.id].map { $0 <= now() } ?? false)
        let checkedBefore = states[app.id]?.lastChecked
        defer {
            // Only a read that answered ends the wait; a failed one is retried after its backoff.
            if lastHandOverRead, states[app.id]?.lastChecked != checkedBefore {
                handOverUntil[app.id] = nil
                handOverCurrent.remove(app.id)
            }
        }
        switch step {
        case .refresh: await transition(app, .refreshStarting)
        case .reconcile: await read(app, purpose: .reconcile)
        case .verify: await read(app, purpose: .verify)
        case .fetch: await read(app, purpose: .fetch)
        case .writeOutputs(let version): await writeHeld(app, version: version)
        case .runHook(let version): await runHook(app, version: version)
        case .notifyConsumers(let version): await notifyConsumers(app, version: version, onlyUnsettled: true)
        case .inspectOutputs: await inspectOutputs(app)
        case .wait, .waitForWindow: return
        }
    }

    func finished(_ appID: String) {
        running[appID] = nil
        stepTasks[appID] = nil
        invalidate(appID)
        slotFreed()
    }

    /// Wakes whoever waits to start more work: `runDue`, and the daemon's scheduler loop.
    private func slotFreed() {
        let waiters = finishWaiters
        finishWaiters = []
        for waiter in waiters { waiter.resume() }
        workFinished()
    }

    /// Adopts `state` as the app's state and keeps the set of apps in a transient backoff in
    /// step with it (O(1)).
    private func setState(_ state: AppState, of appID: String) {
        states[appID] = state
        if state.consecutiveFailures > 0 && state.lastFailureKind == .transient {
            transientBackoff.insert(appID)
        } else {
            transientBackoff.remove(appID)
        }
        if state.consecutiveFailures == 0 { pulledForward.remove(appID) }
    }

    /// Feeds one event to the app's transitions: commits the new state (durable first), adopts
    /// it, then performs its actions. `secret` is the value an `adoptSecret` action keeps.
    func transition(
        _ app: AppConfig, _ event: AppTransitions.Event, secret: SecretValue? = nil, repair: PendingRepair? = nil
    ) async {
        let old = states[app.id] ?? AppState(appID: app.id)
        let context = AppTransitions.Context(
            now: now(), policy: policy, hasHook: app.onRotate != nil, hasConsumers: !app.consumers.isEmpty, draw: random.next(),
            fleet: fleetRole(app))
        let result = AppTransitions.apply(event, to: old, context: context)
        if result.state != old {
            do {
                try await stateDirectory.commit(StateChanges(states: [result.state]))
            } catch {
                // Not adopted: what is on disk stays the truth, and the step fails with a backoff
                // kept in memory (the disk cannot hold it right now).
                let failure = AppTransitions.Failure(.local, error.description, fields: Self.fields(of: error))
                let failed = AppTransitions.apply(.journalFailed(failure), to: old, context: context)
                setState(failed.state, of: app.id)
                metrics.appStateChanged(app, state: failed.state)
                for action in failed.actions { await perform(action, app) }
                return
            }
        }
        // Removed by a reload while the commit was in flight: not brought back.
        guard states[app.id] != nil else { return }
        setState(result.state, of: app.id)
        if result.state != old { metrics.appStateChanged(app, state: result.state) }
        for action in result.actions {
            await perform(action, app, secret: secret, repair: repair)
        }
    }

    private func perform(
        _ action: AppTransitions.Action, _ app: AppConfig, secret: SecretValue? = nil, repair: PendingRepair? = nil
    ) async {
        switch action {
        case .sendRefresh:
            await sendRefresh(app)
        case .adoptSecret(let version, let origin):
            guard let secret else { return }
            await adopt(secret, version: version, origin: origin, app: app)
        case .keepConfirmedSecret:
            if let confirmed = states[app.id]?.secretFingerprint { confirmedRecords[app.id] = confirmed }
            guard heldVersions[app.id] == nil, let secret, let state = states[app.id] else { return }
            let record = CurrentSecret(
                appID: app.id, version: state.version, obtainedAt: state.secretObtainedAt ?? now(), secret: secret)
            do {
                try await stateDirectory.commit(StateChanges(secrets: [record]))
                heldVersions[app.id] = record.version
                outputsCheckDue.insert(app.id)
            } catch {
                await transition(app, .journalFailed(AppTransitions.Failure(.local, error.description, fields: Self.fields(of: error))))
            }
        case .runHook(let version):
            await runHook(app, version: version)
        case .notifyConsumers(let version):
            await notifyConsumers(app, version: version, onlyUnsettled: false)
        case .repairOutputs:
            guard let repair else { return }
            await repairOutputs(app, repair)
        case .confirmRecord:
            await read(app, purpose: .verify)
        case .writeHeldSecret:
            guard let held = heldSecret(app), held.version == heldVersions[app.id] else { return }
            await writeHeldRecord(held, app: app)
        case .confirmHeldSecret:
            guard let held = heldSecret(app) else { return }
            await confirmHeld(held, app: app)
        case .announce(let version):
            fence?.announce(appID: app.id, version: version, rotatedAt: states[app.id]?.secretObtainedAt ?? now())
        case .report(let report):
            log(report, app)
        }
    }

    /// Every way to a refresh ends here (the schedule, an owed rotation, an operator's
    /// request, the fallback after a refused read), so the pre-flight is here too: everything
    /// that can be checked is checked before the one call that cannot be taken back, as
    /// GenAuth kills the old secret the moment it answers. A failed pre-flight is a refresh
    /// not sent: the intent is cleared and the step backs off.
    private func sendRefresh(_ app: AppConfig) async {
        CrashPoint.reached(.intentDurable)
        if let failure = await preflight(app) {
            await transition(app, .refreshFailed(failure))
            return
        }
        await limiter.acquire()
        if let fence, let failure = Self.notSent(await fence.authorizeRefresh(appID: app.id)) {
            // Fencing (Architecture, Fleet): nothing was sent, so the refresh simply did not happen.
            await transition(app, .refreshFailed(failure))
            return
        }
        do {
            let secret = try await api.refreshApplicationSecret(appId: app.id)
            answerArrived[app.id] = .now
            CrashPoint.reached(.refreshAnswered)
            await transition(app, .refreshAnswered(fingerprint: SecretFingerprint.of(secret)), secret: secret)
            await genAuthAnswered()
        } catch {
            let failure = Self.failure(error)
            genAuthFailed(failure)
            await transition(app, .refreshFailed(failure))
        }
    }

    private func read(_ app: AppConfig, purpose: AppTransitions.ReadPurpose) async {
        await limiter.acquire()
        do {
            let secret = try await api.getApplicationSecret(appId: app.id)
            await transition(app, .secretRead(fingerprint: SecretFingerprint.of(secret), purpose: purpose), secret: secret)
            await genAuthAnswered()
        } catch {
            let failure = Self.failure(error)
            genAuthFailed(failure)
            await transition(app, .readFailed(failure, purpose: purpose))
        }
    }

    /// Reads GenAuth's current secret before a held secret that is not provably its newest
    /// replaces what the outputs hold: the held one is written only if GenAuth still holds it,
    /// otherwise GenAuth's secret is adopted. A failed read leaves the outputs as they are.
    private func confirmHeld(_ held: CurrentSecret, app: AppConfig) async {
        await limiter.acquire()
        do {
            let secret = try await api.getApplicationSecret(appId: app.id)
            let fingerprint = SecretFingerprint.of(secret)
            if fingerprint == held.fingerprint { confirmedRecords[app.id] = fingerprint }
            await transition(app, .heldSecretRead(matchesHeld: fingerprint == held.fingerprint), secret: secret)
            await genAuthAnswered()
        } catch {
            let failure = Self.failure(error)
            genAuthFailed(failure)
            await transition(app, .readFailed(failure, purpose: .verify))
        }
    }

    /// A GenAuth call failed: a transient failure (GenAuth unreachable, 5xx, 429, a lost
    /// answer) starts an outage, which the next answer ends.
    private func genAuthFailed(_ failure: AppTransitions.Failure) {
        if failure.kind == .transient || failure.kind == .outcomeUnknown { genAuthFailing = true }
    }

    /// GenAuth answered a call. The first answer after transient failures ends the outage:
    /// every app waiting on a transient backoff (and not yet cut short in its failure streak)
    /// gets a retry at its own slot of the request budget, in the order their retries were
    /// due, each with a jitter inside its slot (so hosts of a fleet do not retry in step).
    /// Bounded work: only the apps in `transientBackoff` are visited, once per recovery.
    private func genAuthAnswered() async {
        guard genAuthFailing else { return }
        genAuthFailing = false
        let start = now()
        let spacing = RotationPlanner.seconds(limiter.spacing)
        let waiting = transientBackoff.subtracting(pulledForward).compactMap { id -> (String, AppState)? in
            guard running[id] == nil, let state = states[id] else { return nil }
            return (id, state)
        }.sorted { ($0.1.nextAttempt ?? .distantPast, appIndex[$0.0] ?? 0) < ($1.1.nextAttempt ?? .distantPast, appIndex[$1.0] ?? 0) }
        var changed: [(id: String, old: AppState, new: AppState)] = []
        for (slot, (id, state)) in waiting.enumerated() {
            let jitter = Double(random.next() % 1_000) / 1_000
            let retryAt = start.addingTimeInterval(spacing * (Double(slot + 1) + jitter))
            let context = AppTransitions.Context(now: start, policy: policy, hasHook: false, draw: random.next())
            let result = AppTransitions.apply(.apiRecovered(retryAt: retryAt), to: state, context: context)
            if result.state != state { changed.append((id, state, result.state)) }
        }
        guard !changed.isEmpty else { return }
        do {
            try await stateDirectory.commit(StateChanges(states: changed.map(\.new)))
        } catch {
            // Not adopted: each app keeps the backoff on disk, which is safe, only slower.
            logger.warning(
                "GenAuth answers again, but the earlier retries could not be recorded; apps wait out their backoff",
                metadata: Self.metadata(Self.fields(of: error)))
            return
        }
        var pulled = 0
        var last = start
        for entry in changed {
            // A step that started or finished meanwhile decided for itself.
            guard running[entry.id] == nil, states[entry.id] == entry.old, let index = appIndex[entry.id] else { continue }
            setState(entry.new, of: entry.id)
            pulledForward.insert(entry.id)
            metrics.appStateChanged(config.apps[index], state: entry.new)
            invalidate(entry.id)
            pulled += 1
            last = max(last, entry.new.nextAttempt ?? start)
        }
        guard pulled > 0 else { return }
        logger.notice(
            "GenAuth answers again: \(Self.count(pulled, "app")) waiting on a transient failure's backoff will be retried within \(DurationSyntax.format(.milliseconds(Int64(last.timeIntervalSince(start) * 1000)))), one request slot apart",
            metadata: ["event": "genauth_recovered", "apps": "\(pulled)"])
        workFinished()
    }

    /// A secret we now hold: kept durably as the current secret before any output changes,
    /// then written everywhere. If it cannot be kept, the outputs are still written (GenAuth
    /// may already have killed the old secret), and the step fails so that it is settled again.
    private func adopt(_ secret: SecretValue, version: Int, origin: AppTransitions.SecretOrigin, app: AppConfig) async {
        var obtainedAt = now()
        if origin == .changedUpstream || origin == .fetched, let announced = upstreamRotatedAt.removeValue(forKey: app.id),
            announced <= obtainedAt, obtainedAt.timeIntervalSince(announced) < RotationPlanner.seconds(app.interval)
        {
            // The secret a notice announced: its age counts from the leader's rotation.
            obtainedAt = announced
        }
        let record = CurrentSecret(appID: app.id, version: version, obtainedAt: obtainedAt, secret: secret)
        var journalError: StateDirectoryError?
        heldVersions[app.id] = version
        // GenAuth just answered this secret.
        confirmedRecords[app.id] = record.fingerprint
        do {
            try await stateDirectory.commit(StateChanges(secrets: [record]))
            unsavedSecrets[app.id] = nil
            CrashPoint.reached(.secretDurable)
        } catch {
            unsavedSecrets[app.id] = record
            journalError = error
            appLogger(app).critical(
                "cannot keep the new secret in the state directory; writing the outputs anyway",
                metadata: Self.metadata(Self.fields(of: error)))
        }
        await write(record, app: app, origin: origin, journalError: journalError)
    }

    /// Resumes a held secret that is not yet on every output (after a crash or a failed write),
    /// once the transitions judge it provably GenAuth's newest (else GenAuth is read first).
    private func writeHeld(_ app: AppConfig, version: Int) async {
        let held = heldSecret(app)
        guard let record = held, record.version == version else {
            heldVersions[app.id] = held?.version
            return
        }
        let state = states[app.id] ?? AppState(appID: app.id)
        let afterIntent = state.intent == .refresh && record.obtainedAt >= (state.intentStartedAt ?? .distantFuture)
        await transition(
            app, .heldSecretDue(recordConfirmed: confirmedRecords[app.id] == record.fingerprint, obtainedAfterIntent: afterIntent))
    }

    /// Writes the held secret `record` to every output (the transitions decided it may).
    private func writeHeldRecord(_ record: CurrentSecret, app: AppConfig) async {
        var journalError: StateDirectoryError?
        if unsavedSecrets[app.id] != nil {
            // Kept only in memory so far: make it durable first, as an adoption would have.
            do {
                try await stateDirectory.commit(StateChanges(secrets: [record]))
                unsavedSecrets[app.id] = nil
            } catch {
                journalError = error
            }
        }
        let state = states[app.id] ?? AppState(appID: app.id)
        let origin: AppTransitions.SecretOrigin = state.intent == .refresh ? .rotated : (state.version == 0 ? .fetched : .changedUpstream)
        await write(record, app: app, origin: origin, journalError: journalError)
    }

    private func write(
        _ record: CurrentSecret, app: AppConfig, origin: AppTransitions.SecretOrigin, journalError: StateDirectoryError?
    ) async {
        let document = document(record, app)
        let report = await writeOutputs(document, app.outputs, app: app)
        if let arrived = answerArrived.removeValue(forKey: app.id), report.allWritten {
            let window = ContinuousClock.now - arrived
            exposure[app.id] = window
            metrics.exposureWindow(window)
        }
        if !report.allWritten {
            await transition(app, .outputsFailed(Self.failure(report, version: record.version)))
            return
        }
        if let journalError {
            await transition(app, .journalFailed(AppTransitions.Failure(.local, journalError.description, fields: Self.fields(of: journalError))))
            return
        }
        outputsCheckDue.remove(app.id)
        CrashPoint.reached(.outputsDurable)
        await transition(
            app, .outputsWritten(version: record.version, obtainedAt: record.obtainedAt, fingerprint: record.fingerprint, origin: origin))
        if origin == .changedUpstream, handOverCurrent.remove(app.id) != nil {
            // The old leader's last refresh has landed (this host held the newest secret, so
            // the change is that refresh): nothing more can land, the hand-over is over.
            handOverUntil[app.id] = nil
        }
    }

    /// The level-triggered check: each output against what the held secret says it should be.
    private func inspectOutputs(_ app: AppConfig) async {
        guard let record = heldSecret(app) else {
            heldVersions[app.id] = nil
            return
        }
        let document = document(record, app)
        let writer = writer
        let outputs = app.outputs
        let drifted = await onFileIO(default: []) { () -> [(OutputSpec, OutputDrift)] in
            var drifted: [(OutputSpec, OutputDrift)] = []
            for output in outputs {
                switch Self.spec(output) {
                case .success(let spec):
                    if let drift = writer.inspect(document, at: spec) {
                        drifted.append((spec, drift))
                    }
                case .failure(let error):
                    drifted.append((output.outputSpec(template: nil), .invalidOutput(error)))
                }
            }
            return drifted
        }
        guard !drifted.isEmpty else {
            outputsCheckDue.remove(app.id)
            return
        }
        let log = appLogger(app)
        for (spec, drift) in drifted {
            log.warning(
                "output drifted (\(drift.cause))",
                metadata: ["target_path": "\(spec.path)", "cause": "\(drift.cause)", "event": "output_drift"])
        }
        let contentChanged = drifted.contains { $0.1.changesContent }
        await transition(
            app, .outputsDrifted(contentChanged: contentChanged, recordConfirmed: confirmedRecords[app.id] == record.fingerprint),
            repair: PendingRepair(record: record, document: document, drifted: drifted))
    }

    /// Rewrites drifted outputs from the held secret, without calling GenAuth (the transitions
    /// asked for it: nothing of the secret changes, or GenAuth confirmed the record).
    private func repairOutputs(_ app: AppConfig, _ repair: PendingRepair) async {
        let (record, document, drifted) = (repair.record, repair.document, repair.drifted)
        let writer = writer
        let repairs = drifted.map(\.0)
        let report = await onFileIO(default: Self.notRun(document, repairs)) { writer.write(document, to: repairs) }
        guard report.allWritten else {
            await transition(app, .outputsFailed(Self.failure(report, version: record.version)))
            return
        }
        outputsCheckDue.remove(app.id)
        let causes = drifted.map(\.1.cause)
        let contentChanged = drifted.contains { $0.1.changesContent }
        await transition(app, .driftRepaired(causes: causes, contentChanged: contentChanged))
    }

    private func runHook(_ app: AppConfig, version: Int) async {
        guard var argv = app.onRotate, let program = argv.first else { return }
        // Checked again now, as templates are: the program may have changed hands since the
        // config was loaded. The resolved path is what runs, so PATH cannot differ from the check.
        do {
            argv[0] = try ConfigFileReader.trustedProgram(program, searchPath: ProcessEnvironment.current["PATH"])
        } catch {
            appLogger(app).error(
                "hook not run: \(error.message)", metadata: ["event": "hook_untrusted", "version": "\(version)"])
            metrics.hookFinished(app, succeeded: false)
            await transition(app, .hookFinished(version: version, succeeded: false, detail: "not run: \(error.message)"))
            return
        }
        let invocation = HookInvocation(
            argv: argv,
            environment: HookInvocation.environment(
                appID: app.id, appName: app.name, version: version, outputs: app.outputs.map(\.path)),
            timeout: app.hookTimeout)
        inHook.insert(app.id)
        slotFreed()  // a max_concurrent slot is free while the hook runs
        let outcome = await hooks.run(invocation)
        inHook.remove(app.id)
        metrics.hookFinished(app, succeeded: outcome.succeeded)
        // A hook may print what it read (a config check echoing the file): never log the secret,
        // nor the piece of it a cut leaves (the runner keeps the output's last 64 KiB, the log
        // its last 2,000 characters: a secret across either edge showed its second half).
        let output = redacted(outcome.output, app: app, keepingLast: 2_000)
        // A failure's MESSAGE says why: the exit status and the first line the hook printed
        // (e.g. systemctl's "Interactive authentication required."), not only HOOK_OUTPUT.
        let detail = outcome.succeeded ? output : HookOutcome.failureDetail(status: outcome.status, output: output)
        if !outcome.succeeded && !output.isEmpty {
            appLogger(app).warning("hook output", metadata: ["hook_output": "\(output)", "version": "\(version)"])
        }
        await transition(app, .hookFinished(version: version, succeeded: outcome.succeeded, detail: detail))
    }

    /// Tells the app's consumer units of `version` over D-Bus, all at once, and feeds what
    /// systemd showed for each back as one event. `onlyUnsettled`: a retry tells only the units
    /// that have not settled on `version`; after a write or a repair every unit is told.
    private func notifyConsumers(_ app: AppConfig, version: Int, onlyUnsettled: Bool) async {
        let records = states[app.id]?.consumers ?? []
        let targets = app.consumers.filter { unit in
            !onlyUnsettled || !(records.first { $0.unit == unit }?.isSettled(at: version) ?? false)
        }
        // Like a hook, the wait for systemd holds no max_concurrent slot: a unit that takes its
        // whole start timeout must not hold back other apps' API work.
        inHook.insert(app.id)
        slotFreed()
        let notifiedAt = now()
        let units = units
        let action = app.consumerAction
        let timeout = app.hookTimeout
        let outcomes = await withTaskGroup(of: (Int, ConsumerOutcome).self) { group in
            for (index, unit) in targets.enumerated() {
                group.addTask {
                    let report = await units.notify(unit: unit, action: action, timeout: timeout)
                    return (index, ConsumerPickup.judge(report, action: action, unit: unit, notifiedAt: notifiedAt))
                }
            }
            var collected: [(Int, ConsumerOutcome)] = []
            for await outcome in group { collected.append(outcome) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
        inHook.remove(app.id)
        metrics.consumersNotified(app, outcomes, at: now())
        await transition(app, .consumersNotified(version: version, outcomes: outcomes))
    }

    // MARK: - Helpers

    /// Runs blocking file I/O on `fileIO`; `fallback` if the pool is shut down (process exit).
    private func onFileIO<T: Sendable>(default fallback: T, _ body: @escaping @Sendable () -> T) async -> T {
        (try? await fileIO.runIfActive(body)) ?? fallback
    }

    /// Writes every output of one app, each on its own I/O thread: no invariant orders the
    /// outputs of one secret among themselves, only all of them after the secret is durable
    /// in the state database (which the caller did) and before the state records them.
    private func writeOutputs(_ document: SecretDocument, _ outputs: [OutputConfig], app: AppConfig) async -> WriteReport {
        let writer = writer
        let fileIO = fileIO
        let results = await withTaskGroup(of: (Int, [WriteReport.Result]).self) { group in
            for (index, output) in outputs.enumerated() {
                group.addTask {
                    let results: [WriteReport.Result]? = try? await fileIO.runIfActive {
                        switch Self.spec(output) {
                        case .success(let spec): return writer.write(document, to: [spec]).results
                        case .failure(let error):
                            return [WriteReport.Result(spec: output.outputSpec(template: nil), outcome: .failed(error))]
                        }
                    }
                    return (index, results ?? Self.notRun(document, [output.outputSpec(template: nil)]).results)
                }
            }
            var collected: [(Int, [WriteReport.Result])] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        return WriteReport(appId: app.id, version: document.version, results: results)
    }

    /// A report of outputs not written because the I/O threads are gone (shutdown).
    private static func notRun(_ document: SecretDocument, _ specs: [OutputSpec]) -> WriteReport {
        WriteReport(
            appId: document.appId, version: document.version,
            results: specs.map {
                WriteReport.Result(
                    spec: $0, outcome: .failed(OutputError(.invalidSpec, path: $0.path, reason: "not written: shutting down")))
            })
    }

    /// The held secret, newest first: one the state directory could not keep, else the record.
    private func heldSecret(_ app: AppConfig) -> CurrentSecret? {
        if let unsaved = unsavedSecrets[app.id] { return unsaved }
        let found = stateDirectory.loadSecret(appID: app.id, now: now())
        if let corrupt = found.corrupt { reportCorrupt(corrupt, app: app) }
        return found.secret
    }

    private func redacted(_ text: String, app: AppConfig, keepingLast limit: Int) -> String {
        guard !text.isEmpty, let secret = heldSecret(app)?.secretValue.exposed, !secret.isEmpty else {
            return String(text.suffix(limit))
        }
        // Every piece of 8 characters or more, in any case: a hook may split or uppercase it.
        let whole = SecretRedaction.redacting(secret, in: Self.droppingSecretTail(text, of: secret))
        return Self.droppingSecretTail(String(whole.suffix(limit)), of: secret)
    }

    /// `text` without a leading piece (4 characters or more) that is the end of `secret`: what
    /// is left of a secret when a cut fell inside it.
    static func droppingSecretTail(_ text: String, of secret: String) -> String {
        let characters = Array(secret)
        guard characters.count > 4 else { return text }
        for length in stride(from: characters.count - 1, through: 4, by: -1) {
            let piece = String(characters[(characters.count - length)...])
            if text.hasPrefix(piece) { return "<redacted>" + text.dropFirst(piece.count) }
        }
        return text
    }

    private func document(_ record: CurrentSecret, _ app: AppConfig) -> SecretDocument {
        SecretDocument(
            secret: record.secretValue, appId: app.id, appName: app.name, version: record.version, rotatedAt: record.obtainedAt)
    }

    /// The writer's view of `output`, its template read now (an edited template is used
    /// without a restart) under the same trust rule as at load: not a link, owned by root or
    /// us, writable by nobody else.
    static func spec(_ output: OutputConfig) -> Result<OutputSpec, OutputError> {
        guard output.format == .template, let path = output.templatePath else { return .success(output.outputSpec(template: nil)) }
        do {
            let text = try ConfigFileReader.readTrusted(path, what: "template", followSymlinks: false).text
            return .success(output.outputSpec(template: text))
        } catch {
            return .failure(OutputError(.invalidSpec, path: output.path, reason: "template: \(error.message)"))
        }
    }

    /// Pre-flight before a refresh: for every output, its owner and group still resolve to
    /// the ids the config was loaded with, its template is trusted and renders, and its
    /// directory takes a temp file (`OutputWriter.preflight`). Nil when all pass.
    private func preflight(_ app: AppConfig) async -> AppTransitions.Failure? {
        let writer = writer
        let failure = AppTransitions.Failure(.local, "not rotating: the file I/O threads are shut down")
        return await onFileIO(default: failure) { Self.preflight(app, writer: writer) }
    }

    private static func preflight(_ app: AppConfig, writer: OutputWriter) -> AppTransitions.Failure? {
        for output in app.outputs {
            let problem: OutputError?
            if let accounts = Self.accountProblem(output) {
                problem = OutputError(.invalidSpec, path: output.path, reason: accounts)
            } else {
                switch Self.spec(output) {
                case .success(let spec): problem = writer.preflight(spec, appId: app.id, appName: app.name)
                case .failure(let error): problem = error
                }
            }
            guard let problem else { continue }
            var fields = ["event": "preflight_failed", "target_path": output.path, "error": problem.description]
            if let errno = problem.errno { fields["errno"] = OutputError.name(of: errno) }
            return AppTransitions.Failure(
                .local, "not rotating: \(problem) (found before the refresh: GenAuth kills the old secret when it answers)",
                fields: fields)
        }
        return nil
    }

    /// Owner and group names are resolved when the config loads; an account deleted or
    /// renumbered since then would leave files owned by a stale id.
    static func accountProblem(_ output: OutputConfig) -> String? {
        for (account, kind) in [(output.owner, AccountLookup.Kind.user), (output.group, .group)] {
            guard let account, account.name != String(account.id) else { continue }
            guard let now = try? AccountLookup.resolve(account.name, kind: kind) else {
                return "\(kind.rawValue) \"\(account.name)\" no longer resolves (it was id \(account.id) when the config was loaded)"
            }
            if now.id != account.id {
                return "\(kind.rawValue) \"\(account.name)\" is now id \(now.id), not \(account.id) as when the config was loaded; reload the config"
            }
        }
        return nil
    }

    /// One logger per app carrying its identity, instead of merging metadata by hand.
    private func appLogger(_ app: AppConfig) -> Logger {
        var log = logger
        log[metadataKey: "app_id"] = "\(app.id)"
        log[metadataKey: "app_name"] = "\(app.name)"
        return log
    }

    private func log(_ report: AppTransitions.Report, _ app: AppConfig) {
        let log = appLogger(app)
        switch report {
        case .refreshOutcomeUnknown(let failure, let at):
            log.warning(
                "refresh outcome unknown; GenAuth may still apply it, so its current secret is read at \(at.formatted(.iso8601)), not before",
                metadata: Self.metadata(failure.fields).merging(["event": "outcome_unknown"]) { $1 })
        case .oldSecretStillCurrent(let at):
            log.notice(
                "GenAuth still holds the old secret; reading once more at \(at.formatted(.iso8601)) before deciding",
                metadata: ["event": "reconciled"])
        case .refreshNotSent(let failure):
            log.warning("\(failure.message); the host that leads rotates it", metadata: Self.metadata(failure.fields))
        case .refreshNotApplied:
            log.notice("reconciled: the refresh did not take effect; it will be retried", metadata: ["event": "reconciled"])
        case .forbiddenRead(let failure):
            log.error(
                "cannot read the current secret (forbidden); falling back to a fresh refresh",
                metadata: Self.metadata(failure.fields))
        case .secretWritten(let version, let origin):
            var metadata: Logger.Metadata = ["version": "\(version)", "event": "rotated"]
            if let window = exposure.removeValue(forKey: app.id) {
                // Milliseconds with microsecond resolution: what consumers waited for the new secret.
                let micros = window.components.seconds * 1_000_000 + window.components.attoseconds / 1_000_000_000_000
                metadata["exposure_ms"] = "\(Double(micros) / 1000)"
            }
            log.notice("secret \(origin.rawValue) and written to \(Self.count(app.outputs.count, "output"))", metadata: metadata)
            // A refresh of ours (answered, or reconciled after an unknown outcome) is a rotation;
            // a fetched or adopted secret is not.
            if origin == .rotated || origin == .reconciled { metrics.rotationFinished(app, succeeded: true) }
        case .changedUpstream(let purpose) where effective(app).action == .follow:
            // Following is exactly this: another host rotates, this one picks the secret up.
            log.notice(
                "GenAuth holds a new secret (rotated by the host that rotates this app; found by \(purpose.rawValue)); adopting it",
                metadata: ["event": "followed"])
        case .changedUpstream(let purpose):
            log.critical(
                "GenAuth holds a secret we did not write (changed upstream, found by \(purpose.rawValue)); adopting it",
                metadata: ["event": "changed_upstream"])
        case .confirmed(let purpose):
            log.debug("GenAuth confirms the secret on disk", metadata: ["purpose": "\(purpose.rawValue)"])
        case .repairAwaitsConfirmation:
            log.notice(
                "outputs differ from the held secret, which GenAuth has not confirmed since start-up (a restored or older record may hold a secret GenAuth killed); reading GenAuth's current secret first, the outputs keep what they hold until it answers",
                metadata: ["event": "repair_awaits_confirmation"])
        case .heldWriteAwaitsConfirmation:
            log.notice(
                "a held secret newer than the outputs is not confirmed by GenAuth since start-up and is not the answer to a refresh in flight (a restored or older record may hold a secret GenAuth killed); reading GenAuth's current secret first, the outputs keep what they hold until it answers",
                metadata: ["event": "held_write_awaits_confirmation"])
        case .heldSecretSuperseded:
            log.warning(
                "GenAuth no longer holds the held secret, so it was not written; GenAuth's current secret is adopted instead",
                metadata: ["event": "held_secret_superseded"])
        case .retryPulledForward(let at):
            log.debug(
                "GenAuth answers again: the retry after a transient failure moved to \(at.formatted(.iso8601))",
                metadata: ["event": "retry_pulled_forward"])
        case .repaired(let causes):
            metrics.outputsRepaired(app, causes: causes)
            log.notice(
                "outputs repaired (\(causes.joined(separator: ", "))) from the held secret",
                metadata: ["event": "output_repaired", "cause": "\(causes.joined(separator: ","))"])
        case .consumersSettled(let version, let outcomes):
            for outcome in outcomes {
                let metadata: Logger.Metadata = [
                    "event": "\(outcome.state == .notRunning ? JournalEvent.consumerNotRunning.rawValue : JournalEvent.consumerConfirmed.rawValue)",
                    "unit": "\(outcome.unit)", "version": "\(version)", "detail": "\(outcome.detail ?? "")",
                ]
                switch outcome.state {
                case .notRunning:
                    log.notice("consumer \(outcome.unit) was not running; it reads version \(version) when it starts", metadata: metadata)
                default:
                    log.info("consumer \(outcome.unit) is on version \(version) (\(outcome.detail ?? outcome.state.rawValue))", metadata: metadata)
                }
            }
        case .hookDone(let version, let output):
            var metadata: Logger.Metadata = ["version": "\(version)"]
            if !output.isEmpty { metadata["hook_output"] = "\(output)" }
            log.info("hook done", metadata: metadata)
        case .failed(let failure, let attempt, let delay, let permanent):
            metrics.rotationFinished(app, succeeded: false)
            var metadata = Self.metadata(failure.fields)
            metadata["event"] = metadata["event"] ?? "rotation_failed"
            metadata["attempt"] = "\(attempt)"
            let next = now().addingTimeInterval(RotationPlanner.seconds(delay))
            metadata["next_attempt_usec"] = "\(Int64(next.timeIntervalSince1970 * 1_000_000))"
            if permanent {
                log.critical(
                    "\(failure.message); not retrying until \(DurationSyntax.format(delay)) from now", metadata: metadata)
            } else {
                log.error("\(failure.message); retrying in \(DurationSyntax.format(delay))", metadata: metadata)
            }
        }
    }

    /// "1 output", "2 outputs": counts agree with their number in every message.
    static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    private static func metadata(_ fields: [String: String]) -> Logger.Metadata {
        fields.mapValues { .string($0) }
    }

    static func failure(_ error: GenAuthError) -> AppTransitions.Failure {
        var fields: [String: String] = ["error": error.description, "classification": error.classification.rawValue]
        if let status = error.httpStatus { fields["http_status"] = "\(status)" }
        if let status = error.apiStatusCode { fields["api_status_code"] = "\(status)" }
        if let code = error.apiCode { fields["api_code"] = "\(code)" }
        if let requestId = error.requestId { fields["request_id"] = requestId }
        let kind: AppTransitions.Failure.Kind
        switch error.classification {
        case .outcomeUnknown: kind = .outcomeUnknown
        case .transient: kind = .transient
        case .permanent, .authentication:
            kind = error.httpStatus == 403 || error.apiStatusCode == 403 ? .forbidden : .permanent
        }
        return AppTransitions.Failure(kind, error.description, retryAfter: error.retryAfter, fields: fields)
    }

    static func failure(_ report: WriteReport, version: Int) -> AppTransitions.Failure {
        let first = report.failed.first
        var fields: [String: String] = ["event": "output_write_failed", "version": "\(version)"]
        if let first {
            fields["target_path"] = first.path
            fields["error"] = first.error.map { "\($0)" } ?? ""
            if let errno = first.error?.errno { fields["errno"] = OutputError.name(of: errno) }
        }
        let detail = first.map { "\($0.error.map { "\($0)" } ?? $0.path)" } ?? "unknown"
        return AppTransitions.Failure(.local, "\(Self.count(report.failed.count, "output")) not written: \(detail)", fields: fields)
    }

    static func fields(of error: StateDirectoryError) -> [String: String] {
        var fields = ["event": "state_write_failed", "target_path": error.path, "error": error.description]
        if let name = error.errnoName { fields["errno"] = name }
        return fields
    }
}
