import Foundation
import Testing

@testable import SecretRotator

/// Proof of pickup: only systemd's own timestamps at or after the notification count.
@Suite struct ConsumerPickupTests {
    static let asked = Date(timeIntervalSince1970: 1_900_000_000)

    static func report(_ change: (inout UnitReport) -> Void) -> UnitReport {
        var report = UnitReport()
        report.loadState = "loaded"
        report.activeState = "active"
        report.jobResult = "done"
        report.mainStarted = asked.addingTimeInterval(-600)
        change(&report)
        return report
    }

    static func judge(_ report: UnitReport, _ action: ConsumerAction = .reloadOrRestart) -> ConsumerOutcome {
        ConsumerPickup.judge(report, action: action, unit: "billing.service", notifiedAt: asked)
    }

    @Test func aRestartAfterTheWriteIsConfirmed() {
        let outcome = Self.judge(Self.report { $0.mainStarted = Self.asked.addingTimeInterval(0.02) })
        #expect(outcome.state == .confirmed && outcome.detail == "restarted")
    }

    @Test func aSuccessfulReloadAfterTheWriteIsConfirmed() {
        let outcome = Self.judge(Self.report { $0.reloadStarted = Self.asked.addingTimeInterval(0.01); $0.reloadStatus = 0 })
        #expect(outcome.state == .confirmed && outcome.detail == "reloaded")
    }

    @Test func aReloadThatExitedNonZeroFails() {
        let outcome = Self.judge(Self.report { $0.reloadStarted = Self.asked.addingTimeInterval(0.01); $0.reloadStatus = 1 })
        #expect(outcome.state == .failed)
        #expect(outcome.detail?.contains("status 1") == true)
    }

    /// A job merged into one queued before the write says "done" without running after it.
    @Test func aDoneJobWithOldTimestampsIsNotConfirmed() {
        let outcome = Self.judge(Self.report { $0.reloadStarted = Self.asked.addingTimeInterval(-5); $0.reloadStatus = 0 })
        #expect(outcome.state == .failed)
        #expect(outcome.detail?.contains("no reload or restart since the secret was written") == true)
    }

    @Test func aRefusalSaysWhatSystemdSaid() {
        var report = UnitReport()
        report.errno = -EACCES
        report.errorName = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
        report.errorMessage = "Interactive authentication required."
        let outcome = Self.judge(report)
        #expect(outcome.state == .failed)
        #expect(outcome.detail == "systemd refused reload-or-restart: Interactive authentication required. (org.freedesktop.DBus.Error.InteractiveAuthorizationRequired)")
    }

    @Test func noAnswerInTimeFails() {
        var report = UnitReport()
        report.errno = -ETIMEDOUT
        #expect(Self.judge(report).state == .failed)
    }

    @Test func aFailedJobFails() {
        let outcome = Self.judge(Self.report { $0.jobResult = "failed"; $0.activeState = "failed" })
        #expect(outcome.state == .failed && outcome.detail?.contains("\"failed\"") == true)
    }

    @Test func aStoppedUnitIsNotRunningNotAFailure() {
        #expect(Self.judge(Self.report { $0.activeState = "inactive" }).state == .notRunning)
        #expect(Self.judge(Self.report { $0.activeState = "inactive" }, .signal(SIGHUP)).state == .notRunning)
    }

    @Test func aMissingUnitFails() {
        #expect(Self.judge(Self.report { $0.loadState = "not-found" }).state == .failed)
    }

    @Test func aSignalIsDeliveryOnly() {
        let outcome = Self.judge(Self.report { $0.jobResult = "" }, .signal(SIGHUP))
        #expect(outcome.state == .signalled && outcome.detail == "signal:SIGHUP sent to the main process")
    }

    @Test func actionsParseAndMapToSystemdMethodsAndPolkitVerbs() {
        #expect(ConsumerAction(parsing: "reload-or-restart") == .reloadOrRestart)
        #expect(ConsumerAction(parsing: "restart") == .restart)
        #expect(ConsumerAction(parsing: "signal:HUP") == .signal(SIGHUP))
        #expect(ConsumerAction(parsing: "signal:sigusr1") == .signal(SIGUSR1))
        #expect(ConsumerAction(parsing: "signal:SIGKILL") == nil)
        #expect(ConsumerAction(parsing: "stop") == nil)
        #expect(ConsumerAction.reloadOrRestart.method == "ReloadOrTryRestartUnit")
        #expect(ConsumerAction.restart.method == "TryRestartUnit")
        #expect(ConsumerAction.signal(SIGHUP).method == "KillUnit")
        #expect(ConsumerAction.reloadOrRestart.polkitVerbs == ["reload-or-try-restart"])
        #expect(ConsumerAction.restart.polkitVerbs == ["try-restart"])
        #expect(ConsumerAction.signal(SIGUSR2).polkitVerbs == ["kill"])
    }
}
