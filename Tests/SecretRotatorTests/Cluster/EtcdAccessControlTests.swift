import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// `EtcdGatewayClient` against a real 3-member etcd with TLS client certificates and its own
/// access control (`auth enable`), set up as the README tells operators: the daemon's user
/// holds a role with readwrite on the fleet's prefix only.
@Suite(.serialized) struct EtcdAccessControlTests {
    static let prefix = "/sr-test"

    /// A TLS cluster with access control on; `tokenTTL` is etcd's `--auth-token-ttl` (seconds).
    static func withSecuredCluster(
        tokenTTL: Int = 300, token: [String] = [], _ body: (EtcdTestCluster) async throws -> Void
    ) async throws {
        if EtcdTestCluster.available && !FileManager.default.isExecutableFile(atPath: EtcdTestCluster.etcdctl) {
            if EtcdTestCluster.required { Issue.record("SECRET_ROTATOR_ETCD_REQUIRED=1 but \(EtcdTestCluster.etcdctl) is missing") }
            return
        }
        try await withEtcdCluster(tls: { try EtcdTLSFixture(in: $0) }, extraArguments: ["--auth-token-ttl", "\(tokenTTL)"] + token) { cluster in
            try cluster.enableAccessControl(prefix: prefix)
            try await body(cluster)
        }
    }

    /// The daemon's settings for `user` (password `<user>-pw` unless given), with the
    /// fixture's client certificate `certificate`.
    static func settings(
        _ cluster: EtcdTestCluster, user: String, password: String? = nil, certificate: String = "client"
    ) -> ClusterSettings {
        var settings = ClusterSettings(
            endpoints: cluster.endpoints, prefix: prefix, leaseTTL: .seconds(2), host: "test", user: user,
            password: SecretValue(password ?? "\(user)-pw"), passwordSource: .file(path: "/etc/secret-rotator/etcd-password"))
        cluster.tls?.apply(to: &settings, client: certificate)
        return settings
    }

    /// What `operation` threw, as a `ClusterStoreError`; nil when it succeeded.
    static func failure<T>(_ operation: () async throws(ClusterStoreError) -> T) async -> ClusterStoreError? {
        do {
            _ = try await operation()
            return nil
        } catch {
            return error
        }
    }

    /// The first batch of events `stream` delivers within `seconds`, or nil.
    static func firstEvents(_ stream: AsyncThrowingStream<[ClusterEvent], any Error>, seconds: Double) async -> [ClusterEvent]? {
        await withTaskGroup(of: [ClusterEvent]?.self) { group in
            group.addTask {
                var iterator = stream.makeAsyncIterator()
                return try? await iterator.next()
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Everything the fleet does, as the user whose role covers the prefix: lease, campaign,
    /// leader, proclaim, the fencing transaction, notices, range, watch, revoke. A key outside
    /// the prefix is refused as such, naming the user and the prefix.
    @Test func userWithTheRoleWorksUnderThePrefixOnly() async throws {
        try await Self.withSecuredCluster { cluster in
            try await withGatewayClient(Self.settings(cluster, user: "rotator")) { client in
                let election = "\(Self.prefix)/election/default"
                // Long enough that a loaded machine cannot expire it before the checks below.
                let lease = try await client.grantLease(ttl: .seconds(60))
                #expect(try await client.keepAlive(lease: lease))
                let key = try await client.campaign(election: election, lease: lease, value: Array("a".utf8))
                #expect(try await client.leader(election: election)?.key == key.key)
                try await client.proclaim(election: election, leader: key, value: Array("b".utf8))
                #expect(try await client.leader(election: election)?.value == Array("b".utf8))

                let start = try await client.range(prefix: Self.prefix + "/").revision
                let watch = client.watch(prefix: Self.prefix + "/apps/", fromRevision: start + 1)
                #expect(try await client.put("\(Self.prefix)/intent/x", value: [1], ifKey: key.key, hasCreateRevision: key.createRevision) != nil)
                #expect(try await client.put("\(Self.prefix)/apps/x", value: Array("1".utf8), ifModRevision: 0))
                let events = try #require(await Self.firstEvents(watch, seconds: 5))
                #expect(events.map(\.value.key) == ["\(Self.prefix)/apps/x"])
                let notice = try #require(try await client.get("\(Self.prefix)/apps/x"))
                #expect(try await client.delete("\(Self.prefix)/apps/x", ifModRevision: notice.modRevision))
                try await client.revoke(lease: lease)
                #expect(try await client.leader(election: election) == nil)

                let outside = try #require(await Self.failure { () async throws(ClusterStoreError) in try await client.get("/elsewhere") })
                #expect(outside.code == .denied)
                #expect(outside.description.contains("etcd user \"rotator\""))
                #expect(outside.description.contains("readwrite \(Self.prefix)/"))
            }
        }
    }

    /// A user holding a client certificate and a password but not the role cannot write a
    /// notice, nor campaign: refused as "permission denied" at once, not retried on every member.
    @Test func userWithoutTheRoleCannotWriteANotice() async throws {
        try await Self.withSecuredCluster { cluster in
            try await withGatewayClient(Self.settings(cluster, user: "intruder")) { intruder in
                let started = ContinuousClock.now
                let refused = try #require(
                    await Self.failure { () async throws(ClusterStoreError) in
                        try await intruder.put("\(Self.prefix)/apps/app-1", value: Array("{}".utf8), ifModRevision: 0)
                    })
                #expect(refused.code == .denied)
                #expect(refused.description.contains("etcd user \"intruder\" may not use /v3/kv/txn under \(Self.prefix)/"))
                #expect(refused.description.contains("permission denied"))
                #expect(ContinuousClock.now - started < .seconds(2))
                let lease = try await intruder.grantLease(ttl: .seconds(5))
                let campaign = await Self.failure { () async throws(ClusterStoreError) in
                    try await intruder.campaign(election: "\(Self.prefix)/election/default", lease: lease, value: [1])
                }
                #expect(campaign?.code == .denied)
            }
            try await withGatewayClient(Self.settings(cluster, user: "rotator")) { rotator in
                let notice = try await rotator.get("\(Self.prefix)/apps/app-1")
                #expect(notice == nil)
            }
        }
    }

    /// A wrong password is refused once, readably, naming the user and never the password.
    @Test func wrongPasswordIsRefusedReadably() async throws {
        try await Self.withSecuredCluster { cluster in
            try await withGatewayClient(Self.settings(cluster, user: "rotator", password: "not-the-password")) { client in
                let refused = try #require(
                    await Self.failure { () async throws(ClusterStoreError) in try await client.range(prefix: Self.prefix + "/") })
                #expect(refused.code == .denied)
                #expect(refused.description.contains("etcd refused the password of etcd user \"rotator\""))
                #expect(!refused.description.contains("not-the-password"))
            }
        }
    }

    /// etcd's simple tokens expire `--auth-token-ttl` after their last use (2 s here): a client
    /// idle for longer authenticates again and carries on, for unary calls, a new watch (whose
    /// creation etcd refuses with the old token) and one opened before the expiry.
    @Test func expiredTokenIsRenewed() async throws {
        try await Self.withSecuredCluster(tokenTTL: 2) { cluster in
            try await withGatewayClient(Self.settings(cluster, user: "rotator"), livenessInterval: .seconds(30)) { client in
                let start = try await client.range(prefix: Self.prefix + "/").revision
                let early = client.watch(prefix: Self.prefix + "/apps/", fromRevision: start + 1)
                try await Task.sleep(for: .milliseconds(3500))
                let late = client.watch(prefix: Self.prefix + "/apps/", fromRevision: start + 1)
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await client.put("\(Self.prefix)/apps/a", value: [1], ifModRevision: 0))
                #expect(await Self.firstEvents(late, seconds: 5)?.first?.value.key == "\(Self.prefix)/apps/a")
                #expect(await Self.firstEvents(early, seconds: 5)?.first?.value.key == "\(Self.prefix)/apps/a")
                try await Task.sleep(for: .milliseconds(3500))
                let lease = try await client.grantLease(ttl: .seconds(5))
                #expect(try await client.keepAlive(lease: lease))
            }
        }
    }

    /// A refused login (a wrong or changed password, a deleted user) is not sent again by every
    /// call that follows: calls fail with the same refusal until a pause, 1 s doubling to 30 s,
    /// has passed. Each login costs etcd a bcrypt check; every keepalive, watch and campaign
    /// used to send its own.
    @Test func aRefusedLoginIsNotRepeatedByEveryCall() async throws {
        try await Self.withSecuredCluster { cluster in
            try await withGatewayClient(
                Self.settings(cluster, user: "rotator", password: "not-the-password"), livenessInterval: .seconds(30)
            ) { client in
                for _ in 0..<20 {
                    let refused = await Self.failure { () async throws(ClusterStoreError) in try await client.range(prefix: Self.prefix + "/") }
                    #expect(refused?.code == .denied)
                }
                // One login, or a few on a machine that stalls for seconds between calls; not 20.
                #expect(client.loginsSent < 5, "\(client.loginsSent) logins for 20 calls")
            }
        }
    }

    /// etcd's JWT tokens carry the auth revision they were issued at: after any change to
    /// users or roles, anyone's, etcd refuses them ("revision of auth store is old"). The
    /// client logs in again, as on an expired token, instead of failing until the token's TTL.
    @Test func aJWTOlderThanTheLastAuthChangeIsRenewed() async throws {
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("sr-jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: keys) }
        let status = try runQuietly(
            "set -e; cd '\(keys.path)'; openssl ecparam -genkey -name prime256v1 -noout -out jwt.key; openssl ec -in jwt.key -pubout -out jwt.pub")
        try #require(status == 0, "openssl could not make the JWT keys")
        let jwt = "jwt,pub-key=\(keys.path)/jwt.pub,priv-key=\(keys.path)/jwt.key,sign-method=ES256,ttl=5m"
        try await Self.withSecuredCluster(token: ["--auth-token", jwt]) { cluster in
            try await withGatewayClient(Self.settings(cluster, user: "rotator"), livenessInterval: .seconds(30)) { client in
                #expect(try await client.put("\(Self.prefix)/apps/a", value: [1], ifModRevision: 0))
                _ = try cluster.etcdctl(["role", "add", "another-team"], user: "root:root-pw")
                #expect(try await client.put("\(Self.prefix)/apps/b", value: [1], ifModRevision: 0))
                #expect(client.loginsSent == 2)
            }
        }
    }

    /// A client certificate with a CommonName: etcd's gateway refuses it once auth is on, and
    /// both the client and `check-config` say so.
    @Test func clientCertificateWithACommonNameIsExplained() async throws {
        try await Self.withSecuredCluster { cluster in
            let settings = Self.settings(cluster, user: "rotator", certificate: "named")
            try await withGatewayClient(settings) { client in
                let refused = try #require(await Self.failure { () async throws(ClusterStoreError) in try await client.get(Self.prefix + "/x") })
                #expect(refused.code == .denied)
                #expect(refused.description.contains("without a CN"))
            }
            let tls = try #require(cluster.tls)
            try ConfigFixtures.write("rotator-pw\n", to: tls.directory.appendingPathComponent("password"))
            let config = """
                [genauth]
                access_key_id = "ak"
                [[app]]
                id = "app-1"
                name = "one"
                [cluster]
                endpoints = ["\(cluster.endpoints[0])"]
                ca_file = "\(tls.path("ca.pem"))"
                cert_file = "\(tls.path("named.pem"))"
                key_file = "\(tls.path("named.key"))"
                user = "rotator"
                password_file = "\(tls.path("password"))"
                """
            let errors = ConfigFixtures.diagnostics(config).filter { $0.severity == .error }
            #expect(errors.contains { $0.keyPath == "cluster.cert_file" && $0.message.contains("CommonName \"rotator\"") }, "\(errors)")
        }
    }

    /// A member certificate with serverAuth only: etcdctl works, every gateway call fails with
    /// "connection closed"; the client's error says which extended key usage is missing.
    @Test func serverCertificateWithoutClientAuthIsExplained() async throws {
        guard EtcdTestCluster.available else { return }
        try await withEtcdCluster(tls: { try EtcdTLSFixture(in: $0, serverUsage: "serverAuth") }, waitUntilHealthy: false) { cluster in
            var settings = ClusterSettings(endpoints: cluster.endpoints, prefix: Self.prefix, host: "test")
            cluster.tls?.apply(to: &settings)
            try await withGatewayClient(settings) { client in
                var last: ClusterStoreError?
                try await waitUntil(deadline: .seconds(20), "\(String(describing: last))") {
                    last = await Self.failure { () async throws(ClusterStoreError) in try await client.get(Self.prefix + "/x") }
                    return last?.description.contains("clientAuth") == true
                }
                #expect(last?.description.contains("extendedKeyUsage = serverAuth, clientAuth") == true)
            }
        }
    }
}
