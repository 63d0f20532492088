#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HeapModule

/// The scheduler: which idle app's step starts next (a heap by due date over the cached
/// plans), within `max_concurrent` slots, and when to look again. Every per-app operation is
/// O(log N).
extension RotationEngine {
    struct DueEntry: Comparable {
        let due: Date
        let index: Int
        let appID: String
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.due, lhs.index) < (rhs.due, rhs.index) }
    }

    /// The time between two GenAuth calls the budget allows now (`requests_per_second`).
    var requestSpacing: Duration { limiter.spacing }

    /// Entries in the due-date heap, live and stale (tests check it stays bounded).
    var dueOrderCount: Int { dueOrder.count }

    /// Forgets the app's planned due date; it is planned again at the next scan.
    func invalidate(_ appID: String) {
        dueCache[appID] = nil
        if running[appID] == nil && appIndex[appID] != nil { unplanned.insert(appID) }
    }

    /// The step to run for `app` now (`AppDecisions.plan`).
    func plan(for app: AppConfig) -> AppDecisions.Plan {
        AppDecisions.plan(app: app, state: currentState(app.id), runtime: runtime(app.id), fleet: fleet, policy: policy, now: now())
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

    var busySlots: Int { running.count - inHook.count }

    /// Starts the idle apps whose step is due now and that `allowed` admits, within
    /// `max_concurrent`; returns them.
    @discardableResult
    func startDueSteps(where allowed: (AppConfig) -> Bool) -> [AppConfig] {
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
            running[app.id] = .now
            unplanned.remove(app.id)
            dueCache[app.id] = nil
            stepTasks[app.id] = Task { await self.runStep(appID: app.id) }
            started.append(app)
        }
        for entry in heldBack { dueOrder.insert(entry) }
        return started
    }

    /// Plans every idle app whose due date is not known, in config order.
    func planUnplanned() {
        guard !unplanned.isEmpty else { return }
        let ids = unplanned.compactMap { id in appIndex[id].map { ($0, id) } }.sorted { $0.0 < $1.0 }
        unplanned = []
        for (index, id) in ids where running[id] == nil {
            _ = dueDate(config.apps[index])
        }
    }

    /// When the app's planned step falls due (`.distantPast`: at once), from the cache when known.
    func dueDate(_ app: AppConfig) -> Date {
        if let cached = dueCache[app.id] { return cached }
        let step = plan(for: app).step
        if case .waitForWindow(let until) = step, windowWaitLogged[app.id] != until {
            windowWaitLogged[app.id] = until
            logWindowWait(app, until: until)
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

    /// A step finished: its app is idle again and planned anew; whoever waits for a slot wakes.
    func finished(_ appID: String) {
        running[appID] = nil
        stepTasks[appID] = nil
        invalidate(appID)
        slotFreed()
    }

    /// Wakes whoever waits to start more work: `runDue`, and the daemon's scheduler loop.
    func slotFreed() {
        let waiters = finishWaiters
        finishWaiters = []
        for waiter in waiters { waiter.resume() }
        workFinished()
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
            let failuresBefore = currentState(appID).consecutiveFailures
            running[appID] = .now
            await runStep(appID: appID)
            if currentState(appID).consecutiveFailures > failuresBefore { return false }
        }
        return isHealthy(appID)
    }

    /// Whether the app is settled (`AppHealth.isSettled`): no failure, nothing owed.
    public func isHealthy(_ appID: String) -> Bool {
        guard let state = states[appID] else { return false }
        return AppHealth.isSettled(state, heldVersion: runtime(appID).heldVersion)
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
    func nextWake(skippingDue held: Set<String>) -> Date? {
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
                let state = currentState(app.id)
                let held = runtime(app.id).heldVersion
                return StatusReport.App(
                    app: app, state: state, pendingVersion: held.flatMap { $0 > state.version ? $0 : nil },
                    nextDue: plan(for: app).step.due(now: now()), hasSecret: held != nil,
                    waitingForWindow: RotationPlanner.isHeldByWindow(app: effective(app), state: state, now: now()))
            })
    }
}
