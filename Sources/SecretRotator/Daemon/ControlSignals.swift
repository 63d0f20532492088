#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// SIGUSR1 (an operator's `rotate`/`fetch` request) and SIGHUP (reload) terminate a process by
/// default, and `rotate`/`fetch` signal whichever process holds the state-directory lock: a
/// daemon still starting up, a `run --once`, or a standalone `rotate`. Each of them ignores
/// both signals from its first moment, so a request can never kill it mid-step. The daemon's
/// service later traps them (swift-service-lifecycle's `UnixSignalsSequence` keeps SIG_IGN and
/// takes delivery through a dispatch source), and drains the request directory once at start,
/// so a SIGUSR1 that came earlier loses nothing.
public enum ControlSignals {
    public static func ignoreUntilTrapped() {
        signal(SIGUSR1, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
    }
}
