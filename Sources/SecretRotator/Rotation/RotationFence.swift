#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The engine's whole view of a fleet (Architecture, Fleet): may this host send a
/// refresh now, and "a secret changed here". `FleetCoordinator` answers it from etcd; the
/// engine never sees etcd's types, leases or keys.
public protocol RotationFence: Sendable {
    /// Asked right before refresh-application-secret, after every local check: granted only
    /// when this host leads and its intent is recorded in etcd by a transaction that held only
    /// while its election key existed (no transaction, no refresh).
    func authorizeRefresh(appID: String) async -> RefreshAuthorization
    /// `version` (the app's `AppState.version`, obtained at `rotatedAt`) is on every output
    /// and owed to the fleet: tell it. Returns at once; publishing happens in the background,
    /// retried with the one backoff until etcd accepts it, and is answered by the engine's
    /// `announced(appID:version:)`. The debt is durable (`AppState.announcedVersion`), so one
    /// that outlives the process is announced again after the next start.
    func announce(appID: String, version: Int, rotatedAt: Date)
}

public enum RefreshAuthorization: Sendable, Equatable {
    case granted
    /// Not now, because another host leads (or may): the rotation is the leader's, so this
    /// host neither retries nor counts a failure.
    case refused(String)
    /// This host leads, but etcd did not take the intent (no transaction, no refresh): nothing
    /// was sent, and the rotation is retried after the app's backoff.
    case unavailable(String)
}
