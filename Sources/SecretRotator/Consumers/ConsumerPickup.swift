#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Proof of pickup, pure: what systemd's answer means for a consumer told of a secret at
/// `notifiedAt`. A unit counts as on the new secret only when systemd shows its main process
/// started, or its `ExecReload=` ran successfully, at or after that moment (the secret was
/// durable on every output before it). A job result of "done" alone is not enough: systemd
/// merges a job into one already queued, which may have run before the write.
public enum ConsumerPickup {
    /// Timestamps are microseconds in systemd and may be rounded down against our clock.
    static let clockSlack: TimeInterval = 0.001

    public static func judge(_ report: UnitReport, action: ConsumerAction, unit: String, notifiedAt: Date) -> ConsumerOutcome {
        if report.errno == -ETIMEDOUT {
            return ConsumerOutcome(unit: unit, state: .failed, detail: "systemd gave no result for the \(action) job in time")
        }
        if case .signal = action, report.errorName == "org.freedesktop.systemd1.NoSuchProcess" {
            // systemd's answer to a signal for a unit without a main process: it is stopped.
            return ConsumerOutcome(unit: unit, state: .notRunning, detail: "unit has no main process (\(report.activeState.isEmpty ? "stopped" : report.activeState))")
        }
        if report.errno != 0 && report.errorName.isEmpty {
            // No D-Bus answer at all: the system bus (or systemd on it) could not be reached.
            return ConsumerOutcome(unit: unit, state: .failed, detail: "cannot reach systemd over the system bus: \(report.errorDescription)")
        }
        if report.errno != 0 {
            return ConsumerOutcome(unit: unit, state: .failed, detail: "systemd refused \(action): \(report.errorDescription)")
        }
        if report.loadState != "loaded" {
            return ConsumerOutcome(unit: unit, state: .failed, detail: "unit is \(report.loadState.isEmpty ? "unknown" : report.loadState)")
        }
        let since = notifiedAt.addingTimeInterval(-clockSlack)
        if case .signal = action {
            if report.activeState == "inactive" || report.activeState == "failed" {
                return ConsumerOutcome(unit: unit, state: .notRunning, detail: "unit is \(report.activeState)")
            }
            return ConsumerOutcome(unit: unit, state: .signalled, detail: "\(action) sent to the main process")
        }
        if !report.jobResult.isEmpty && report.jobResult != "done" {
            return ConsumerOutcome(unit: unit, state: .failed, detail: "the \(action) job ended \"\(report.jobResult)\" (unit \(report.activeState)/\(report.subState))")
        }
        if let started = report.mainStarted, started >= since, report.activeState == "active" || report.activeState == "reloading" {
            return ConsumerOutcome(unit: unit, state: .confirmed, detail: "restarted")
        }
        if let reloaded = report.reloadStarted, reloaded >= since {
            if report.reloadStatus == 0 {
                return ConsumerOutcome(unit: unit, state: .confirmed, detail: "reloaded")
            }
            return ConsumerOutcome(unit: unit, state: .failed, detail: "its reload exited with status \(report.reloadStatus.map(String.init) ?? "unknown")")
        }
        if report.activeState == "inactive" || report.activeState == "failed" {
            // try-restart and try-reload leave a stopped unit stopped: it reads the new secret
            // when it starts. A failed unit is reported as such, but it holds no secret either.
            return ConsumerOutcome(unit: unit, state: .notRunning, detail: "unit is \(report.activeState)")
        }
        return ConsumerOutcome(
            unit: unit, state: .failed, detail: "systemd shows no reload or restart since the secret was written (unit \(report.activeState)/\(report.subState))")
    }
}
