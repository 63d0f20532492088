import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// `FleetCoordinator` with real engines on one mock and a real 3-member etcd: one leader,
/// notices reach the other host, a leader whose lease is gone is fenced, and with etcd down
/// nobody rotates.
@Suite(.serialized) struct FleetCoordinatorTests {
    struct Host {
        let fixture: EngineFixture
        let engine: RotationEngine
        let coordinator: FleetCoordinator
        let store: EtcdGatewayClient
        let tasks: [Task<Void, Never>]
        let name: String

        func stop() async {
            for task in tasks { task.cancel() }
            for task in tasks { await task.value }
            await store.shutdown()
        }
    }

    /// - Parameters:
    ///   - settings: the host's `[cluster]`; by default plain etcd under `/fleet`.
    ///   - retry: how the coordinator retries etcd.
    static func host(
        _ name: String, harness: GenAuthHarness, cluster: EtcdTestCluster, settings own: ClusterSettings? = nil,
        retry: RetryPolicy = .etcd
    ) async throws -> Host {
        let fixture = try EngineFixture(harness: harness)
        var config = fixture.config()
        let settings = own ?? ClusterSettings(endpoints: cluster.endpoints, prefix: "/fleet", leaseTTL: .seconds(5), host: name)
        config.cluster = settings
        let engine = fixture.engine(config: config, realClock: true)
        let store = try EtcdGatewayClient(settings: settings, unaryTimeout: .milliseconds(500))
        let coordinator = FleetCoordinator(
            settings: settings, store: store, engine: engine, stateDirectory: config.defaults.stateDirectory,
            retryPolicy: retry, logger: harness.capture.logger(label: "secret-rotator.cluster"))
        await engine.joinCluster(coordinator)
        try await engine.start()
        let scheduler = Task {
            while !Task.isCancelled {
                let next = await engine.startDue()
                let wait = min(max(next?.timeIntervalSinceNow ?? 0.05, 0.005), 0.05)
                try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            }
        }
        let running = Task { await coordinator.run() }
        return Host(fixture: fixture, engine: engine, coordinator: coordinator, store: store, tasks: [scheduler, running], name: name)
    }

    @Test func oneLeaderNoticesAndFencing() async throws {
        try await Self.withTwoHosts { a, b, harness, cluster in
            try await Self.scenario(a, b, harness: harness, cluster: cluster)
        }
    }

    /// Hosts "a" and "b" on a fresh 3-member etcd and one mock, retrying etcd with `retry`;
    /// both stopped and cleaned up after `body`, whatever it throws.
    static func withTwoHosts(
        retry: RetryPolicy = .etcd, _ body: (Host, Host, GenAuthHarness, EtcdTestCluster) async throws -> Void
    ) async throws {
        try await withEtcdCluster { cluster in
            try await withGenAuthHarness { harness in
                let a = try await Self.host("a", harness: harness, cluster: cluster, retry: retry)
                let b: Host
                do {
                    b = try await Self.host("b", harness: harness, cluster: cluster, retry: retry)
                } catch {
                    await a.stop()
                    throw error
                }
                defer { a.fixture.cleanUp(); b.fixture.cleanUp() }
                do {
                    try await body(a, b, harness, cluster)
                } catch {
                    await a.stop()
                    await b.stop()
                    throw error
                }
                await a.stop()
                await b.stop()
            }
        }
    }

    /// A host whose etcd user lacks the role on the prefix (access control on): one error
    /// line naming the user and the prefix, the same words in `status`, and it never leads.
    @Test func hostWithoutTheRoleSaysSoOnceAndNeverLeads() async throws {
        try await EtcdAccessControlTests.withSecuredCluster { cluster in
            try await withGenAuthHarness { harness in
                let settings = EtcdAccessControlTests.settings(cluster, user: "intruder")
                let host = try await Self.host("intruder", harness: harness, cluster: cluster, settings: settings)
                defer { host.fixture.cleanUp() }
                let said = (try? await waitUntil(deadline: .seconds(20)) {
                    await host.coordinator.snapshot().problem?.contains("cannot campaign: etcd user \"intruder\"") == true
                }) != nil
                // Three lease TTLs: the campaign is tried again, the line is not written again.
                try? await Task.sleep(for: settings.leaseTTL * 3)
                let snapshot = await host.coordinator.snapshot()
                await host.stop()
                #expect(said, "\(String(describing: snapshot.problem))")
                #expect(snapshot.problem?.contains("readwrite \(settings.prefix)/") == true)
                #expect(snapshot.role != .leader)
                #expect(harness.capture.events("cluster_denied").count == 1)
                #expect(!harness.capture.renderedText.joined().contains("intruder-pw"))
            }
        }
    }

    static func scenario(_ a: Host, _ b: Host, harness: GenAuthHarness, cluster: EtcdTestCluster) async throws {
        let id = GenAuthHarness.appId
        // Exactly one leads.
        try await waitUntil(deadline: .seconds(20)) {
            let roles = [await a.coordinator.snapshot().role, await b.coordinator.snapshot().role]
            return roles.filter { $0 == .leader }.count == 1 && roles.contains(.candidate)
        }
        let (leader, other) = await a.coordinator.snapshot().role == .leader ? (a, b) : (b, a)
        try await waitUntil(deadline: .seconds(20)) { await other.engine.state(of: id)?.version ?? 0 > 0 }

        // The leader rotates on request; the other host holds the new secret soon after.
        #expect(await leader.engine.request(.refresh, forApp: id))
        try await waitUntil(deadline: .seconds(20)) { harness.state.rotationCount(appId: id) == 1 }
        let rotated = harness.state.currentSecret(appId: id)
        try await waitUntil(deadline: .seconds(20)) {
            other.fixture.outputSecret(0) == rotated && leader.fixture.outputSecret(0) == rotated
        }
        #expect(await other.coordinator.snapshot().lastNotices[id]?.host == leader.name)

        // A flood of notices (anyone who can write the prefix): at most one read per 250 ms
        // per app on each host, not one per notice (once: 300 notices, 361 reads).
        let readsBefore = harness.state.requestLog().filter { $0.path.hasSuffix("get-application-secret") }.count
        let flood = ContinuousClock.now
        for round in 0..<100 {
            let notice = RotationNotice(version: 1_000 + round, rotatedAt: Date(), host: "evil")
            let current = try await leader.store.get("/fleet/apps/\(id)")
            _ = try await leader.store.put("/fleet/apps/\(id)", value: ClusterRecordCoding.encode(notice), ifModRevision: current?.modRevision ?? 0)
        }
        let elapsed = Double((ContinuousClock.now - flood).components.seconds) + 1
        try await Task.sleep(for: .seconds(1))
        let reads = harness.state.requestLog().filter { $0.path.hasSuffix("get-application-secret") }.count - readsBefore
        #expect(Double(reads) <= 2 * (4 * (elapsed + 1) + 2), "\(reads) reads for 100 notices in \(elapsed) s on 2 hosts")

        // A reload that changes the leader's rotate apps changes its election value.
        var reloaded = await leader.engine.config
        reloaded.apps = [reloaded.apps[0]]
        await leader.engine.apply(reloaded)
        try await waitUntil(deadline: .seconds(10)) {
            guard let value = try? await leader.store.leader(election: "/fleet/election/default")?.value else { return false }
            return ClusterRecordCoding.decode(CandidateValue.self, from: value)?.apps == [id]
        }

        // The leader's key vanishes behind its back (its lease revoked from outside, as
        // an expiry would): its next refresh is refused by the fencing transaction.
        let key = try #require(try await leader.store.leader(election: "/fleet/election/default"))
        try await leader.store.revoke(lease: key.lease)
        #expect(await leader.coordinator.authorizeRefresh(appID: id) != .granted)
        #expect(harness.state.rotationCount(appId: id) == 1)
        // The other host takes over within TTL + 2 s.
        try await waitUntil(deadline: .seconds(7)) { await other.coordinator.snapshot().role == .leader }

        // etcd down: nobody holds a lease, nobody rotates, watches fall back to polling.
        for member in 0..<3 { cluster.kill(member) }
        try await waitUntil(deadline: .seconds(20)) {
            let snapshots = [await a.coordinator.snapshot(), await b.coordinator.snapshot()]
            return snapshots.allSatisfy { $0.role == .noLease && $0.watch == .polling }
        }
        #expect(await a.coordinator.authorizeRefresh(appID: id) != .granted)
        #expect(await b.coordinator.authorizeRefresh(appID: id) != .granted)
        #expect(harness.capture.contains(event: "cluster_watch_down"))
        // Back: a leader again without anyone's help.
        for member in 0..<3 { try cluster.start(member) }
        try await waitUntil(deadline: .seconds(20)) {
            let roles = [await a.coordinator.snapshot().role, await b.coordinator.snapshot().role]
            return roles.filter { $0 == .leader }.count == 1
        }
    }
}
