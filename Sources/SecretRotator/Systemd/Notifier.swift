import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Talks to the service manager with sd_notify(3): READY, STATUS, WATCHDOG, RELOADING,
/// STOPPING. Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op, so the same binary
/// runs from a shell, under a timer or as a Type=notify service.
public struct Notifier: Sendable {
    /// Half the watchdog period systemd asked for (WATCHDOG_USEC), or nil without a watchdog.
    public let watchdogInterval: Duration?

    public init() {
        var microseconds: UInt64 = 0
        if sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 {
            watchdogInterval = .microseconds(Int64(microseconds / 2))
        } else {
            watchdogInterval = nil
        }
    }

    public func ready(status: String) {
        send("READY=1\nSTATUS=\(Self.oneLine(status))")
    }

    public func status(_ text: String) {
        send("STATUS=\(Self.oneLine(text))")
    }

    public func watchdog() {
        send("WATCHDOG=1")
    }

    /// systemd 252 has no Type=notify-reload; RELOADING=1 with MONOTONIC_USEC still makes
    /// `systemctl reload` show the unit as reloading until the following READY=1.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        send("RELOADING=1\nMONOTONIC_USEC=\(microseconds)\nSTATUS=reloading the config")
    }

    public func stopping() {
        send("STOPPING=1\nSTATUS=stopping")
    }

    /// Asks for more time while a shutdown waits for a write in flight.
    public func extendTimeout(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        send("EXTEND_TIMEOUT_USEC=\(seconds * 1_000_000 + attoseconds / 1_000_000_000_000)")
    }

    private func send(_ state: String) {
        _ = sd_notify(0, state)
    }

    /// STATUS= is a single line; anything after a newline would be read as another assignment.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
