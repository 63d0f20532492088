#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The engine's side of a fleet (Architecture, Fleet): the election's outcome and other
/// hosts' notices arrive here as events; what each changes for an app is
/// `AppDecisions.leadershipChanged` and `AppDecisions.notified`.
extension RotationEngine {
    /// Makes this engine part of a fleet: from now on `rotate` apps are rotated only while
    /// `leadershipChanged(leading: true, ...)` holds, and every refresh asks `fence` first.
    public func joinCluster(_ fence: any RotationFence) {
        self.fence = fence
        fleet = FleetView(inFleet: true, leading: false, suspended: false)
        for app in config.apps where app.action == .rotate { invalidate(app.id) }
        workFinished()
    }

    /// This host won (`leading`) or lost the election. On winning, apps with an interrupted
    /// rotation (`intents`: another leader recorded an intent and never published) and apps a
    /// notice shows rotated after the secret held here are read from GenAuth before anything
    /// is rotated: the hand-over reconciles instead of rotating twice. `catchUpAll` (etcd's
    /// records could not be read) reads every `rotate` app. `suspended`: not leading only
    /// because etcd has not confirmed the lease lately (an operator's rotate waits for it).
    public func leadershipChanged(
        leading: Bool, suspended: Bool = false, intents: [String: Date] = [:], notices: [String: Date] = [:], catchUpAll: Bool = false
    ) {
        fleet = FleetView(inFleet: fence != nil, leading: leading, suspended: !leading && suspended)
        let settlePeriod = policy.settlePeriod
        let rotateApps = config.apps.filter { $0.action == .rotate }.map(\.id)
        // Winning concerns the `rotate` apps; losing ends every hand-over, also of an app a
        // reload made `follow` or removed (`AppDecisions.leadershipChanged` decides both).
        let affected = leading ? rotateApps : Array(Set(rotateApps).union(runtimes.keys))
        for id in affected {
            let state = currentState(id)
            updateRuntime(id) { runtime in
                AppDecisions.leadershipChanged(
                    state: state, runtime: &runtime, leading: leading, intentStarted: intents[id], noticeAt: notices[id],
                    catchUpAll: catchUpAll, settlePeriod: settlePeriod)
            }
        }
        for id in rotateApps { invalidate(id) }
        workFinished()
    }

    /// A notice says another host rotated `appID` at `rotatedAt`: fetch its secret now (within
    /// the backoff, like every step). `live` notices come from the watch; others from a
    /// snapshot after a (re)connect, and are acted on only if the held secret is older.
    /// Returns whether a fetch was queued.
    @discardableResult
    public func notified(appID: String, rotatedAt: Date, live: Bool) -> Bool {
        guard appIndex[appID] != nil else { return false }
        let state = currentState(appID)
        let queued = updateRuntime(appID) { runtime in
            AppDecisions.notified(state: state, runtime: &runtime, rotatedAt: rotatedAt, live: live)
        }
        guard queued else { return false }
        invalidate(appID)
        workFinished()
        return true
    }

    /// Whether this host currently rotates `rotate` apps (always true without a fleet).
    public var rotatesLocally: Bool { fleet.rotatesLocally }

    /// The app as this host treats it now (`FleetView.effective`).
    func effective(_ app: AppConfig) -> AppConfig {
        fleet.effective(app)
    }
}
