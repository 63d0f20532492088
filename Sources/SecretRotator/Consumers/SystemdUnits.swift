import CSystemdBus
#if canImport(Glibc)
import Glibc
#endif
import NIOPosix

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What systemd answered about one unit: the queued job's result and the unit's state after
/// it, as read over D-Bus (`sr_unit_report` in CSystemdBus). Never carries a secret.
public struct UnitReport: Sendable, Equatable {
    /// 0, or the negative errno of a call that failed (refused, timed out, no bus).
    public var errno: Int32 = 0
    /// "loaded", "not-found", "masked", ...; "" when not read.
    public var loadState: String = ""
    /// "active", "reloading", "inactive", "failed", ...
    public var activeState: String = ""
    public var subState: String = ""
    /// The unit's primary name; another than the one asked about means that one is an alias.
    public var id: String = ""
    /// The job's result from `JobRemoved` ("done", "failed", ...); "" when no job was queued.
    public var jobResult: String = ""
    /// `ExecMainStartTimestamp`: when the main process last started.
    public var mainStarted: Date?
    /// When the unit's last `ExecReload=` command started, and its exit status (nil: unknown).
    public var reloadStarted: Date?
    public var reloadStatus: Int32?
    public var canReload: Bool = false
    /// The D-Bus error, e.g. `org.freedesktop.DBus.Error.InteractiveAuthorizationRequired`.
    public var errorName: String = ""
    public var errorMessage: String = ""

    public init() {}

    /// "<message> (<D-Bus error name>)", or the errno's text, for logs and `status`.
    public var errorDescription: String {
        let message = errorMessage.isEmpty ? "error \(errno)" : errorMessage
        return errorName.isEmpty ? message : "\(message) (\(errorName))"
    }
}

/// The seam to systemd for consumer units: the daemon asks it to reload, restart or signal a
/// unit and reads the unit's state back. The real one speaks D-Bus (`SystemdBusUnits`); tests
/// use a fake from the test kit.
public protocol SystemdUnitManaging: Sendable {
    /// Queues `action` for `unit`, waits at most `timeout` for the job's result, and reads the
    /// unit's state afterwards.
    func notify(unit: String, action: ConsumerAction, timeout: Duration) async -> UnitReport
    /// Reads a unit's state without changing anything (check-config, status).
    func inspect(unit: String) async -> UnitReport
}

/// systemd over the system bus, through libsystemd's sd-bus. Each call runs on a thread of
/// its own pool with its own bus connection: sd-bus blocks and a connection belongs to one
/// thread, and neither the engine's executors nor its file I/O threads may wait on PID 1
/// (which may take a unit's whole start timeout to answer).
public struct SystemdBusUnits: SystemdUnitManaging {
    /// Eight consumers are told at once (a `rotate --all` burst); more wait for a thread.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    public init() {}

    public func notify(unit: String, action: ConsumerAction, timeout: Duration) async -> UnitReport {
        let signal: Int32 = if case .signal(let number) = action { number } else { 0 }
        let method = action.method
        let micros = UInt64(max(0, DurationSyntax.milliseconds(of: timeout))) * 1_000
        return await Self.onThread {
            var raw = sr_unit_report()
            let result = sr_unit_notify(unit, method, signal, micros, &raw)
            return Self.report(raw, result: result)
        }
    }

    public func inspect(unit: String) async -> UnitReport {
        await Self.onThread {
            var raw = sr_unit_report()
            let result = sr_unit_inspect(unit, &raw)
            return Self.report(raw, result: result)
        }
    }

    private static func onThread(_ body: @escaping @Sendable () -> UnitReport) async -> UnitReport {
        do {
            return try await pool.runIfActive(body)
        } catch {
            var report = UnitReport()
            report.errno = -ECANCELED
            report.errorMessage = "not asked: shutting down"
            return report
        }
    }

    static func report(_ raw: sr_unit_report, result: Int32) -> UnitReport {
        var raw = raw
        var report = UnitReport()
        report.errno = result
        report.loadState = string(&raw.load_state)
        report.activeState = string(&raw.active_state)
        report.subState = string(&raw.sub_state)
        report.id = string(&raw.id)
        report.jobResult = string(&raw.job_result)
        report.errorName = string(&raw.error_name)
        report.errorMessage = string(&raw.error_message)
        report.mainStarted = date(raw.main_start_usec)
        report.reloadStarted = date(raw.reload_start_usec)
        report.reloadStatus = raw.reload_status >= 0 ? raw.reload_status : nil
        report.canReload = raw.can_reload != 0
        return report
    }

    private static func date(_ micros: UInt64) -> Date? {
        micros == 0 ? nil : Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    /// A fixed-size C char array (imported as a tuple) as a String, up to its NUL.
    private static func string<T>(_ field: inout T) -> String {
        withUnsafeBytes(of: &field) { bytes in
            let prefix = bytes.prefix { $0 != 0 }
            return String(decoding: prefix, as: UTF8.self)
        }
    }
}
