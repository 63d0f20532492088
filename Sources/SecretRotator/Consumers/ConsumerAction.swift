#if canImport(Glibc)
import Glibc
#endif

/// What the daemon asks systemd to do to a consumer unit once a new secret is durable on every
/// output (config key `consumer_action`). Each maps to one method of
/// `org.freedesktop.systemd1.Manager` (systemd's D-Bus API, org.freedesktop.systemd1(5)) and to
/// the polkit verb systemd passes with the `org.freedesktop.systemd1.manage-units` action.
public enum ConsumerAction: Sendable, Equatable, CustomStringConvertible {
    /// Reload when the unit defines `ExecReload=`, else restart; a stopped unit stays stopped
    /// (`systemctl try-reload-or-restart`). The default: the shortest outage a unit offers.
    case reloadOrRestart
    /// Restart a running unit; a stopped unit stays stopped (`systemctl try-restart`).
    case restart
    /// Send this signal to the unit's main process (`systemctl kill --kill-whom=main -s N`),
    /// for services that re-read their secret on a signal without an `ExecReload=`.
    case signal(Int32)

    /// The signals a consumer may be sent: those services conventionally re-read their
    /// configuration on. Anything that stops a process is a restart, which `restart` does.
    static let signals: [(name: String, number: Int32)] = [
        ("SIGHUP", SIGHUP), ("SIGUSR1", SIGUSR1), ("SIGUSR2", SIGUSR2),
    ]

    /// Parses `reload-or-restart`, `restart` or `signal:SIGHUP` (also `signal:HUP`).
    /// - Returns: nil for anything else; the config reports it with `ConsumerAction.syntax`.
    public init?(parsing text: String) {
        switch text {
        case "reload-or-restart": self = .reloadOrRestart
        case "restart": self = .restart
        default:
            guard text.hasPrefix("signal:") else { return nil }
            var name = String(text.dropFirst("signal:".count)).uppercased()
            if !name.hasPrefix("SIG") { name = "SIG" + name }
            guard let found = Self.signals.first(where: { $0.name == name }) else { return nil }
            self = .signal(found.number)
        }
    }

    /// The accepted spellings, for error messages and documentation.
    public static let syntax = "\"reload-or-restart\" (default), \"restart\", \"signal:SIGHUP\", \"signal:SIGUSR1\" or \"signal:SIGUSR2\""

    public var description: String {
        switch self {
        case .reloadOrRestart: "reload-or-restart"
        case .restart: "restart"
        case .signal(let number): "signal:\(Self.signals.first { $0.number == number }?.name ?? "\(number)")"
        }
    }

    /// The `org.freedesktop.systemd1.Manager` method.
    public var method: String {
        switch self {
        case .reloadOrRestart: "ReloadOrTryRestartUnit"
        case .restart: "TryRestartUnit"
        case .signal: "KillUnit"
        }
    }

    /// The polkit `verb` systemd passes for this method (systemd's dbus-unit.c,
    /// `bus_unit_method_start_generic`: the job type's name, prefixed "reload-or-" for the
    /// Reload* methods; `bus_unit_method_kill`: "kill"). Exactly one: the rule grants no more.
    public var polkitVerbs: [String] {
        switch self {
        case .reloadOrRestart: ["reload-or-try-restart"]
        case .restart: ["try-restart"]
        case .signal: ["kill"]
        }
    }
}
