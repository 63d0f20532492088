#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// `ClusterStore` over etcd's v3 JSON gateway (grpc-gateway, served on every member's client
/// URL): async-http-client, which the daemon already uses for GenAuth, instead of grpc-swift
/// and code generated from etcd's protos; watches are streamed HTTP responses, one JSON
/// object per line. Keys and values travel base64-encoded and 64-bit numbers as strings
/// (etcd's `api/etcdserverpb/rpc.proto`, `v3election.proto`; proto3 JSON mapping).
///
/// Unary calls go to the member that answered last and move on to the next one when it
/// cannot be reached or does not answer within `unaryTimeout`; a watch or campaign uses one
/// member and ends with an error when it fails, and the caller starts a new one (which then
/// goes to the next member).
///
/// With `[cluster] user`, every call carries the token `/v3/auth/authenticate` gave for that
/// user in its `Authorization` header (the gateway ignores a client certificate's name, so this
/// is the only identity etcd's access control sees through it). The token is fetched on the
/// first call, shared by all, and dropped when etcd calls it invalid (a simple token expires
/// `--auth-token-ttl` after its last use, 300 s by default); the call that met the invalid
/// token authenticates again and is sent once more, on the same member.
public final class EtcdGatewayClient: ClusterStore {
    let endpoints: [String]
    /// Every key this client touches lives under it; the liveness read uses `<prefix>/`, a key
    /// a role limited to the prefix may read.
    let prefix: String
    /// The etcd user and password of `[cluster]`; nil: calls carry no token.
    let login: (user: String, password: SecretValue)?
    let token = Mutex<AuthToken>(.missing)
    /// The pause after the last refused login; nil once a login succeeded.
    let loginPause = Mutex<Duration?>(nil)
    /// Logins sent to etcd so far (`/v3/auth/authenticate`), for tests and diagnosis.
    var loginsSent: Int { logins.withLock { $0 } }
    let logins = Mutex(0)
    /// The longest wait between two logins etcd refused.
    static let longestLoginPause: Duration = .seconds(30)
    let http: HTTPClient
    let unaryTimeout: Duration
    /// The member calls go to first; a random start spreads a fleet over the members.
    let preferred: Mutex<Int>
    /// How often a member holding a watch or a campaign is asked whether it still answers
    /// (with quorum): a frozen or cut-off member sends no reset, and without this a watch on it
    /// would wait silently forever.
    let livenessInterval: Duration
    /// Largest answer or watch line accepted: etcd's own default request limit is 1.5 MiB.
    static let maximumAnswer = 4 * 1024 * 1024

    /// - Parameters:
    ///   - settings: endpoints and TLS files of `[cluster]`.
    ///   - unaryTimeout: per attempt, per member; keep it under a third of the lease TTL so a
    ///     keepalive to a frozen member leaves time for the next one.
    /// - Throws: `ClusterStoreError.badAnswer` when a TLS file cannot be read as PEM.
    ///   - livenessInterval: how often the member under a watch or campaign must answer.
    ///   - firstEndpoint: the index of the member to try first; random when nil.
    public init(
        settings: ClusterSettings, unaryTimeout: Duration, livenessInterval: Duration = .seconds(2), firstEndpoint: Int? = nil
    ) throws(ClusterStoreError) {
        self.endpoints = settings.endpoints
        self.prefix = settings.prefix
        self.login = settings.user.flatMap { user in settings.password.map { (user, $0) } }
        self.unaryTimeout = unaryTimeout
        self.livenessInterval = livenessInterval
        self.preferred = Mutex(firstEndpoint ?? Int.random(in: 0..<max(1, settings.endpoints.count)))
        var configuration = HTTPClient.Configuration()
        if settings.endpoints.contains(where: { $0.hasPrefix("https://") }) {
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                if let caFile = settings.caFile {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
                }
                if let certFile = settings.certFile, let keyFile = settings.keyFile {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
                }
            } catch {
                throw ClusterStoreError(.badAnswer, "cannot read the etcd TLS files", cause: error)
            }
            configuration.tlsConfiguration = tls
        }
        // No read timeout: a watch or a campaign waits for as long as it takes. Unary calls
        // carry their own deadline.
        configuration.timeout = .init(connect: .seconds(2), read: nil)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        // A campaign and a watch each hold a connection for as long as they last.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 16
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: - ClusterStore

    public func grantLease(ttl: Duration) async throws(ClusterStoreError) -> Int64 {
        let answer = try await unary("/v3/lease/grant", ["TTL": .string("\(ttl.components.seconds)")])
        guard let id = answer.int64("ID"), id != 0 else {
            throw ClusterStoreError(.badAnswer, "lease grant answered without a lease id", etcdSaid: answer.errorText)
        }
        return id
    }

    public func keepAlive(lease: Int64) async throws(ClusterStoreError) -> Bool {
        let answer = try await unary("/v3/lease/keepalive", ["ID": .string("\(lease)")])
        // {"result": {"ID": ..., "TTL": "10"}}; a lease etcd no longer has comes back without TTL.
        guard let result = answer.object("result") else {
            throw ClusterStoreError(.badAnswer, "lease keepalive answered without a result", etcdSaid: answer.errorText)
        }
        return (result.int64("TTL") ?? 0) > 0
    }

    public func revoke(lease: Int64) async throws(ClusterStoreError) {
        _ = try await unary("/v3/lease/revoke", ["ID": .string("\(lease)")], allowError: true)
    }

    public func campaign(election: String, lease: Int64, value: [UInt8]) async throws(ClusterStoreError) -> ClusterKeyValue {
        let body: [String: JSONValue] = [
            "name": .string(Self.base64(election)), "lease": .string("\(lease)"), "value": .string(Self.base64(value)),
        ]
        let endpoint = currentEndpoint()
        let answer: JSONObject
        do {
            answer = try await whileAlive(endpoint) { () async throws(ClusterStoreError) -> JSONObject in
                try await self.callRenewingToken("/v3/election/campaign", body, endpoint: endpoint, deadline: nil)
            }
        } catch {
            advance(from: endpoint)
            throw error
        }
        guard let leader = answer.object("leader"), let key = leader.bytes("key"), let revision = leader.int64("rev") else {
            throw ClusterStoreError(.rejected, "campaign failed", etcdSaid: answer.errorText)
        }
        return ClusterKeyValue(
            key: String(decoding: key, as: UTF8.self), value: value, createRevision: revision, modRevision: revision,
            lease: leader.int64("lease") ?? lease)
    }

    public func proclaim(election: String, leader: ClusterKeyValue, value: [UInt8]) async throws(ClusterStoreError) {
        let key: [String: JSONValue] = [
            "name": .string(Self.base64(election)), "key": .string(Self.base64(leader.key)),
            "rev": .string("\(leader.createRevision)"), "lease": .string("\(leader.lease)"),
        ]
        _ = try await unary("/v3/election/proclaim", ["leader": .object(key), "value": .string(Self.base64(value))])
    }

    public func leader(election: String) async throws(ClusterStoreError) -> ClusterKeyValue? {
        let answer = try await unary("/v3/election/leader", ["name": .string(Self.base64(election))], allowError: true)
        if let kv = answer.object("kv") { return Self.keyValue(kv) }
        // etcd answers "election: no leader" as an error (gRPC code 2).
        if let error = answer.errorText, error.contains("no leader") { return nil }
        if answer.errorText != nil {
            throw ClusterStoreError(.rejected, "cannot read the election's leader", etcdSaid: answer.errorText)
        }
        return nil
    }

    public func range(prefix: String) async throws(ClusterStoreError) -> (values: [ClusterKeyValue], revision: Int64) {
        let answer = try await unary(
            "/v3/kv/range", ["key": .string(Self.base64(prefix)), "range_end": .string(Self.base64(Self.rangeEnd(prefix)))])
        let values = (answer.array("kvs") ?? []).compactMap { $0.objectValue.flatMap { Self.keyValue(JSONObject($0)) } }
        guard let revision = answer.object("header")?.int64("revision") else {
            throw ClusterStoreError(.badAnswer, "range answered without a revision", etcdSaid: answer.errorText)
        }
        return (values, revision)
    }

    public func get(_ key: String) async throws(ClusterStoreError) -> ClusterKeyValue? {
        let answer = try await unary("/v3/kv/range", ["key": .string(Self.base64(key))])
        guard answer.object("header") != nil else {
            throw ClusterStoreError(.badAnswer, "range answered without a header", etcdSaid: answer.errorText)
        }
        return (answer.array("kvs") ?? []).first?.objectValue.flatMap { Self.keyValue(JSONObject($0)) }
    }

    public func put(_ key: String, value: [UInt8], ifKey guardKey: String, hasCreateRevision createRevision: Int64)
        async throws(ClusterStoreError) -> Int64?
    {
        let answer = try await txn(
            compare: ["key": .string(Self.base64(guardKey)), "target": "CREATE", "result": "EQUAL", "create_revision": .string("\(createRevision)")],
            success: [["request_put": .object(["key": .string(Self.base64(key)), "value": .string(Self.base64(value))])]])
        guard answer.bool("succeeded") == true else { return nil }
        return answer.object("header")?.int64("revision")
    }

    public func put(_ key: String, value: [UInt8], ifModRevision modRevision: Int64) async throws(ClusterStoreError) -> Bool {
        let answer = try await txn(
            compare: ["key": .string(Self.base64(key)), "target": "MOD", "result": "EQUAL", "mod_revision": .string("\(modRevision)")],
            success: [["request_put": .object(["key": .string(Self.base64(key)), "value": .string(Self.base64(value))])]])
        return answer.bool("succeeded") == true
    }

    public func delete(_ key: String, ifModRevision modRevision: Int64) async throws(ClusterStoreError) -> Bool {
        let answer = try await txn(
            compare: ["key": .string(Self.base64(key)), "target": "MOD", "result": "EQUAL", "mod_revision": .string("\(modRevision)")],
            success: [["request_delete_range": .object(["key": .string(Self.base64(key))])]])
        return answer.bool("succeeded") == true
    }

    public func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<[ClusterEvent], any Error> {
        let endpoint = currentEndpoint()
        let body: [String: JSONValue] = [
            "create_request": .object([
                "key": .string(Self.base64(prefix)), "range_end": .string(Self.base64(Self.rangeEnd(prefix))),
                "start_revision": .string("\(revision)"),
            ])
        ]
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [ClusterEvent].self)
        let task = Task {
            do {
                try await self.whileAlive(endpoint) { () async throws(ClusterStoreError) in
                    do throws(ClusterStoreError) {
                        try await self.streamWatch(endpoint: endpoint, body: body, into: continuation)
                    } catch where error.code == .unauthenticated {
                        // Refused at creation (nothing was delivered yet): once more with a new token.
                        try await self.streamWatch(endpoint: endpoint, body: body, into: continuation)
                    }
                }
                continuation.finish(throwing: ClusterStoreError(.watchEnded, "the watch stream ended", endpoint: endpoint))
            } catch {
                self.advance(from: endpoint)
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

}

/// The token `EtcdGatewayClient` sends: none yet (or dropped as invalid), being fetched, one
/// held, none needed because etcd's access control is off, or none for a while after etcd
/// refused the login.
enum AuthToken: Sendable {
    case missing
    case authenticating(Task<Result<String?, ClusterStoreError>, Never>)
    case held(String)
    case authDisabled
    /// etcd refused the login (a wrong password, a deleted user): until `retryAt` every call
    /// fails with `error` without asking etcd, which checks each password with bcrypt.
    case refused(error: ClusterStoreError, retryAt: ContinuousClock.Instant)

    /// Whether this is the token `value` (a refused or missing state holds none).
    func holds(_ value: String?) -> Bool {
        switch self {
        case .held(let held): value != nil && held == value
        default: false
        }
    }
}

/// What a call does about its token: send this one (nil: none), wait for the authentication
/// under way, or fail with the login's refusal.
enum AuthTokenWait: Sendable {
    case ready(String?)
    case wait(Task<Result<String?, ClusterStoreError>, Never>)
    case refused(ClusterStoreError)
}
