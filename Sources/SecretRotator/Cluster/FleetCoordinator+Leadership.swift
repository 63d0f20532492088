#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The election: holding a lease, campaigning, leading and handing over, suspending while etcd
/// does not confirm the lease; each outcome told to the engine (`RotationEngine.leadershipChanged`).
extension FleetCoordinator {
    func candidateApps() async -> [String] {
        await engine.config.apps.filter { $0.action == .rotate }.map(\.id)
    }

    func leadershipLoop() async {
        // Past the TTL a lease is gone anyway: no longer wait between grants.
        var retry = EtcdRetry(policy: retryPolicy, atMost: settings.leaseTTL)
        while !Task.isCancelled {
            let candidates = await candidateApps()
            if candidates.isEmpty {
                // Only `follow` apps: nothing to campaign for (a reload may add some).
                try? await QuietSleep.sleep(for: .seconds(5))
                continue
            }
            let (reason, granted) = await holdLease(apps: candidates)
            await leaseEnded(reason: reason)
            if Task.isCancelled { break }
            // leaseEnded logs the change of state; a lease that was granted starts a new streak.
            if granted { retry.succeeded() }
            try? await QuietSleep.sleep(for: retry.failed().delay)
        }
    }

    /// Grants a lease and holds it: campaigns, leads once the campaign returns, and returns why
    /// it ended (lease expired, fenced, etcd unreachable, cancelled) and whether a lease was granted.
    func holdLease(apps: [String]) async -> (String, Bool) {
        let started = ContinuousClock.now
        let lease: Int64
        do {
            lease = try await store.grantLease(ttl: settings.leaseTTL)
        } catch {
            return ("cannot get a lease: \(error)", false)
        }
        self.lease = lease
        leaseDeadline = started + settings.leaseTTL
        fenced = false
        if leaseProblem != nil {
            logger.notice("holding an etcd lease again; campaigning", metadata: ["event": "cluster_lease_granted"])
        }
        leaseProblem = nil
        loggedOnce.remove("lease")
        await publishState()
        let reason = await withTaskGroup(of: String.self) { group in
            group.addTask { await self.keepAlive(lease) }
            group.addTask { await self.campaign(lease: lease, apps: apps) }
            let first = await group.next() ?? "stopped"
            group.cancelAll()
            return first
        }
        suspended = false
        if reason == "stopped" {
            // A graceful stop: leave the election now (awaited: the process is about to exit),
            // so another candidate leads at once instead of after the TTL.
            // In a task of its own: this one is cancelled, and so would the request be.
            let store = store
            if await Task(operation: { (try? await store.revoke(lease: lease)) != nil }).value {
                logger.notice("left the election (lease revoked)", metadata: ["event": "cluster_resigned"])
            }
        } else if !reason.hasPrefix("the lease expired") {
            // Our election key must go now, not a TTL later, or it heads the queue for nobody:
            // retried with the backoff until the TTL would have ended it anyway.
            let store = store
            let policy = retryPolicy
            let deadline = ContinuousClock.now + settings.leaseTTL
            Task {
                var retry = EtcdRetry(policy: policy)
                while ContinuousClock.now < deadline {
                    if (try? await store.revoke(lease: lease)) != nil { return }
                    try? await QuietSleep.sleep(for: min(retry.failed().delay, deadline - ContinuousClock.now))
                }
            }
        }
        return (reason, true)
    }

    /// Keeps the lease alive every third of the TTL (after a failed keepalive, sooner: the one
    /// backoff, at most a third of the TTL); returns why it ended. Past the TTL without an answer the leadership is suspended, not
    /// given up: etcd extends every lease when it elects a new raft leader, so after a member
    /// failure the lease usually lives on, and only etcd can say it expired.
    func keepAlive(_ lease: Int64) async -> String {
        let ttl = settings.leaseTTL
        var retry = EtcdRetry(policy: retryPolicy, atMost: ttl / 3)
        var wait = ttl / 3
        var lastError = ""
        while !Task.isCancelled {
            try? await QuietSleep.sleep(for: wait)
            if Task.isCancelled { return "stopped" }
            if fenced { return "fenced: the election key is gone" }
            let started = ContinuousClock.now
            do {
                if try await store.keepAlive(lease: lease) {
                    leaseDeadline = started + ttl
                    wait = ttl / 3
                    if retry.succeeded() > 0 {
                        logger.info("etcd answers keepalives again", metadata: ["event": "cluster_keepalive_ok"])
                    }
                    if suspended { await resume() }
                } else {
                    return "the lease expired (etcd no longer has it)"
                }
            } catch {
                lastError = "\(error)"
                let (delay, began) = retry.failed()
                wait = delay
                if began {
                    logger.info(
                        "a keepalive failed (\(lastError)); retrying with backoff while the lease lasts",
                        metadata: ["event": "cluster_keepalive_failing"])
                }
            }
            if !suspended, let deadline = leaseDeadline, ContinuousClock.now >= deadline {
                await suspend("no keepalive was answered within the lease TTL (\(DurationSyntax.format(ttl))): \(lastError)")
            }
        }
        return "stopped"
    }

    func suspend(_ reason: String) async {
        suspended = true
        leaseProblem = reason
        if leaderKey != nil {
            logger.warning(
                "leadership suspended: \(reason); rotating nothing until etcd confirms the lease (or says it expired)",
                metadata: ["event": "cluster_lease_unconfirmed"])
            await engine.leadershipChanged(leading: false, suspended: true)
        } else if loggedOnce.insert("lease").inserted {
            logger.warning(
                "lease unconfirmed: \(reason); this host's rotate apps are only followed until etcd answers",
                metadata: ["event": "cluster_lease_unconfirmed"])
        }
        await publishState()
    }

    func resume() async {
        suspended = false
        leaseProblem = nil
        loggedOnce.remove("lease")
        if leaderKey != nil {
            // The lease never expired, so the election key never went: nobody else led.
            logger.notice("etcd confirmed the lease again; leading again", metadata: ["event": "cluster_leader"])
            await engine.leadershipChanged(leading: true)
        } else {
            logger.notice("etcd confirmed the lease again", metadata: ["event": "cluster_lease_granted"])
        }
        await publishState()
    }

    /// Campaigns, leads once elected, and returns only when that fails or is cancelled.
    func campaign(lease: Int64, apps: [String]) async -> String {
        let value = ClusterRecordCoding.encode(CandidateValue(host: settings.host, apps: apps.sorted()))
        var key: ClusterKeyValue?
        var retry = EtcdRetry(policy: retryPolicy, atMost: settings.leaseTTL)
        while key == nil {
            do {
                let won = try await store.campaign(election: settings.electionName, lease: lease, value: value)
                // etcd's campaign returns once the keys before ours are gone, also when ours went
                // with an expired lease meanwhile: lead only if ours is the leader key now.
                guard let current = try await store.leader(election: settings.electionName), current.key == won.key,
                    current.createRevision == won.createRevision
                else {
                    return "the campaign ended, but this host's election key is not the leader"
                }
                key = won
                loggedOnce.remove("campaign")
                if loggedOnce.remove("campaign-denied") != nil { leaseProblem = nil }
            } catch {
                if Task.isCancelled { return "stopped" }
                if error.code == .denied {
                    // etcd's access control: every member answers the same until an operator
                    // changes the role, so one line, shown by status, and a slow retry.
                    if loggedOnce.insert("campaign-denied").inserted {
                        logger.error(
                            "cannot campaign: \(error); this host's rotate apps are only followed here until etcd allows it",
                            metadata: ["event": "cluster_denied"])
                        leaseProblem = "cannot campaign: \(error)"
                        await publishState()
                    }
                    try? await QuietSleep.sleep(for: settings.leaseTTL)
                    continue
                }
                // The member it waited on went away; the lease (the keepalive's business) and
                // the election key live on: campaign again with them, on the next member
                // (etcd's campaign is idempotent per lease).
                let (delay, began) = retry.failed()
                if began, loggedOnce.insert("campaign").inserted {
                    logger.info(
                        "campaign interrupted (\(error)); campaigning again with the same lease", metadata: ["event": "cluster_campaign_retry"])
                }
                try? await QuietSleep.sleep(for: delay)
            }
        }
        guard let key else { return "stopped" }
        await becomeLeader(key)
        // A reload may change this host's rotate apps: the election value says which apps the
        // leader rotates (other candidates warn about one it lacks), so it follows the config.
        var proclaimed = apps.sorted()
        var proclaiming = EtcdRetry(policy: retryPolicy)
        var wait: Duration = .seconds(2)
        while !Task.isCancelled {
            try? await QuietSleep.sleep(for: wait)
            wait = .seconds(2)
            let current = await candidateApps().sorted()
            guard current != proclaimed, !Task.isCancelled else { continue }
            do {
                try await store.proclaim(
                    election: settings.electionName, leader: key,
                    value: ClusterRecordCoding.encode(CandidateValue(host: settings.host, apps: current)))
                proclaimed = current
                if proclaiming.succeeded() > 0 {
                    logger.info("the election value names this host's apps again", metadata: ["event": "cluster_proclaimed"])
                }
            } catch {
                // The keepalive decides about the lease; this only retries the value.
                let (delay, began) = proclaiming.failed()
                wait = max(wait, delay)
                if began {
                    logger.warning(
                        "cannot update the election value to this host's apps (\(error)); retrying with backoff",
                        metadata: ["event": "cluster_proclaim_failed"])
                }
            }
        }
        return "stopped"
    }

    func becomeLeader(_ key: ClusterKeyValue) async {
        leaderKey = key
        leaderHost = settings.host
        leaderApps = nil
        // The hand-over: intents nobody finished, and notices newer than what this host holds,
        // are read from GenAuth before anything is rotated.
        var intents: [String: Date] = [:]
        var notices: [String: Date] = [:]
        var catchUpAll = false
        do {
            let snapshot = try await store.range(prefix: settings.prefix + "/")
            for value in snapshot.values {
                if let appID = suffix(value.key, after: "/intent/") {
                    // An intent we cannot read counts as started now: the longest wait.
                    let intent = ClusterRecordCoding.decode(RotationIntent.self, from: value.value)
                    let started = min(intent?.startedAt ?? now(), now())
                    intents[appID] = started
                    logger.notice(
                        "found an unfinished rotation of \(intent?.host ?? "an unknown host") from \(started.formatted(.iso8601)); its request may still land, so GenAuth's current secret is read a settle period after it, instead of rotating again",
                        metadata: ["event": "cluster_hand_over", "app_id": "\(appID)"])
                } else if let appID = suffix(value.key, after: "/apps/"),
                    let notice = ClusterRecordCoding.decode(RotationNotice.self, from: value.value)
                {
                    notices[appID] = notice.rotatedAt
                }
            }
        } catch {
            catchUpAll = true
        }
        logger.notice(
            "this host now leads the election \(settings.electionName) and rotates its apps",
            metadata: ["event": "cluster_leader"])
        await engine.leadershipChanged(leading: true, intents: intents, notices: notices, catchUpAll: catchUpAll)
        await publishState()
    }

    func leaseEnded(reason: String) async {
        let wasLeading = leaderKey != nil
        lease = nil
        leaseDeadline = nil
        leaderKey = nil
        if leaderHost == settings.host { leaderHost = nil }
        if reason == "stopped" {
            if wasLeading { await engine.leadershipChanged(leading: false) }
            return
        }
        leaseProblem = reason
        if wasLeading {
            logger.warning(
                "lost the leadership: \(reason); this host rotates nothing until it leads again",
                metadata: ["event": "cluster_lease_lost"])
            await engine.leadershipChanged(leading: false)
        } else if loggedOnce.insert("lease").inserted {
            logger.warning(
                "no etcd lease: \(reason); this host's rotate apps are not rotated here, only followed (retrying)",
                metadata: ["event": "cluster_lease_lost"])
        }
        await publishState()
    }
}
