#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The engine's GenAuth calls, each paced by the request budget and turned into the event its
/// outcome is, and GenAuth's recovery after an outage.
extension RotationEngine {
    /// Every way to a refresh ends here (the schedule, an owed rotation, an operator's
    /// request, the fallback after a refused read), so the pre-flight is here too: everything
    /// that can be checked is checked before the one call that cannot be taken back, as
    /// GenAuth kills the old secret the moment it answers. A failed pre-flight is a refresh
    /// not sent: the intent is cleared and the step backs off.
    func sendRefresh(_ app: AppConfig) async -> StepEvent {
        CrashPoint.reached(.intentDurable)
        if let failure = await preflight(app) {
            return StepEvent(.refreshFailed(failure))
        }
        await limiter.acquire()
        if let fence, let failure = Self.notSent(await fence.authorizeRefresh(appID: app.id)) {
            // Fencing (Architecture, Fleet): nothing was sent, so the refresh simply did not happen.
            return StepEvent(.refreshFailed(failure))
        }
        do {
            let secret = try await api.refreshApplicationSecret(appId: app.id)
            answerArrived[app.id] = .now
            CrashPoint.reached(.refreshAnswered)
            genAuthAnswered()
            return StepEvent(.refreshAnswered(fingerprint: SecretFingerprint.of(secret)), secret: secret)
        } catch {
            return StepEvent(.refreshFailed(genAuthFailed(error)))
        }
    }

    func read(_ app: AppConfig, purpose: AppTransitions.ReadPurpose) async -> StepEvent {
        await limiter.acquire()
        do {
            let secret = try await api.getApplicationSecret(appId: app.id)
            genAuthAnswered()
            return StepEvent(.secretRead(fingerprint: SecretFingerprint.of(secret), purpose: purpose), secret: secret)
        } catch {
            return StepEvent(.readFailed(genAuthFailed(error), purpose: purpose))
        }
    }

    /// Reads GenAuth's current secret before a held secret that is not provably its newest
    /// replaces what the outputs hold: the held one is written only if GenAuth still holds it,
    /// otherwise GenAuth's secret is adopted. A failed read leaves the outputs as they are.
    func confirmHeld(_ held: CurrentSecret, app: AppConfig) async -> StepEvent {
        await limiter.acquire()
        do {
            let secret = try await api.getApplicationSecret(appId: app.id)
            let fingerprint = SecretFingerprint.of(secret)
            if fingerprint == held.fingerprint { updateRuntime(app.id) { $0.confirmedFingerprint = fingerprint } }
            genAuthAnswered()
            return StepEvent(.heldSecretRead(matchesHeld: fingerprint == held.fingerprint), secret: secret)
        } catch {
            return StepEvent(.readFailed(genAuthFailed(error), purpose: .verify))
        }
    }

    /// A GenAuth call failed: its failure, and a transient one (GenAuth unreachable, 5xx, 429,
    /// a lost answer) starts an outage, which the next answer ends.
    private func genAuthFailed(_ error: GenAuthError) -> AppTransitions.Failure {
        let failure = AppTransitions.Failure(genAuth: error)
        if failure.kind == .transient || failure.kind == .outcomeUnknown { genAuthFailing = true }
        return failure
    }

    /// GenAuth answered a call: the first answer after transient failures ends the outage,
    /// and a recovery is due once the answering step is done (`recoverIfGenAuthAnswered`).
    private func genAuthAnswered() {
        guard genAuthFailing else { return }
        genAuthFailing = false
        recoveryDue = true
    }

    /// After an outage ended: every app waiting on a transient backoff (and not yet cut short
    /// in its failure streak) gets a retry at its own slot of the request budget
    /// (`GenAuthRecovery.schedule`). Bounded work: only the apps in `transientBackoff` are
    /// visited, once per recovery.
    func recoverIfGenAuthAnswered() async {
        guard recoveryDue else { return }
        recoveryDue = false
        let start = now()
        let spacing = RotationPlanner.seconds(limiter.spacing)
        let waiting = transientBackoff.subtracting(pulledForward).compactMap { id -> GenAuthRecovery.Waiting? in
            guard running[id] == nil, let state = states[id] else { return nil }
            return GenAuthRecovery.Waiting(appID: id, retryDue: state.nextAttempt ?? .distantPast, index: appIndex[id] ?? 0)
        }
        let schedule = GenAuthRecovery.schedule(waiting, answeredAt: start, spacing: spacing) {
            Double(random.next() % 1_000) / 1_000
        }
        var changed: [(id: String, old: AppState, new: AppState)] = []
        for (id, retryAt) in schedule {
            guard let state = states[id] else { continue }
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
                metadata: Self.metadata(AppTransitions.Failure.fields(of: error)))
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
        logRecovery(apps: pulled, within: last.timeIntervalSince(start))
        workFinished()
    }
}
