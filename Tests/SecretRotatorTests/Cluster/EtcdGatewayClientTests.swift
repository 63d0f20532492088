import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// `EtcdGatewayClient` against a real 3-member etcd cluster on loopback: leases, the election
/// API, the fencing transaction, watches, and a member killed under it.
@Suite(.serialized) struct EtcdGatewayClientTests {
    /// A client on a fresh cluster, shut down however `body` ends.
    static func withClient(_ body: (EtcdTestCluster, EtcdGatewayClient) async throws -> Void) async throws {
        try await withEtcdCluster { cluster in
            let settings = ClusterSettings(endpoints: cluster.endpoints, prefix: "/t", leaseTTL: .seconds(2), host: "test")
            try await withGatewayClient(settings) { client in try await body(cluster, client) }
        }
    }

    /// Whether `stream` ends with an error (true) rather than finishing (false).
    static func endsWithError(_ stream: AsyncThrowingStream<[ClusterEvent], any Error>) -> Task<Bool, Never> {
        Task {
            do {
                for try await _ in stream {}
                return false
            } catch { return true }
        }
    }

    @Test func leaseLivesWhileKeptAliveAndExpiresAfterItsTTL() async throws {
        try await Self.withClient { cluster, client in
            let lease = try await client.grantLease(ttl: .seconds(2))
            #expect(try await client.keepAlive(lease: lease))
            // Not kept alive, etcd expires it after the TTL: the election key made under it
            // goes (watched without renewing it), and a keepalive then says "expired".
            _ = try await client.campaign(election: "/t/election/ttl", lease: lease, value: [1])
            try await waitUntil(deadline: .seconds(10)) { try await client.leader(election: "/t/election/ttl") == nil }
            #expect(!(try await client.keepAlive(lease: lease)))
        }
    }

    /// The election: the first campaign leads; a second blocks until the first's lease is
    /// revoked; the fencing put holds only while the leader key has its create revision.
    @Test func campaignLeaderAndFencing() async throws {
        try await Self.withClient { cluster, client in
            let first = try await client.grantLease(ttl: .seconds(5))
            let second = try await client.grantLease(ttl: .seconds(5))
            let election = "/t/election/default"
            let key = try await client.campaign(election: election, lease: first, value: Array("a".utf8))
            let leader = try #require(try await client.leader(election: election))
            #expect(leader.key == key.key && leader.value == Array("a".utf8))
            #expect(try await client.put("/t/intent/x", value: [1], ifKey: key.key, hasCreateRevision: key.createRevision) != nil)
            #expect(try await client.put("/t/intent/x", value: [1], ifKey: key.key, hasCreateRevision: key.createRevision + 1000) == nil)

            let waiting = Task { try await client.campaign(election: election, lease: second, value: Array("b".utf8)) }
            try await Task.sleep(for: .milliseconds(300))
            try await client.revoke(lease: first)
            let secondKey = try await waiting.value
            #expect(try await client.leader(election: election)?.key == secondKey.key)
            // The deposed leader's fencing transaction fails: its key is gone.
            #expect(try await client.put("/t/intent/x", value: [2], ifKey: key.key, hasCreateRevision: key.createRevision) == nil)
            #expect(try await client.get("/t/intent/x")?.value == [1])
        }
    }

    /// A watch sees every put and delete under the prefix from a revision on, and nothing
    /// outside it; compare-and-swap puts and deletes hold only on the expected mod revision.
    @Test func watchAndCompareAndSwap() async throws {
        try await Self.withClient { cluster, client in
            let start = try await client.range(prefix: "/t/").revision
            #expect(try await client.put("/t/apps/a", value: Array("1".utf8), ifModRevision: 0))
            #expect(!(try await client.put("/t/apps/a", value: Array("x".utf8), ifModRevision: 0)))
            let current = try #require(try await client.get("/t/apps/a"))
            #expect(try await client.put("/t/apps/a", value: Array("2".utf8), ifModRevision: current.modRevision))
            #expect(try await client.put("/u/other", value: [0], ifModRevision: 0))
            let latest = try #require(try await client.get("/t/apps/a"))
            #expect(try await client.delete("/t/apps/a", ifModRevision: latest.modRevision))

            var seen: [(ClusterEvent.Kind, String)] = []
            for try await events in client.watch(prefix: "/t/", fromRevision: start + 1) {
                seen += events.map { ($0.kind, String(decoding: $0.value.value, as: UTF8.self)) }
                if seen.count >= 3 { break }
            }
            #expect(seen.map(\.0) == [.put, .put, .delete])
            #expect(seen.prefix(2).map(\.1) == ["1", "2"])
        }
    }

    /// One member killed (quorum kept): unary calls go on through another member, and a watch
    /// on the killed member ends with an error instead of hanging, so the caller starts anew.
    @Test func memberKilledCallsMoveOn() async throws {
        try await Self.withClient { cluster, client in
            _ = try await client.range(prefix: "/t/")
            let stream = client.watch(prefix: "/t/", fromRevision: 1)
            let ended = Self.endsWithError(stream)
            try await Task.sleep(for: .milliseconds(300))
            cluster.kill(0)  // the first endpoint: where the client and the watch went
            #expect(await ended.value, "the watch on a killed member ends with an error")
            // If it was etcd's raft leader, the others elect one first (about 2 s, no answers).
            try await waitUntil(deadline: .seconds(10)) { (try? await client.range(prefix: "/t/")) != nil }
            for round in 0..<5 {
                #expect(try await client.put("/t/apps/\(round)", value: [1], ifModRevision: 0))
            }
            let watched = Task { () -> Int in
                var count = 0
                for try await events in client.watch(prefix: "/t/apps/", fromRevision: 1) {
                    count += events.count
                    if count >= 5 { break }
                }
                return count
            }
            #expect(try await watched.value == 5)
        }
    }

    /// A frozen member (SIGSTOP: no reset, no answer) under a watch: the liveness check ends
    /// the watch within a few seconds instead of leaving it waiting forever, and calls move on.
    @Test func frozenMemberEndsItsWatch() async throws {
        try await Self.withClient { cluster, client in
            _ = try await client.range(prefix: "/t/")
            let stream = client.watch(prefix: "/t/", fromRevision: 1)
            let ended = Self.endsWithError(stream)
            try await Task.sleep(for: .milliseconds(200))
            cluster.freeze(0)
            defer { cluster.freeze(0, false) }
            #expect(await ended.value, "the watch on a frozen member ends with an error")
            // If it was etcd's raft leader, the others elect one first (about 2 s, no answers):
            // calls move on to them, and answer once they have a leader.
            try await waitUntil(deadline: .seconds(10)) { (try? await client.range(prefix: "/t/")) != nil }
            #expect(try await client.put("/t/apps/x", value: [1], ifModRevision: 0))
        }
    }

    /// Hostile or broken answers are errors, never crashes.
    @Test func watchLinesThatAreNotEtcdAreErrors() throws {
        #expect(throws: ClusterStoreError.self) { try EtcdGatewayClient.watchEvents(Array("not json".utf8), endpoint: "e") }
        #expect(throws: ClusterStoreError.self) { try EtcdGatewayClient.watchEvents(Array("{\"error\":{\"message\":\"x\"}}".utf8), endpoint: "e") }
        #expect(throws: ClusterStoreError.self) {
            try EtcdGatewayClient.watchEvents(Array("{\"result\":{\"canceled\":true,\"compact_revision\":\"9\"}}".utf8), endpoint: "e")
        }
        #expect(try EtcdGatewayClient.watchEvents(Array("{\"result\":{\"created\":true}}".utf8), endpoint: "e") == [])
        // An event whose key is not base64 is skipped, not trusted.
        #expect(try EtcdGatewayClient.watchEvents(Array("{\"result\":{\"events\":[{\"kv\":{\"key\":\"%%%\"}}]}}".utf8), endpoint: "e") == [])
        #expect(EtcdGatewayClient.rangeEnd("/a/") == Array("/a0".utf8))
    }
}
