#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// Carries out `RotationPlanner` steps for every app: calls GenAuth, journals each step before
/// the next, writes outputs and runs hooks (DESIGN §2). One step per app at a time, at most
/// `max_concurrent` apps at once, API calls paced by `requests_per_second`.
///
/// The order inside a rotation is the durability argument: intent recorded → refresh →
/// pending secret saved (0600, fsynced) → outputs written → state saved → pending removed →
/// hook → hook recorded. A crash anywhere resumes from the journal without a second refresh.
public actor RotationEngine {
    public private(set) var config: RotatorConfig
    private let api: any SecretAPI
    private let store: StateStore
    private let writer: OutputWriter
    private let hooks: any HookRunning
    private let now: @Sendable () -> Date
    private let limiter: RequestRateLimiter
    private var random: any RandomNumberGenerator & Sendable
    private let logger: Logger

    private var states: [String: AppState] = [:]
    private var pendingVersions: [String: Int] = [:]
    private var busy: Set<String> = []
    /// Apps an operator asked to rotate or fetch now (`rotate`/`fetch` commands).
    private var requested: [String: RotationPlanner.Step] = [:]

    public init(
        config: RotatorConfig, api: any SecretAPI, store: StateStore, writer: OutputWriter = OutputWriter(),
        hooks: any HookRunning = HookRunner(), now: @escaping @Sendable () -> Date = { Date() },
        random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
        logger: Logger = Logger(label: "secret-rotator.engine")
    ) {
        self.config = config
        self.api = api
        self.store = store
        self.writer = writer
        self.hooks = hooks
        self.now = now
        self.random = random
        self.logger = logger
        self.limiter = RequestRateLimiter(requestsPerSecond: config.genauth.requestsPerSecond)
    }

    /// Loads every app's journal. Corrupt records are moved aside and reported, never dropped silently.
    public func start() throws(OutputError) {
        try store.prepare()
        for app in config.apps {
            load(app)
        }
    }

    /// Applies a reloaded config: added apps start from their journal (or fresh), removed apps
    /// are simply no longer scheduled (their journal stays for a later re-add).
    public func apply(_ newConfig: RotatorConfig) {
        config = newConfig
        for app in newConfig.apps where states[app.id] == nil {
            load(app)
        }
        let ids = Set(newConfig.apps.map(\.id))
        states = states.filter { ids.contains($0.key) }
        requested = requested.filter { ids.contains($0.key) }
    }

    /// Asks for a rotation (or a fetch) of an app at the next `runDue`.
    public func request(_ step: RotationPlanner.Step, forApp nameOrID: String) -> Bool {
        guard let app = config.app(named: nameOrID) else { return false }
        requested[app.id] = step
        return true
    }

    public func state(of appID: String) -> AppState? { states[appID] }

    /// Runs one step for every app that has something to do now, `max_concurrent` at a time,
    /// and returns when the earliest remaining app falls due (nil: no apps).
    @discardableResult
    public func runDue() async -> Date? {
        let due = config.apps.filter { app in
            guard !busy.contains(app.id) else { return false }
            if case .wait = plannedStep(for: app) { return false }
            return true
        }
        var queue = due[...]
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            while let app = queue.popFirst() {
                if running >= config.defaults.maxConcurrent {
                    await group.next()
                    running -= 1
                }
                busy.insert(app.id)
                running += 1
                group.addTask { await self.work(on: app) }
            }
        }
        return nextWake()
    }

    /// Runs steps for one app until it has nothing left to do now (used by `run --once`,
    /// `rotate` and `fetch`). Returns whether the app ended without a failure.
    public func settle(appID: String, maxSteps: Int = 8) async -> Bool {
        for _ in 0..<maxSteps {
            guard let app = config.apps.first(where: { $0.id == appID }) else { return false }
            if case .wait = plannedStep(for: app) { break }
            busy.insert(app.id)
            await work(on: app)
            if (states[appID]?.consecutiveFailures ?? 0) > 0 { return false }
        }
        return (states[appID]?.consecutiveFailures ?? 0) == 0
    }

    public func nextWake() -> Date? {
        config.apps.map(nextDue(for:)).min()
    }

    public func status() -> StatusReport {
        StatusReport(
            apps: config.apps.map { app in
                StatusReport.App(
                    app: app, state: states[app.id] ?? AppState(appID: app.id), pendingVersion: pendingVersions[app.id],
                    nextDue: nextDue(for: app))
            })
    }

    // MARK: - Steps

    private func plannedStep(for app: AppConfig) -> RotationPlanner.Step {
        plan(for: app).step
    }

    /// The step to run, and whether it is an operator's request: a request never overtakes
    /// crash recovery (or a first fetch), only the schedule.
    private func plan(for app: AppConfig) -> (step: RotationPlanner.Step, isRequest: Bool) {
        let state = states[app.id] ?? AppState(appID: app.id)
        let planned = RotationPlanner.nextStep(app: app, state: state, pendingVersion: pendingVersions[app.id], now: now())
        if let asked = requested[app.id], case .wait = planned {
            return (asked, true)
        }
        return (planned, false)
    }

    /// When the app next has something to do: now, unless its step is to wait.
    private func nextDue(for app: AppConfig) -> Date {
        plannedStep(for: app).due(now: now())
    }

    private func load(_ app: AppConfig) {
        let loaded = store.loadState(appID: app.id, now: now())
        if let corrupt = loaded.corrupt {
            logger.error(
                "state record was corrupt; moved aside and starting this app from scratch",
                metadata: appMetadata(app).merging(["target_path": "\(corrupt.movedTo)", "reason": "\(corrupt.reason)"]) { $1 })
        }
        states[app.id] = loaded.state ?? AppState(appID: app.id)
        let pending = store.loadPending(appID: app.id, now: now())
        if let corrupt = pending.corrupt {
            logger.critical(
                "pending secret record was corrupt; moved aside, the next step reconciles with GenAuth",
                metadata: appMetadata(app).merging(["target_path": "\(corrupt.movedTo)"]) { $1 })
            states[app.id]?.intent = .refresh
        }
        pendingVersions[app.id] = pending.pending?.version
    }

    private func work(on app: AppConfig) async {
        defer { busy.remove(app.id) }
        let (step, isRequest) = plan(for: app)
        if case .wait = step { return }
        // A request is used up only when it is what runs.
        if isRequest { requested[app.id] = nil }
        switch step {
        case .finishPending:
            await finishPending(app)
        case .reconcile:
            await reconcile(app)
        case .runHook(let version):
            await runHook(app, version: version)
        case .fetch:
            await fetch(app)
        case .refresh:
            await refresh(app)
        case .wait:
            return
        }
    }

    private func refresh(_ app: AppConfig) async {
        var state = states[app.id] ?? AppState(appID: app.id)
        state.intent = .refresh
        state.intentStartedAt = now()
        guard save(state, app) else { return }
        await limiter.acquire()
        do {
            let secret = try await api.refreshApplicationSecret(appId: app.id)
            logger.info("GenAuth rotated the secret", metadata: appMetadata(app))
            await accept(secret, for: app, reason: "rotated")
        } catch {
            switch error.classification {
            case .outcomeUnknown:
                logger.warning(
                    "refresh outcome unknown; reading the current secret instead of refreshing again",
                    metadata: errorMetadata(app, error))
                await reconcile(app)
            case .transient, .permanent, .authentication:
                var failed = states[app.id] ?? state
                failed.intent = nil
                failed.intentStartedAt = nil
                recordFailure(&failed, app, error: error)
            }
        }
    }

    /// The refresh may or may not have happened: GenAuth's current secret decides.
    private func reconcile(_ app: AppConfig) async {
        await limiter.acquire()
        do {
            let current = try await api.getApplicationSecret(appId: app.id)
            let state = states[app.id] ?? AppState(appID: app.id)
            if SecretFingerprint.of(current) != state.secretFingerprint {
                logger.notice(
                    "reconciled: the refresh had happened; writing the new secret",
                    metadata: appMetadata(app).merging(["event": "reconciled"]) { $1 })
                await accept(current, for: app, reason: "reconciled")
            } else {
                var unchanged = state
                unchanged.intent = nil
                unchanged.intentStartedAt = nil
                logger.notice(
                    "reconciled: the refresh did not happen; it will be retried",
                    metadata: appMetadata(app).merging(["event": "reconciled"]) { $1 })
                recordFailure(&unchanged, app, message: "refresh did not take effect")
            }
        } catch {
            var state = states[app.id] ?? AppState(appID: app.id)
            if error.classification == .permanent && (error.httpStatus == 403 || error.apiStatusCode == 403) {
                // Without read access the truth cannot be known; a fresh refresh at least ends
                // with a secret we hold. Said loudly, because it may rotate twice.
                logger.error(
                    "cannot read the current secret (forbidden); falling back to a fresh refresh",
                    metadata: errorMetadata(app, error))
                state.intent = nil
                _ = save(state, app)
                await refresh(app)
                return
            }
            recordFailure(&state, app, error: error)
        }
    }

    private func fetch(_ app: AppConfig) async {
        await limiter.acquire()
        do {
            let current = try await api.getApplicationSecret(appId: app.id)
            var state = states[app.id] ?? AppState(appID: app.id)
            if state.version > 0 && SecretFingerprint.of(current) == state.secretFingerprint {
                state.lastSuccess = now()
                state.consecutiveFailures = 0
                state.nextAttempt = nil
                state.lastError = nil
                _ = save(state, app)
                logger.debug("secret unchanged", metadata: appMetadata(app))
                return
            }
            await accept(current, for: app, reason: state.version == 0 ? "fetched" : "changed upstream")
        } catch {
            var state = states[app.id] ?? AppState(appID: app.id)
            recordFailure(&state, app, error: error)
        }
    }

    /// A secret we now hold: journal it as pending before anything else, then finish.
    private func accept(_ secret: SecretValue, for app: AppConfig, reason: String) async {
        let state = states[app.id] ?? AppState(appID: app.id)
        let pending = PendingSecret(appID: app.id, version: state.version + 1, obtainedAt: now(), secret: secret)
        do {
            try store.savePending(pending)
            pendingVersions[app.id] = pending.version
        } catch {
            // The secret exists only in memory now; still write the outputs, or the service
            // would be left with a dead secret.
            logger.critical(
                "cannot journal the new secret; writing outputs anyway",
                metadata: appMetadata(app).merging(["error": "\(error)"]) { $1 })
        }
        await finish(pending, app: app, reason: reason)
    }

    private func finishPending(_ app: AppConfig) async {
        let loaded = store.loadPending(appID: app.id, now: now())
        guard let pending = loaded.pending else {
            pendingVersions[app.id] = nil
            var state = states[app.id] ?? AppState(appID: app.id)
            state.intent = .refresh
            _ = save(state, app)
            return
        }
        await finish(pending, app: app, reason: "resumed")
    }

    private func finish(_ pending: PendingSecret, app: AppConfig, reason: String) async {
        var state = states[app.id] ?? AppState(appID: app.id)
        let document = SecretDocument(
            secret: pending.secretValue, appId: app.id, appName: app.name, version: pending.version,
            rotatedAt: pending.obtainedAt)
        var specs: [OutputSpec] = []
        for output in app.outputs {
            specs.append(output.outputSpec(template: loadTemplate(output)))
        }
        let report = writer.write(document, to: specs)
        for failure in report.failed {
            logger.error(
                "output write failed; it will be retried from the journal without rotating again",
                metadata: appMetadata(app).merging([
                    "target_path": "\(failure.path)", "error": "\(failure.error.map { "\($0)" } ?? "")",
                    "errno": "\(failure.error?.errno.map { OutputError.name(of: $0) } ?? "")",
                    "event": "output_write_failed", "version": "\(pending.version)",
                ]) { $1 })
        }
        guard report.allWritten else {
            recordFailure(&state, app, message: "\(report.failed.count) output(s) not written")
            return
        }
        state.version = pending.version
        state.lastSuccess = pending.obtainedAt
        state.secretFingerprint = SecretFingerprint.of(pending.secretValue)
        state.intent = nil
        state.intentStartedAt = nil
        state.consecutiveFailures = 0
        state.nextAttempt = nil
        state.lastError = nil
        if app.onRotate == nil { state.hookDoneVersion = pending.version }
        guard save(state, app) else { return }
        do {
            try store.removePending(appID: app.id)
            pendingVersions[app.id] = nil
        } catch {
            logger.error("cannot remove the pending record", metadata: appMetadata(app).merging(["error": "\(error)"]) { $1 })
        }
        logger.notice(
            "secret \(reason) and written to \(specs.count) output(s)",
            metadata: appMetadata(app).merging(["version": "\(pending.version)", "event": "rotated"]) { $1 })
        if app.onRotate != nil {
            await runHook(app, version: pending.version)
        }
    }

    private func runHook(_ app: AppConfig, version: Int) async {
        guard let argv = app.onRotate else { return }
        let invocation = HookInvocation(
            argv: argv,
            environment: HookInvocation.environment(
                appID: app.id, appName: app.name, version: version, outputs: app.outputs.map(\.path)),
            timeout: app.hookTimeout)
        let outcome = await hooks.run(invocation)
        var state = states[app.id] ?? AppState(appID: app.id)
        if outcome.succeeded {
            state.hookDoneVersion = max(state.hookDoneVersion, version)
            state.consecutiveFailures = 0
            state.nextAttempt = nil
            state.lastError = nil
            _ = save(state, app)
            var metadata = appMetadata(app).merging(["version": "\(version)"]) { $1 }
            if !outcome.output.isEmpty { metadata["hook_output"] = "\(outcome.output.suffix(2_000))" }
            logger.info("hook done", metadata: metadata)
        } else {
            recordFailure(
                &state, app, message: "hook failed (\(outcome.status)); it will be retried without rotating again",
                extra: [
                    "event": "hook_failed", "version": "\(version)", "hook_output": "\(outcome.output.suffix(2_000))",
                ])
        }
    }

    // MARK: - Helpers

    private func loadTemplate(_ output: OutputConfig) -> String? {
        guard output.format == .template, let path = output.templatePath else { return nil }
        return try? ConfigFileReader.read(path).text
    }

    private func recordFailure(_ state: inout AppState, _ app: AppConfig, error: GenAuthError) {
        let backoff = RetryBackoff(policy: config.defaults.retry)
        state.consecutiveFailures += 1
        let delay: Duration
        switch error.classification {
        case .permanent, .authentication:
            delay = backoff.permanentFailureDelay
        case .transient, .outcomeUnknown:
            delay = backoff.delay(afterFailures: state.consecutiveFailures, retryAfter: error.retryAfter, using: &random)
        }
        state.nextAttempt = now().addingTimeInterval(RotationPlanner.seconds(delay))
        let metadata = errorMetadata(app, error).merging(failureMetadata(state)) { $1 }
        if error.classification == .permanent || error.classification == .authentication {
            logger.critical(
                "GenAuth refused the request; not retrying until \(DurationSyntax.format(delay)) from now", metadata: metadata)
        } else {
            logger.warning("GenAuth call failed; retrying in \(DurationSyntax.format(delay))", metadata: metadata)
        }
        state.lastError = error.description
        _ = save(state, app)
    }

    private func recordFailure(_ state: inout AppState, _ app: AppConfig, message: String, extra: Logger.Metadata = [:]) {
        let backoff = RetryBackoff(policy: config.defaults.retry)
        state.consecutiveFailures += 1
        let delay = backoff.delay(afterFailures: state.consecutiveFailures, using: &random)
        state.nextAttempt = now().addingTimeInterval(RotationPlanner.seconds(delay))
        state.lastError = message
        logger.error(
            "\(message); retrying in \(DurationSyntax.format(delay))",
            metadata: appMetadata(app).merging(failureMetadata(state)) { $1 }.merging(extra) { $1 })
        _ = save(state, app)
    }

    @discardableResult
    private func save(_ state: AppState, _ app: AppConfig) -> Bool {
        states[app.id] = state
        do {
            try store.saveState(state)
            return true
        } catch {
            logger.error("cannot save the state journal", metadata: appMetadata(app).merging(["error": "\(error)"]) { $1 })
            return false
        }
    }

    private func failureMetadata(_ state: AppState) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["event": "rotation_failed", "attempt": "\(state.consecutiveFailures)"]
        if let next = state.nextAttempt {
            metadata["next_attempt_usec"] = "\(Int64(next.timeIntervalSince1970 * 1_000_000))"
        }
        return metadata
    }

    private func appMetadata(_ app: AppConfig) -> Logger.Metadata {
        ["app_id": "\(app.id)", "app_name": "\(app.name)"]
    }

    private func errorMetadata(_ app: AppConfig, _ error: GenAuthError) -> Logger.Metadata {
        var metadata = appMetadata(app)
        metadata["error"] = "\(error)"
        metadata["classification"] = "\(error.classification.rawValue)"
        if let status = error.httpStatus { metadata["http_status"] = "\(status)" }
        if let status = error.apiStatusCode { metadata["api_status_code"] = "\(status)" }
        if let code = error.apiCode { metadata["api_code"] = "\(code)" }
        if let requestId = error.requestId { metadata["request_id"] = "\(requestId)" }
        return metadata
    }
}
