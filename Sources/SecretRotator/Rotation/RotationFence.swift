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
    /// A secret this host obtained while leading is on every output (durable): tell the fleet.
    /// Returns at once; publishing happens in the background and is retried.
    func announce(appID: String, rotatedAt: Date)
}

public enum RefreshAuthorization: Sendable, Equatable {
    case granted
    /// Not now, and why (for the log and `status`).
    case refused(String)
}
