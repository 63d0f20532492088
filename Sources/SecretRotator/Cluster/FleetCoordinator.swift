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

    var lease: Int64?
    /// When the lease may have expired: the start of the last answered keepalive plus the TTL.
    var leaseDeadline: ContinuousClock.Instant?
    /// Our election key while this host leads.
    var leaderKey: ClusterKeyValue?
    var leaderHost: String?
    var leaderApps: [String]?
    var watching = false
    var leaseProblem: String?
    var watchProblem: String?
    var lastNotices: [String: ClusterStatus.Notice] = [:]
    /// Recording intents: failures in a row (across refreshes), for one log line per change.
    var intentRetry: EtcdRetry
    /// Set by a failed fencing transaction: the keepalive loop ends the leadership at once.
    var fenced = false
    /// No keepalive was answered within the TTL, but etcd has not said the lease expired
    /// either (a raft election, a member down, etcd unreachable): this host rotates nothing
    /// until etcd confirms the lease (it resumes, still holding its election key: nobody else
    /// could lead meanwhile) or says it expired (the leadership is lost).
    var suspended = false
    var loggedOnce: Set<String> = []
    /// Notice coalescing: when each app's last notice was passed to the engine, and the
    /// newest one held back meanwhile. At most one fetch per app per `noticeSpacing`, so a
    /// flood of notices (anyone who can write the prefix) cannot turn into a flood of reads
    /// (the daemon's `requests_per_second` bounds all of them besides). Short enough that real
    /// rotations, which take a round trip to GenAuth and an fsync each, are never held back:
    /// at 1 s, back-to-back `rotate` runs (0.4 s apart) reached followers up to 1 s late.
    var lastForwarded: [String: ContinuousClock.Instant] = [:]
    var heldBack: [String: RotationNotice] = [:]
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

    func intentsRecorded() {
        let failures = intentRetry.succeeded()
        if failures > 0 {
            logger.notice(
                "etcd records refresh intents again (after \(failures) failed tries)", metadata: ["event": "cluster_intent_recorded"])
        }
    }

    public nonisolated func announce(appID: String, version: Int, rotatedAt: Date) {
        Task { await self.publisher.owe(appID: appID, version: version, rotatedAt: rotatedAt) }
    }

    // MARK: - State for status and metrics

    func suffix(_ key: String, after marker: String) -> String? {
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

    func publishState() async {
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
