#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One host's part in a fleet on etcd (Architecture, Fleet). Four loops, each retrying etcd
/// through the one backoff (`EtcdRetry`) and logging when it starts and stops failing:
///
/// - **Leadership** (only with `rotate` apps): grant a lease of `lease_ttl`, keep it alive every
///   third of the TTL, campaign with etcd's election API; while the campaign is won this host
///   leads and the engine rotates. A keepalive etcd answers "expired", or none answered
///   within the TTL, ends the leadership at once.
/// - **Fencing** (`RotationFence`): before every refresh, a transaction records the intent at
///   `<prefix>/intent/<app>` only while this host's election key still has the create revision
///   the campaign returned; no transaction, no refresh. A leader paused after the transaction
///   and before its request is the residual window: its late refresh is announced when it
///   completes (the deposed leader publishes like any leader), and a secret that changed
///   without a notice is found by the new leader's `verify_interval` read.
/// - **Notices** (`NoticePublisher`): a rotation is owed to the fleet, durably in the app's
///   record, until etcd accepts its notice, however long that takes.
/// - **Watch** of the whole prefix: notices `{version, rotated_at, host}` from other hosts make
///   the engine fetch at once; after every (re)connect a range read catches up on what was
///   missed. While the watch is down followers fall back to polling on their interval.
///
/// The state is kept in `<state>/cluster.json` for `status` and in the metrics.
public actor FleetCoordinator: RotationFence {
    let settings: ClusterSettings
    let store: any ClusterStore
    let engine: RotationEngine
    let statusPath: String
    let logger: Logger
    let metrics: RotatorMetrics
    let now: @Sendable () -> Date
    /// The one backoff of every retry against etcd (`EtcdRetry`).
    let retryPolicy: RetryPolicy
    let publisher: NoticePublisher

    private var lease: Int64?
    /// When the lease may have expired: the start of the last answered keepalive plus the TTL.
    private var leaseDeadline: ContinuousClock.Instant?
    /// Our election key while this host leads.
    private var leaderKey: ClusterKeyValue?
    private var leaderHost: String?
    private var leaderApps: [String]?
    private var watching = false
    private var leaseProblem: String?
    private var watchProblem: String?
    private var lastNotices: [String: ClusterStatus.Notice] = [:]
    /// Recording intents: failures in a row (across refreshes), for one log line per change.
    private var intentRetry: EtcdRetry
    /// Set by a failed fencing transaction: the keepalive loop ends the leadership at once.
    private var fenced = false
    /// No keepalive was answered within the TTL, but etcd has not said the lease expired
    /// either (a raft election, a member down, etcd unreachable): this host rotates nothing
    /// until etcd confirms the lease (it resumes, still holding its election key: nobody else
    /// could lead meanwhile) or says it expired (the leadership is lost).
    private var suspended = false
    private var loggedOnce: Set<String> = []
    /// Notice coalescing: when each app's last notice was passed to the engine, and the
    /// newest one held back meanwhile. At most one fetch per app per `noticeSpacing`, so a
    /// flood of notices (anyone who can write the prefix) cannot turn into a flood of reads
    /// (the daemon's `requests_per_second` bounds all of them besides). Short enough that real
    /// rotations, which take a round trip to GenAuth and an fsync each, are never held back:
    /// at 1 s, back-to-back `rotate` runs (0.4 s apart) reached followers up to 1 s late.
    private var lastForwarded: [String: ContinuousClock.Instant] = [:]
    private var heldBack: [String: RotationNotice] = [:]
    static let noticeSpacing: Duration = .milliseconds(250)

    public init(
        settings: ClusterSettings, store: any ClusterStore, engine: RotationEngine, stateDirectory: String,
        metrics: RotatorMetrics = .disabled, now: @escaping @Sendable () -> Date = { Date() },
        retryPolicy: RetryPolicy = .etcd, logger: Logger = Logger(label: "secret-rotator.cluster")
    ) {
        self.settings = settings
        self.store = store
        self.engine = engine
        self.statusPath = (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + ClusterStatus.fileName
        self.metrics = metrics
        self.now = now
        var logger = logger
        logger[metadataKey: "cluster_host"] = "\(settings.host)"
        self.logger = logger
        self.retryPolicy = retryPolicy
        intentRetry = EtcdRetry(policy: retryPolicy)
        publisher = NoticePublisher(
            settings: settings, store: store, retry: retryPolicy, logger: logger,
            announced: { [engine] appID, version in await engine.announced(appID: appID, version: version) })
    }

    /// Runs until cancelled; then the lease is revoked, so another candidate leads at once
    /// instead of after the TTL (cancel only once no step is in flight). Call
    /// `engine.joinCluster(coordinator)` before the engine's first step, so that no refresh
    /// is ever sent without asking.
    public func run() async {
        await publishState()
        // Notices a previous process owed (its records say so) are owed by this one.
        for debt in await engine.owedAnnouncements() {
            await publisher.owe(appID: debt.appID, version: debt.version, rotatedAt: debt.rotatedAt)
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchLoop() }
            group.addTask { await self.leadershipLoop() }
            group.addTask { await self.publisher.run() }
            await group.waitForAll()
        }
        if let lease {
            let store = store
            _ = await Task(operation: { try? await store.revoke(lease: lease) }).value
            self.lease = nil
            leaderKey = nil
            logger.notice("left the election (lease revoked)", metadata: ["event": "cluster_resigned"])
        }
        await publishState()
    }

    // MARK: - RotationFence

    public func authorizeRefresh(appID: String) async -> RefreshAuthorization {
        guard let key = leaderKey, leaseDeadline != nil, !suspended else {
            return .refused("this host does not lead the election now (\(leaseProblem ?? "another host leads"))")
        }
        // Room for the transaction's round trip: past this the lease may be gone by the time
        // GenAuth gets the request. A keepalive that is late (etcd electing a raft leader
        // after a member died) is waited for, not taken as a loss: the keepalive loop either
        // confirms the lease, or suspends the leadership once the TTL has passed.
        let margin = settings.leaseTTL / 4
        func confirmed() -> Bool {
            guard leaderKey == key, !suspended, let deadline = leaseDeadline else { return false }
            return ContinuousClock.now + margin < deadline
        }
        while !confirmed(), leaderKey == key, !suspended, !Task.isCancelled {
            try? await QuietSleep.sleep(for: .milliseconds(50))
        }
        guard confirmed() else {
            return .refused("etcd has not confirmed this host's lease lately; it may have expired")
        }
        let intent = ClusterRecordCoding.encode(RotationIntent(host: settings.host, startedAt: now()))
        // etcd without a raft leader for a moment is worth a few quick tries; one refusing
        // writes for longer leaves the rotation to the app's own backoff (nothing was sent).
        var tries = 0
        while true {
            tries += 1
            do {
                let written = try await store.put(
                    settings.intentKey(appID: appID), value: intent, ifKey: key.key, hasCreateRevision: key.createRevision)
                intentsRecorded()
                guard written != nil else {
                    logger.error(
                        "refresh not sent: this host's election key is gone (fenced); another host may lead now",
                        metadata: ["event": "cluster_fenced", "app_id": "\(appID)"])
                    fenced = true
                    // Demoted at once, not at the next keepalive: the engine follows from now.
                    await engine.leadershipChanged(leading: false)
                    return .refused("fenced: this host's election key is gone, so it no longer leads")
                }
                break
            } catch {
                let (delay, began) = intentRetry.failed()
                if began {
                    logger.warning(
                        "etcd does not take refresh intents (\(error)); no rotation is sent until it does (each app retries after its backoff)",
                        metadata: ["event": "cluster_intent_failed"])
                }
                // A lease no longer sure may be another host's leadership: not this host's to retry.
                let unsure = "etcd did not record the intent (\(error)) and this host's lease is no longer sure; no transaction, no refresh"
                guard confirmed() else { return .refused(unsure) }
                guard tries < Self.intentTries else {
                    return .unavailable("etcd did not record the intent (\(error)); no transaction, no refresh")
                }
                try? await QuietSleep.sleep(for: delay)
                guard confirmed() else { return .refused(unsure) }
            }
        }
        guard leaderKey == key, !suspended, let deadline = leaseDeadline, ContinuousClock.now < deadline else {
            return .refused("the lease may have expired during the fencing transaction")
        }
        return .granted
    }

    /// Tries at recording one intent before the refresh is left to the app's backoff: with
    /// the default backoff about 3 s at most, longer than etcd takes to elect a raft leader.
    static let intentTries = 5

    private func intentsRecorded() {
        let failures = intentRetry.succeeded()
        if failures > 0 {
            logger.notice(
                "etcd records refresh intents again (after \(failures) failed tries)", metadata: ["event": "cluster_intent_recorded"])
        }
    }

    public nonisolated func announce(appID: String, version: Int, rotatedAt: Date) {
        Task { await self.publisher.owe(appID: appID, version: version, rotatedAt: rotatedAt) }
    }

    // MARK: - Leadership

    private func candidateApps() async -> [String] {
        await engine.config.apps.filter { $0.action == .rotate }.map(\.id)
    }

    private func leadershipLoop() async {
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
    private func holdLease(apps: [String]) async -> (String, Bool) {
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
    private func keepAlive(_ lease: Int64) async -> String {
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

    private func suspend(_ reason: String) async {
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

    private func resume() async {
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
    private func campaign(lease: Int64, apps: [String]) async -> String {
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

    private func becomeLeader(_ key: ClusterKeyValue) async {
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

    private func leaseEnded(reason: String) async {
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

    // MARK: - Watch

    private func watchLoop() async {
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

    private func handle(_ value: ClusterKeyValue, deleted: Bool, snapshot: Bool, lastSeen: inout [String: Int64]) async {
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

    private func forwardHeldBack(_ appID: String) async {
        guard let notice = heldBack.removeValue(forKey: appID) else { return }
        await forward(notice, appID: appID, live: true)
    }

    private func forward(_ notice: RotationNotice, appID: String, live: Bool) async {
        lastForwarded[appID] = .now
        if await engine.notified(appID: appID, rotatedAt: notice.rotatedAt, live: live) {
            logger.info(
                "rotation notice from \(notice.host) (version \(notice.version)); fetching the new secret",
                metadata: ["event": "cluster_notified", "app_id": "\(appID)"])
        }
    }

    private func refreshLeader() async {
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

    private func watchUp() async {
        if !watching {
            if watchProblem != nil {
                logger.notice("watching etcd again; notices arrive at once", metadata: ["event": "cluster_watch_up"])
            }
            watching = true
            watchProblem = nil
            await publishState()
        }
    }

    private func watchDown(_ reason: String) async {
        if watching || watchProblem == nil {
            logger.warning(
                "not watching etcd (\(reason)); following by polling GenAuth on each app's interval until it is back",
                metadata: ["event": "cluster_watch_down"])
        }
        watching = false
        watchProblem = reason
        await publishState()
    }

    // MARK: - State for status and metrics

    private func suffix(_ key: String, after marker: String) -> String? {
        let start = settings.prefix + marker
        guard key.hasPrefix(start) else { return nil }
        let rest = String(key.dropFirst(start.count))
        return rest.isEmpty || rest.contains("/") ? nil : rest
    }

    func snapshot() async -> ClusterStatus {
        let candidates = await candidateApps()
        let role: ClusterStatus.Role =
            candidates.isEmpty ? .follower : suspended ? .noLease : leaderKey != nil ? .leader : lease != nil ? .candidate : .noLease
        let unrotated = leaderApps.map { listed in candidates.filter { !listed.contains($0) } } ?? []
        return ClusterStatus(
            host: settings.host, group: settings.group, role: role, leader: leaderHost, unrotated: role == .leader ? [] : unrotated,
            leaseHeld: lease != nil && !suspended, resuming: suspended && leaderKey != nil, watch: watching ? .watching : .polling, problem: leaseProblem ?? watchProblem,
            lastNotices: lastNotices, updatedAt: now(), pid: getpid())
    }

    private func publishState() async {
        let status = await snapshot()
        metrics.clusterChanged(leaseHeld: status.leaseHeld, leader: status.role == .leader, watchUp: status.watch == .watching)
        let bytes = status.encoded()
        let path = statusPath
        // An fsync'd replace, off the actor's executor like every other durable write.
        let result = await AtomicFileWriter().write(bytes, to: path, options: AtomicWriteOptions(), on: RotationEngine.sharedFileIO)
        if case .failure(let error) = result {
            if loggedOnce.insert("status-file").inserted {
                logger.warning("cannot write \(statusPath): \(error)", metadata: ["event": "cluster_status_write_failed"])
            }
        }
    }
}
