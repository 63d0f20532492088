import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Set by the signal handler; an atomic store is async-signal-safe.
private let stopSignalReceived = Atomic<Bool>(false)

/// Remembers a SIGTERM or SIGINT that arrives while the daemon is still starting up (config,
/// lock, journal), before swift-service-lifecycle traps those signals. Without it the default
/// action would kill the process with the signal instead of the promised clean exit 0, e.g.
/// when `systemctl stop` races a start. The service group later replaces this handler with its
/// own; `RotationService` asks `received` once the group traps the signals.
public enum EarlyStopSignal {
    public static func install() {
        signal(SIGTERM) { _ in stopSignalReceived.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in stopSignalReceived.store(true, ordering: .relaxed) }
    }

    public static var received: Bool { stopSignalReceived.load(ordering: .relaxed) }
}
