import Foundation
import Synchronization

@testable import SecretRotator

/// A systemd that records what it was asked and answers from a script per unit: by default a
/// job that is done and a unit whose main process restarted at the moment it was asked.
package final class FakeSystemdUnits: SystemdUnitManaging, Sendable {
    package enum Behaviour: Sendable {
        case restarts
        case reloads
        case refuses(String)
        case jobFails(String)
        case stopped
        /// The job is done but nothing ran: the unit's timestamps stay in the past.
        case ignores
    }

    package struct Call: Sendable, Equatable {
        package var unit: String
        package var action: ConsumerAction
        package init(unit: String, action: ConsumerAction) {
            self.unit = unit
            self.action = action
        }
    }

    private let state = Mutex<(calls: [Call], behaviours: [String: Behaviour])>(([], [:]))
    package let clock: @Sendable () -> Date

    package init(clock: @escaping @Sendable () -> Date = { Date() }) {
        self.clock = clock
    }

    package var calls: [Call] { state.withLock { $0.calls } }

    package func set(_ unit: String, _ behaviour: Behaviour) { state.withLock { $0.behaviours[unit] = behaviour } }

    package func notify(unit: String, action: ConsumerAction, timeout: Duration) async -> UnitReport {
        let behaviour = state.withLock { state in
            state.calls.append(Call(unit: unit, action: action))
            return state.behaviours[unit] ?? .restarts
        }
        var report = UnitReport()
        report.loadState = "loaded"
        report.activeState = "active"
        report.subState = "running"
        report.jobResult = "done"
        report.mainStarted = clock().addingTimeInterval(-3_600)
        switch behaviour {
        case .restarts: report.mainStarted = clock()
        case .reloads:
            report.canReload = true
            report.reloadStarted = clock()
            report.reloadStatus = 0
        case .refuses(let why):
            report = UnitReport()
            report.errno = -EACCES
            report.errorName = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
            report.errorMessage = why
        case .jobFails(let result):
            report.jobResult = result
            report.activeState = "failed"
        case .stopped:
            report.activeState = "inactive"
            report.subState = "dead"
        case .ignores: break
        }
        return report
    }

    package func inspect(unit: String) async -> UnitReport {
        var report = UnitReport()
        report.loadState = unit.hasPrefix("missing") ? "not-found" : "loaded"
        report.activeState = "active"
        return report
    }
}
