#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The executor, in the shape of async-http-client's `HTTP1ClientChannelHandler.run(_:)`: a
/// step's first event goes to `AppTransitions`, whose new state is committed (durable first)
/// and adopted; each action it returns is performed through a seam, and the action's result
/// comes back as the next event, in a loop. Nothing performed re-enters the transitions
/// itself, so the checks between two events (an app removed by a reload, the commit) are made
/// in one place for every path.
extension RotationEngine {
    /// An event for the app's transitions, with what the actions it causes work on: the secret
    /// GenAuth answered (`adoptSecret`, `keepConfirmedSecret`) and the drift an inspection
    /// found (`repairOutputs`).
    struct StepEvent {
        var event: AppTransitions.Event
        var secret: SecretValue? = nil
        var repair: PendingRepair? = nil

        init(_ event: AppTransitions.Event, secret: SecretValue? = nil, repair: PendingRepair? = nil) {
            self.event = event
            self.secret = secret
            self.repair = repair
        }
    }

    /// Drift an inspection found, kept for the `repairOutputs` action that rewrites it.
    struct PendingRepair {
        var record: CurrentSecret
        var document: SecretDocument
        var drifted: [(OutputSpec, OutputDrift)]
    }

    /// Runs the app's planned step (the app holds its one-step turn in `running`): performs the
    /// step's I/O, then the transitions it leads to. Uses up a request and a backoff override,
    /// and keeps a request that failed before it was answered (`AppDecisions.stepFinished`).
    func runStep(appID: String) async {
        defer { finished(appID) }
        guard let app = app(withID: appID) else { return }
        let plan = plan(for: app)
        if plan.step.waitingUntil != nil { return }
        updateRuntime(app.id) { AppDecisions.stepStarting(plan, runtime: &$0) }
        let before = currentState(app.id)
        let startedAt = now()
        if let first = await firstEvent(of: plan.step, app) {
            await run(app, first)
        }
        // Other apps' recovery waits until this step's answer is durable and on its outputs:
        // its commit of every app in a transient backoff must not sit between GenAuth killing
        // the old secret and the new one being kept.
        await recoverIfGenAuthAnswered()
        // A removed app's step decides nothing more about it (a re-add starts from its records).
        guard states[app.id] != nil else { return }
        let after = currentState(app.id)
        updateRuntime(app.id) { AppDecisions.stepFinished(plan, startedAt: startedAt, before: before, after: after, runtime: &$0) }
    }

    /// What a step does before its first event: the GenAuth call, the inspection, the hook.
    /// Nil when it ends without one (nothing drifted, no hook to run, the held secret is gone).
    private func firstEvent(of step: RotationPlanner.Step, _ app: AppConfig) async -> StepEvent? {
        switch step {
        case .refresh: StepEvent(.refreshStarting)
        case .reconcile: await read(app, purpose: .reconcile)
        case .verify: await read(app, purpose: .verify)
        case .fetch: await read(app, purpose: .fetch)
        case .writeOutputs(let version): heldSecretDue(app, version: version)
        case .runHook(let version): await runHook(app, version: version)
        case .notifyConsumers(let version): await notifyConsumers(app, version: version, onlyUnsettled: true)
        case .inspectOutputs: await inspectOutputs(app)
        case .wait, .waitForWindow: nil
        }
    }

    /// Feeds `first` to the app's transitions and performs what follows, depth first (the
    /// events an action leads to are handled before the next action of the same transition),
    /// iteratively. Stops when the app is no longer configured: a reload removed it while an
    /// action was in flight, and what it did is not brought back into the engine.
    func run(_ app: AppConfig, _ first: StepEvent) async {
        struct Pending {
            var actions: ArraySlice<AppTransitions.Action>
            var secret: SecretValue?
            var repair: PendingRepair?
        }
        var stack: [Pending] = []
        var next: StepEvent? = first
        while true {
            if let event = next {
                next = nil
                // Removed by a reload while an action was in flight: its outcome is neither
                // adopted nor committed (the record the transition would start from is gone, and
                // a fresh one must never overwrite the app's records); a re-add resumes from them.
                guard states[app.id] != nil else { return }
                let actions = await commit(event.event, app)
                stack.append(Pending(actions: actions[...], secret: event.secret, repair: event.repair))
            }
            guard var top = stack.popLast() else { return }
            guard let action = top.actions.popFirst() else { continue }
            stack.append(top)
            next = await perform(action, app, secret: top.secret, repair: top.repair)
        }
    }

    /// Applies one event: the new state is committed to the state directory, then adopted;
    /// returns its actions. A commit that fails is the event `journalFailed` instead (what is
    /// on disk stays the truth; the step backs off, kept in memory). Nothing is adopted for an
    /// app a reload removed while the commit was in flight.
    private func commit(_ event: AppTransitions.Event, _ app: AppConfig) async -> [AppTransitions.Action] {
        let old = currentState(app.id)
        let context = AppTransitions.Context(
            now: now(), policy: policy, hasHook: app.onRotate != nil, hasConsumers: !app.consumers.isEmpty, draw: random.next(),
            fleet: fleet.role(of: app))
        var result = AppTransitions.apply(event, to: old, context: context)
        if result.state != old {
            do {
                try await stateDirectory.commit(StateChanges(states: [result.state]))
            } catch {
                result = AppTransitions.apply(.journalFailed(AppTransitions.Failure(journal: error)), to: old, context: context)
            }
        }
        guard states[app.id] != nil else { return [] }
        setState(result.state, of: app.id)
        if result.state != old { metrics.appStateChanged(app, state: result.state) }
        return result.actions
    }

    /// Performs one action; returns the event its outcome is, if any.
    private func perform(
        _ action: AppTransitions.Action, _ app: AppConfig, secret: SecretValue?, repair: PendingRepair?
    ) async -> StepEvent? {
        switch action {
        case .sendRefresh:
            return await sendRefresh(app)
        case .adoptSecret(let version, let origin):
            guard let secret else { return nil }
            return await adopt(secret, version: version, origin: origin, app: app)
        case .keepConfirmedSecret:
            return await keepConfirmed(secret, app: app)
        case .runHook(let version):
            return await runHook(app, version: version)
        case .notifyConsumers(let version):
            return await notifyConsumers(app, version: version, onlyUnsettled: false)
        case .repairOutputs:
            guard let repair else { return nil }
            return await repairOutputs(app, repair)
        case .confirmRecord:
            return await read(app, purpose: .verify)
        case .writeHeldSecret:
            guard let held = heldSecret(app), held.version == runtime(app.id).heldVersion else { return nil }
            return await writeHeldRecord(held, app: app)
        case .confirmHeldSecret:
            guard let held = heldSecret(app) else { return nil }
            return await confirmHeld(held, app: app)
        case .announce(let version):
            fence?.announce(appID: app.id, version: version, rotatedAt: states[app.id]?.secretObtainedAt ?? now())
            return nil
        case .report(let report):
            log(report, app)
            return nil
        }
    }

    /// Adopts `state` as the app's state and keeps the set of apps in a transient backoff in
    /// step with it (O(1)).
    func setState(_ state: AppState, of appID: String) {
        states[appID] = state
        if state.consecutiveFailures > 0 && state.lastFailureKind == .transient {
            transientBackoff.insert(appID)
        } else {
            transientBackoff.remove(appID)
        }
        if state.consecutiveFailures == 0 { pulledForward.remove(appID) }
    }

    /// Feeds one event to the app's transitions and performs what follows (for events that
    /// come from outside a step, e.g. etcd accepting a notice).
    func transition(_ app: AppConfig, _ event: AppTransitions.Event) async {
        await run(app, StepEvent(event))
    }
}
