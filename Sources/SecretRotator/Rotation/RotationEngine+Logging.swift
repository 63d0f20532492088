#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// Engine events and logging: every journal entry the engine writes, with its `event` field
/// (the MESSAGE_IDs are `JournalEvent`'s), in one place.
extension RotationEngine {
    func reportCorrupt(_ corrupt: StateDirectory.CorruptRecord, app: AppConfig?) {
        let log = app.map(appLogger) ?? logger
        log.critical(
            "a state record was unreadable; moved aside, the app starts over and reads GenAuth's current secret",
            metadata: ["target_path": "\(corrupt.movedTo)", "reason": "\(corrupt.reason)", "event": "state_corrupt"])
    }

    /// What an operator's request (`step`) met (`AppDecisions.request`).
    func log(_ notice: AppDecisions.RequestNotice, _ step: RotationPlanner.Step, _ app: AppConfig) {
        switch notice {
        case .waitsForLease:
            appLogger(app).notice(
                "this host leads, but etcd has not confirmed its lease lately; the rotation runs once it does",
                metadata: ["event": "cluster_rotate_waits"])
        case .notLeader:
            appLogger(app).notice(
                "this host does not lead the fleet's election, so it does not rotate; the request is answered with a fetch (rotate on the leader)",
                metadata: ["event": "cluster_not_leader"])
        case .backoffOverridden(let retry):
            appLogger(app).notice(
                "an operator's \(step.name) overrides the backoff once (the next retry was due at \(retry.formatted(.iso8601)))",
                metadata: ["event": "backoff_overridden"])
        }
    }

    func logWindowWait(_ app: AppConfig, until: Date) {
        appLogger(app).info(
            "the scheduled rotation waits for the app's window \(app.window?.description ?? "?"): it starts at \(until.formatted(.iso8601))",
            metadata: ["event": "rotation_waits_for_window", "starts_at": "\(until.formatted(.iso8601))"])
    }

    func logRecovery(apps pulled: Int, within seconds: Double) {
        logger.notice(
            "GenAuth answers again: \(Self.count(pulled, "app")) waiting on a transient failure's backoff will be retried within \(DurationSyntax.format(.milliseconds(Int64(seconds * 1000)))), one request slot apart",
            metadata: ["event": "genauth_recovered", "apps": "\(pulled)"])
    }

    func appLogger(_ app: AppConfig) -> Logger {
        var log = logger
        log[metadataKey: "app_id"] = "\(app.id)"
        log[metadataKey: "app_name"] = "\(app.name)"
        return log
    }

    func log(_ report: AppTransitions.Report, _ app: AppConfig) {
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

    static func metadata(_ fields: [String: String]) -> Logger.Metadata {
        fields.mapValues { .string($0) }
    }
}
