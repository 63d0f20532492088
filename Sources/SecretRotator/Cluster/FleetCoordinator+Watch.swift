#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The watch on the fleet's notices: each one forwarded to the engine as a fetch
/// (`RotationEngine.notified`), at most one per app at a time, and the leader's record followed.
extension FleetCoordinator {
    func watchLoop() async {
        var retry = EtcdRetry(policy: retryPolicy)
        var lastSeen: [String: Int64] = [:]
        while !Task.isCancelled {
            do {
                let snapshot = try await store.range(prefix: settings.prefix + "/")
                for value in snapshot.values {
                    await handle(value, deleted: false, snapshot: true, lastSeen: &lastSeen)
                }
                await refreshLeader()
                await watchUp()
                retry.succeeded()
                for try await events in store.watch(prefix: settings.prefix + "/", fromRevision: snapshot.revision + 1) {
                    var electionChanged = false
                    for event in events {
                        if event.value.key.hasPrefix(settings.electionName + "/") {
                            electionChanged = true
                        } else {
                            await handle(event.value, deleted: event.kind == .delete, snapshot: false, lastSeen: &lastSeen)
                        }
                    }
                    if electionChanged { await refreshLeader() }
                }
            } catch {
                if Task.isCancelled { break }
                // watchDown logs the change of state (once per streak).
                await watchDown("\(error)")
            }
            try? await QuietSleep.sleep(for: retry.failed().delay)
        }
    }

    func handle(_ value: ClusterKeyValue, deleted: Bool, snapshot: Bool, lastSeen: inout [String: Int64]) async {
        guard !deleted, let appID = suffix(value.key, after: "/apps/") else { return }
        let seen = lastSeen[appID]
        if let seen, value.modRevision <= seen { return }
        lastSeen[appID] = value.modRevision
        guard let notice = ClusterRecordCoding.decode(RotationNotice.self, from: value.value) else {
            if loggedOnce.insert("notice:" + appID).inserted {
                logger.warning(
                    "ignored an unreadable rotation notice at \(value.key) (not {version, rotated_at, host})",
                    metadata: ["event": "cluster_bad_notice"])
            }
            return
        }
        guard notice.host != settings.host else { return }
        guard let app = await engine.app(withID: appID) else { return }
        let received = now()
        lastNotices[appID] = ClusterStatus.Notice(
            version: notice.version, rotatedAt: notice.rotatedAt, host: notice.host, receivedAt: received)
        metrics.clusterNotified(app, at: received)
        // A snapshot entry seen before (a reconnect) that changed is a missed event: act on it.
        let live = !snapshot || seen != nil
        if live, let last = lastForwarded[appID], ContinuousClock.now - last < Self.noticeSpacing {
            if heldBack.updateValue(notice, forKey: appID) == nil {
                Task {
                    try? await QuietSleep.sleep(until: last + Self.noticeSpacing)
                    await self.forwardHeldBack(appID)
                }
            }
        } else {
            await forward(notice, appID: appID, live: live)
        }
        await publishState()
    }

    func forwardHeldBack(_ appID: String) async {
        guard let notice = heldBack.removeValue(forKey: appID) else { return }
        await forward(notice, appID: appID, live: true)
    }

    func forward(_ notice: RotationNotice, appID: String, live: Bool) async {
        lastForwarded[appID] = .now
        if await engine.notified(appID: appID, rotatedAt: notice.rotatedAt, live: live) {
            logger.info(
                "rotation notice from \(notice.host) (version \(notice.version)); fetching the new secret",
                metadata: ["event": "cluster_notified", "app_id": "\(appID)"])
        }
    }

    func refreshLeader() async {
        do {
            if let leader = try await store.leader(election: settings.electionName) {
                let candidate = ClusterRecordCoding.decode(CandidateValue.self, from: leader.value)
                leaderHost = candidate?.host
                leaderApps = candidate?.apps
                if candidate == nil, loggedOnce.insert("leader-value").inserted {
                    logger.warning(
                        "the election's first key \(leader.key) holds no candidate's value; while it is there nobody leads (written by something other than secret-rotator?)",
                        metadata: ["event": "cluster_bad_leader_key"])
                } else if candidate != nil {
                    loggedOnce.remove("leader-value")
                }
            } else {
                leaderHost = nil
                leaderApps = nil
            }
        } catch {
            // Kept: the watch's own failure, if any, is what status reports.
        }
        await publishState()
    }

    func watchUp() async {
        if !watching {
            if watchProblem != nil {
                logger.notice("watching etcd again; notices arrive at once", metadata: ["event": "cluster_watch_up"])
            }
            watching = true
            watchProblem = nil
            await publishState()
        }
    }

    func watchDown(_ reason: String) async {
        if watching || watchProblem == nil {
            logger.warning(
                "not watching etcd (\(reason)); following by polling GenAuth on each app's interval until it is back",
                metadata: ["event": "cluster_watch_down"])
        }
        watching = false
        watchProblem = reason
        await publishState()
    }
}
