import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Talks to the service manager with sd_notify(3): READY, STATUS, WATCHDOG, RELOADING,
/// STOPPING. Outside systemd ($NOTIFY_SOCKET unset when made) every call is a no-op, so the
/// same binary runs from a shell, under a timer or as a Type=notify service.
///
/// Every call returns at once: the datagrams are sent by a thread of its own
/// (`NotificationSender`), so a service manager that stops reading never holds the caller.
/// Quiet by design (`NotificationQueue`): STATUS= at most about once a second (the latest text
/// wins), WATCHDOG=1 only when systemd asked for a watchdog (WATCHDOG_USEC) and at most four
/// times per `watchdogInterval`; READY, RELOADING and STOPPING go out at once with their status.
public struct Notifier: Sendable {
    /// Half the watchdog period systemd asked for (WATCHDOG_USEC), or nil without a watchdog.
    public let watchdogInterval: Duration?
    private let sender: NotificationSender?

    public init() {
        var microseconds: UInt64 = 0
        if sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 {
            watchdogInterval = .microseconds(Int64(microseconds / 2))
        } else {
            watchdogInterval = nil
        }
        guard getenv("NOTIFY_SOCKET") != nil else {
            sender = nil
            return
        }
        // A ping at most every quarter interval: the scheduler loop may turn once per step, and
        // with pings at most this far apart plus a sleep of at most one interval, the longest
        // gap stays at 1.25 intervals, well inside WATCHDOG_USEC (two intervals).
        let queue = NotificationQueue(statusSpacing: .seconds(1), watchdogSpacing: watchdogInterval.map { $0 / 4 })
        sender = NotificationSender(queue: queue) { message in _ = sd_notify(0, message) }
    }

    public func ready(status: String) {
        let line = Self.oneLine(status)
        sender?.submit { $0.lifecycle("READY=1", status: line, now: $1) }
    }

    /// Coalesced: sent at once if none was sent in the last second, otherwise when the second
    /// is up, with the latest text given by then.
    public func status(_ text: String) {
        let line = Self.oneLine(text)
        sender?.submit { $0.status(line, now: $1) }
    }

    /// WATCHDOG=1, only when systemd asked for a watchdog (`watchdogInterval` is set); a ping
    /// soon after the previous one is left out.
    public func watchdog() {
        guard watchdogInterval != nil else { return }
        sender?.submit { $0.watchdog(now: $1) }
    }

    /// systemd 252 has no Type=notify-reload; RELOADING=1 with MONOTONIC_USEC still makes
    /// `systemctl reload` show the unit as reloading until the following READY=1.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        sender?.submit { $0.lifecycle("RELOADING=1\nMONOTONIC_USEC=\(microseconds)", status: "reloading the config", now: $1) }
    }

    /// STOPPING=1 with the status "stopping", which later status texts no longer replace.
    public func stopping() {
        sender?.submit { $0.lifecycle("STOPPING=1", status: "stopping", endsStatus: true, now: $1) }
    }

    /// Asks for more time while a shutdown waits for a write in flight.
    public func extendTimeout(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        sender?.submit { $0.lifecycle("EXTEND_TIMEOUT_USEC=\(microseconds)", now: $1) }
    }

    /// Waits, at most `timeout`, until what was submitted has been sent: call it before the
    /// process exits, or its last STOPPING=1 may never leave the sending thread.
    public func flush(upTo timeout: Duration) {
        sender?.flush(upTo: timeout)
    }

    /// Notifications dropped because PID 1 did not read them and the queue was full.
    public var droppedNotifications: Int { sender?.dropped ?? 0 }

    /// Stops the sending thread once its send in progress returns; nothing is sent afterwards.
    /// For tests that change `NOTIFY_SOCKET` after this notifier is done.
    func shutDown() {
        sender?.shutDown()
    }

    /// STATUS= is a single line; anything after a newline would be read as another assignment.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
