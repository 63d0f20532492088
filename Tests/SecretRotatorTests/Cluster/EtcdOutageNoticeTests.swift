import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// A real 3-member etcd, entirely down during a rotation for longer than the old notice
/// budget (10 tries over about 42 s, after which the notice was dropped and followers kept
/// the killed secret until their next poll): the leader keeps the notice owed, and once etcd
/// is back every follower holds GenAuth's secret within seconds and the intent is gone.
@Suite(.serialized) struct EtcdOutageNoticeTests {
    /// Short waits between tries, so the leader finds etcd back soon after it returns.
    static let retry = RetryPolicy(initial: .milliseconds(50), max: .milliseconds(500), multiplier: 2)
    /// Longer than the old budget of about 42 s.
    static let outage: Duration = .seconds(45)

    @Test func noticeOwedThroughAFullEtcdOutageReachesTheFollower() async throws {
        try await FleetCoordinatorTests.withTwoHosts(retry: Self.retry) { a, b, harness, cluster in
            try await Self.scenario(a, b, harness: harness, cluster: cluster)
        }
    }

    static func scenario(
        _ a: FleetCoordinatorTests.Host, _ b: FleetCoordinatorTests.Host, harness: GenAuthHarness, cluster: EtcdTestCluster
    ) async throws {
        let id = GenAuthHarness.appId
        try await waitUntil(deadline: .seconds(20)) {
            let roles = [await a.coordinator.snapshot().role, await b.coordinator.snapshot().role]
            return roles.filter { $0 == .leader }.count == 1
        }
        let (leader, follower) = await a.coordinator.snapshot().role == .leader ? (a, b) : (b, a)
        // Both hosts past their first fetch: a leader still fetching would count that as the
        // rotation below.
        try await waitUntil(deadline: .seconds(20)) {
            let held = await follower.engine.state(of: id)?.version ?? 0
            let led = await leader.engine.state(of: id)?.version ?? 0
            let watch = await follower.coordinator.snapshot().watch
            return held > 0 && led > 0 && watch == .watching
        }
        let before = harness.state.currentSecret(appId: id)
        let versionBefore = await leader.engine.state(of: id)?.version ?? 0

        // The refresh answers late, and etcd dies in between: after the intent, before the notice.
        harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: id, count: 1, fault: .delay(milliseconds: 1_500)))
        #expect(await leader.engine.request(.refresh, forApp: id))
        try await waitUntil(deadline: .seconds(10), "the refresh was never sent") {
            harness.state.requestLog().contains { $0.path.hasSuffix("refresh-application-secret") }
        }
        for member in 0..<3 { cluster.kill(member) }
        let down = ContinuousClock.now
        try await waitUntil(deadline: .seconds(10), "one refresh, written by the leader") {
            let written = await leader.engine.state(of: id)?.version ?? 0
            return harness.state.rotationCount(appId: id) == 1 && written > versionBefore
        }
        let secret = harness.state.currentSecret(appId: id)
        #expect(secret != before)
        try await waitUntil(deadline: .seconds(10)) { harness.capture.contains(event: "cluster_publish_failed") }
        // etcd stays down past the old budget; the follower has nothing but its hourly poll.
        try await Task.sleep(until: down + Self.outage)
        #expect(follower.fixture.outputSecret(0) == before)
        let owed = await leader.engine.state(of: id)
        #expect(owed.map { $0.announcedVersion < $0.version } == true, "the notice is owed in the leader's record")

        for member in 0..<3 { try cluster.start(member) }
        try await cluster.waitHealthy()
        let back = ContinuousClock.now
        try await waitUntil(deadline: .seconds(10), "the follower holds GenAuth's secret within 10 s of etcd's return (took \(ContinuousClock.now - back))") { follower.fixture.outputSecret(0) == secret }
        try await waitUntil(deadline: .seconds(10), "the intent is gone") {
            do { return try await leader.store.get("/fleet/intent/\(id)") == nil } catch { return false }
        }
        let notice = try await leader.store.get("/fleet/apps/\(id)").flatMap { ClusterRecordCoding.decode(RotationNotice.self, from: $0.value) }
        #expect(notice?.host == leader.name)
        try await waitUntil(deadline: .seconds(10)) {
            guard let state = await leader.engine.state(of: id) else { return false }
            return state.announcedVersion == state.version
        }
        #expect(harness.capture.contains(event: "cluster_publish_recovered"))
        #expect(harness.state.rotationCount(appId: id) == 1)
    }
}
