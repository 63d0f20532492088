#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The engine's secrets and outputs: keeping a secret durably, writing it everywhere,
/// comparing outputs with it and repairing drift; each turned into the event its outcome is.
/// The file work itself runs on the I/O threads (`RotationEngine+FileIO`).
extension RotationEngine {
    /// A secret we now hold: kept durably as the current secret before any output changes,
    /// then written everywhere. If it cannot be kept, the outputs are still written (GenAuth
    /// may already have killed the old secret), and the step fails so that it is settled again.
    func adopt(_ secret: SecretValue, version: Int, origin: AppTransitions.SecretOrigin, app: AppConfig) async -> StepEvent {
        let now = now()
        let obtainedAt = updateRuntime(app.id) { runtime in
            AppDecisions.obtainedAt(origin: origin, now: now, interval: app.interval, runtime: &runtime)
        }
        let record = CurrentSecret(appID: app.id, version: version, obtainedAt: obtainedAt, secret: secret)
        var journalError: StateDirectoryError?
        updateRuntime(app.id) { runtime in
            runtime.heldVersion = version
            // GenAuth just answered this secret.
            runtime.confirmedFingerprint = record.fingerprint
        }
        do {
            try await stateDirectory.commit(StateChanges(secrets: [record]))
            unsavedSecrets[app.id] = nil
            CrashPoint.reached(.secretDurable)
        } catch {
            unsavedSecrets[app.id] = record
            journalError = error
            appLogger(app).critical(
                "cannot keep the new secret in the state directory; writing the outputs anyway",
                metadata: Self.metadata(AppTransitions.Failure.fields(of: error)))
        }
        return await write(record, app: app, origin: origin, journalError: journalError)
    }

    /// GenAuth confirmed the app's secret: remember that, and keep the secret as the held
    /// record if none is held yet (a state from an older layout, or a lost record).
    func keepConfirmed(_ secret: SecretValue?, app: AppConfig) async -> StepEvent? {
        if let confirmed = states[app.id]?.secretFingerprint { updateRuntime(app.id) { $0.confirmedFingerprint = confirmed } }
        guard runtime(app.id).heldVersion == nil, let secret, let state = states[app.id] else { return nil }
        let record = CurrentSecret(appID: app.id, version: state.version, obtainedAt: state.secretObtainedAt ?? now(), secret: secret)
        do {
            try await stateDirectory.commit(StateChanges(secrets: [record]))
            updateRuntime(app.id) { runtime in
                runtime.heldVersion = record.version
                runtime.outputsCheckDue = true
            }
            return nil
        } catch {
            return StepEvent(.journalFailed(AppTransitions.Failure(journal: error)))
        }
    }

    /// A held secret that is not yet on every output (after a crash or a failed write): the
    /// transitions judge whether it is provably GenAuth's newest (else GenAuth is read first).
    func heldSecretDue(_ app: AppConfig, version: Int) -> StepEvent? {
        let held = heldSecret(app)
        guard let record = held, record.version == version else {
            updateRuntime(app.id) { $0.heldVersion = held?.version }
            return nil
        }
        let state = currentState(app.id)
        let afterIntent = state.intent == .refresh && record.obtainedAt >= (state.intentStartedAt ?? .distantFuture)
        let confirmed = runtime(app.id).confirmedFingerprint == record.fingerprint
        return StepEvent(.heldSecretDue(recordConfirmed: confirmed, obtainedAfterIntent: afterIntent))
    }

    /// Writes the held secret `record` to every output (the transitions decided it may).
    func writeHeldRecord(_ record: CurrentSecret, app: AppConfig) async -> StepEvent {
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
        let state = currentState(app.id)
        let origin: AppTransitions.SecretOrigin = state.intent == .refresh ? .rotated : (state.version == 0 ? .fetched : .changedUpstream)
        return await write(record, app: app, origin: origin, journalError: journalError)
    }

    private func write(
        _ record: CurrentSecret, app: AppConfig, origin: AppTransitions.SecretOrigin, journalError: StateDirectoryError?
    ) async -> StepEvent {
        let document = document(record, app)
        let report = await writeOutputs(document, app.outputs)
        if let arrived = answerArrived.removeValue(forKey: app.id), report.allWritten {
            let window = ContinuousClock.now - arrived
            exposure[app.id] = window
            metrics.exposureWindow(window)
        }
        if !report.allWritten {
            return StepEvent(.outputsFailed(AppTransitions.Failure(report, version: record.version)))
        }
        if let journalError {
            return StepEvent(.journalFailed(AppTransitions.Failure(journal: journalError)))
        }
        updateRuntime(app.id) { AppDecisions.secretWritten(origin: origin, runtime: &$0) }
        CrashPoint.reached(.outputsDurable)
        return StepEvent(
            .outputsWritten(version: record.version, obtainedAt: record.obtainedAt, fingerprint: record.fingerprint, origin: origin))
    }

    /// The level-triggered check: each output against what the held secret says it should be.
    func inspectOutputs(_ app: AppConfig) async -> StepEvent? {
        guard let record = heldSecret(app) else {
            updateRuntime(app.id) { $0.heldVersion = nil }
            return nil
        }
        let document = document(record, app)
        let drifted = await inspect(document, app.outputs)
        guard !drifted.isEmpty else {
            updateRuntime(app.id) { $0.outputsCheckDue = false }
            return nil
        }
        let log = appLogger(app)
        for (spec, drift) in drifted {
            log.warning(
                "output drifted (\(drift.cause))",
                metadata: ["target_path": "\(spec.path)", "cause": "\(drift.cause)", "event": "output_drift"])
        }
        let contentChanged = drifted.contains { $0.1.changesContent }
        let confirmed = runtime(app.id).confirmedFingerprint == record.fingerprint
        return StepEvent(
            .outputsDrifted(contentChanged: contentChanged, recordConfirmed: confirmed),
            repair: PendingRepair(record: record, document: document, drifted: drifted))
    }

    /// Rewrites drifted outputs from the held secret, without calling GenAuth (the transitions
    /// asked for it: nothing of the secret changes, or GenAuth confirmed the record).
    func repairOutputs(_ app: AppConfig, _ repair: PendingRepair) async -> StepEvent {
        let report = await rewrite(repair.document, repair.drifted.map(\.0))
        guard report.allWritten else {
            return StepEvent(.outputsFailed(AppTransitions.Failure(report, version: repair.record.version)))
        }
        updateRuntime(app.id) { $0.outputsCheckDue = false }
        let causes = repair.drifted.map(\.1.cause)
        let contentChanged = repair.drifted.contains { $0.1.changesContent }
        return StepEvent(.driftRepaired(causes: causes, contentChanged: contentChanged))
    }

    /// The held secret, newest first: one the state directory could not keep, else the record.
    func heldSecret(_ app: AppConfig) -> CurrentSecret? {
        if let unsaved = unsavedSecrets[app.id] { return unsaved }
        let found = stateDirectory.loadSecret(appID: app.id, now: now())
        if let corrupt = found.corrupt { reportCorrupt(corrupt, app: app) }
        return found.secret
    }

    func document(_ record: CurrentSecret, _ app: AppConfig) -> SecretDocument {
        SecretDocument(
            secret: record.secretValue, appId: app.id, appName: app.name, version: record.version, rotatedAt: record.obtainedAt)
    }
}
