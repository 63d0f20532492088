#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The engine's side of owed rotation notices (Architecture, Fleet): which rotations the fleet
/// has not been told of, and the answer once etcd accepted one. The decision that a notice is
/// owed is `AppTransitions`' (`announce` action, `announcedVersion`); this only carries it.
extension RotationEngine {
    /// One notice the fleet is owed: `version` of `appID`, obtained at `rotatedAt`.
    public struct OwedAnnouncement: Sendable, Equatable {
        public var appID: String
        public var version: Int
        public var rotatedAt: Date
    }

    /// Every rotation this host wrote and has not announced yet, from the durable records
    /// (so also those a previous process could not announce). Empty without a fleet.
    public func owedAnnouncements() -> [OwedAnnouncement] {
        guard fence != nil else { return [] }
        return config.apps.compactMap { app in
            guard app.action == .rotate, let state = state(of: app.id), AppTransitions.announcementOwed(state) else { return nil }
            return OwedAnnouncement(appID: app.id, version: state.version, rotatedAt: state.secretObtainedAt ?? now())
        }
    }

    /// etcd accepted the notice for `version` of `appID` (or a newer one covered it): the debt
    /// is settled durably. Waits for a step of the app in flight, so that step's transition
    /// cannot overwrite this one with the state it started from.
    public func announced(appID: String, version: Int) async {
        while running[appID] != nil {
            await withCheckedContinuation { finishWaiters.append($0) }
        }
        guard let app = app(withID: appID) else { return }
        running[appID] = .now
        defer { finished(appID) }
        await transition(app, .announced(version: version))
    }

    /// The failure a fence's answer makes of a refresh it did not allow (nil when granted).
    /// Refused: another host leads, so nothing is retried here (`notLeader`). Unavailable:
    /// this host leads but etcd did not take the intent, so the app backs off and retries.
    static func notSent(_ authorization: RefreshAuthorization) -> AppTransitions.Failure? {
        switch authorization {
        case .granted:
            nil
        case .refused(let reason):
            AppTransitions.Failure(.notLeader, "refresh not sent: \(reason)", fields: ["event": "cluster_fenced"])
        case .unavailable(let reason):
            AppTransitions.Failure(.local, "refresh not sent: \(reason)", fields: ["event": "cluster_intent_failed"])
        }
    }
}
