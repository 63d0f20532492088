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
    private let endpoints: [String]
    /// Every key this client touches lives under it; the liveness read uses `<prefix>/`, a key
    /// a role limited to the prefix may read.
    private let prefix: String
    /// The etcd user and password of `[cluster]`; nil: calls carry no token.
    private let login: (user: String, password: SecretValue)?
    private let token = Mutex<AuthToken>(.missing)
    /// The pause after the last refused login; nil once a login succeeded.
    private let loginPause = Mutex<Duration?>(nil)
    /// Logins sent to etcd so far (`/v3/auth/authenticate`), for tests and diagnosis.
    var loginsSent: Int { logins.withLock { $0 } }
    private let logins = Mutex(0)
    /// The longest wait between two logins etcd refused.
    static let longestLoginPause: Duration = .seconds(30)
    private let http: HTTPClient
    private let unaryTimeout: Duration
    /// The member calls go to first; a random start spreads a fleet over the members.
    private let preferred: Mutex<Int>
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

    // MARK: - Wire

    /// Runs a long call (a watch, a campaign) on `endpoint` while that member answers a
    /// linearizable read (which needs quorum) every `livenessInterval`; when it stops
    /// answering, the call is cancelled and fails, so the caller moves to another member.
    private func whileAlive<T: Sendable>(
        _ endpoint: String, _ body: @escaping @Sendable () async throws(ClusterStoreError) -> T
    ) async throws(ClusterStoreError) -> T {
        let result: Result<T, ClusterStoreError> = await withTaskGroup(of: Result<T, ClusterStoreError>?.self) { group in
            group.addTask {
                do throws(ClusterStoreError) {
                    return .success(try await body())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await QuietSleep.sleep(for: self.livenessInterval)
                    if Task.isCancelled { return nil }
                    do throws(ClusterStoreError) {
                        let answer = try await self.callRenewingToken(
                            "/v3/kv/range", ["key": .string(Self.base64(self.prefix + "/"))], endpoint: endpoint,
                            deadline: self.unaryTimeout)
                        if answer.object("header") == nil {
                            throw ClusterStoreError(.rejected, "etcd refused the liveness read", etcdSaid: answer.errorText)
                        }
                    } catch {
                        if Task.isCancelled { return nil }
                        return .failure(
                            ClusterStoreError(.timeout, "the member stopped answering", endpoint: endpoint, cause: error))
                    }
                }
                return nil
            }
            var outcome: Result<T, ClusterStoreError>?
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            return outcome ?? .failure(ClusterStoreError(.watchEnded, "cancelled", endpoint: endpoint))
        }
        return try result.get()
    }

    private func streamWatch(
        endpoint: String, body: [String: JSONValue], into continuation: AsyncThrowingStream<[ClusterEvent], any Error>.Continuation
    ) async throws(ClusterStoreError) {
        let sentToken = try await authorization(endpoint: endpoint)
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(endpoint + "/v3/watch", body, token: sentToken), deadline: .distantFuture)
        } catch {
            throw ClusterStoreError(.unreachable, "cannot start a watch", endpoint: endpoint, cause: error)
        }
        guard response.status == .ok else {
            let text = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
            let error = JSONValue.parse(Array(text.utf8))?.objectValue.flatMap { JSONObject($0).errorText } ?? text
            throw accessProblem(error, path: "/v3/watch", endpoint: endpoint, sentToken: sentToken)
                ?? ClusterStoreError(.rejected, "watch refused with HTTP \(response.status.code)", endpoint: endpoint)
        }
        var pending: [UInt8] = []
        do {
            for try await chunk in response.body {
                pending.append(contentsOf: chunk.readableBytesView)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    let events: [ClusterEvent]?
                    do {
                        events = try Self.watchEvents(line, endpoint: endpoint)
                    } catch {
                        // A watch created with an expired token, or on a range the role may not read.
                        throw accessProblem(error.etcdText ?? "", path: "/v3/watch", endpoint: endpoint, sentToken: sentToken) ?? error
                    }
                    if let events, !events.isEmpty { continuation.yield(events) }
                }
                if pending.count > Self.maximumAnswer {
                    throw ClusterStoreError(.badAnswer, "a watch message is larger than 4 MiB", endpoint: endpoint)
                }
            }
        } catch {
            throw (error as? ClusterStoreError)
                ?? ClusterStoreError(.watchEnded, "the watch stream broke", endpoint: endpoint, cause: error)
        }
    }

    /// One line of a watch stream: the events it carries (none for "created" and progress
    /// messages), or an error when etcd cancelled the watch (e.g. a compacted revision).
    static func watchEvents(_ line: [UInt8], endpoint: String) throws(ClusterStoreError) -> [ClusterEvent]? {
        guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) else { return nil }
        guard let object = JSONValue.parse(line)?.objectValue else {
            throw ClusterStoreError(.badAnswer, "a watch message is not JSON", endpoint: endpoint)
        }
        if let error = object["error"] {
            throw ClusterStoreError(.rejected, "etcd ended the watch", endpoint: endpoint, etcdSaid: JSONObject(error.objectValue ?? [:]).errorText ?? "error")
        }
        guard let result = JSONObject(object).object("result") else {
            throw ClusterStoreError(.badAnswer, "a watch message has no result", endpoint: endpoint)
        }
        if result.bool("canceled") == true {
            let reason = result.string("cancel_reason") ?? (result.int64("compact_revision").map { "revision compacted up to \($0)" } ?? "cancelled")
            throw ClusterStoreError(.rejected, "etcd cancelled the watch", endpoint: endpoint, etcdSaid: reason)
        }
        return (result.array("events") ?? []).compactMap { event -> ClusterEvent? in
            guard let event = event.objectValue, let kv = JSONObject(event).object("kv"), let value = keyValue(kv) else { return nil }
            let kind: ClusterEvent.Kind = JSONObject(event).string("type") == "DELETE" ? .delete : .put
            return ClusterEvent(kind: kind, value: value)
        }
    }

    private func txn(compare: [String: JSONValue], success: [[String: JSONValue]]) async throws(ClusterStoreError) -> JSONObject {
        try await unary("/v3/kv/txn", ["compare": .array([.object(compare)]), "success": .array(success.map { .object($0) })])
    }

    private func currentEndpoint() -> String {
        endpoints[preferred.withLock { $0 } % endpoints.count]
    }

    private func advance(from endpoint: String) {
        guard let index = endpoints.firstIndex(of: endpoint) else { return }
        preferred.withLock { current in
            if current % endpoints.count == index { current = (index + 1) % endpoints.count }
        }
    }

    /// Tries each member once, starting with the last that answered, each within `unaryTimeout`.
    /// A refusal by etcd's access control (`.denied`) ends it at once: every member has the
    /// same users and roles.
    private func unary(_ path: String, _ body: [String: JSONValue], allowError: Bool = false) async throws(ClusterStoreError) -> JSONObject {
        var last: ClusterStoreError?
        for _ in 0..<endpoints.count {
            let endpoint = currentEndpoint()
            do {
                let answer = try await callRenewingToken(path, body, endpoint: endpoint, deadline: unaryTimeout)
                if !allowError, let error = answer.errorText {
                    // "etcdserver: no leader" and friends: another member may have quorum.
                    last = ClusterStoreError(.rejected, "etcd refused \(path)", endpoint: endpoint, etcdSaid: error)
                    advance(from: endpoint)
                    continue
                }
                return answer
            } catch where error.code == .denied {
                throw error
            } catch {
                last = error
                advance(from: endpoint)
            }
        }
        throw last ?? ClusterStoreError(.unreachable, "no etcd endpoint configured")
    }

    /// `call`, sent once more when etcd found the token invalid or expired: `call` has dropped
    /// it, so the second attempt authenticates first. A second refusal is thrown.
    private func callRenewingToken(
        _ path: String, _ body: [String: JSONValue], endpoint: String, deadline: Duration?
    ) async throws(ClusterStoreError) -> JSONObject {
        do {
            return try await call(path, body, endpoint: endpoint, deadline: deadline)
        } catch where error.code == .unauthenticated {
            return try await call(path, body, endpoint: endpoint, deadline: deadline)
        }
    }

    /// One request to one member. Throws `.unauthenticated` (token dropped) when etcd found the
    /// token invalid, `.denied` when its access control refused; other errors etcd answers are
    /// returned in the answer for the caller to judge.
    private func call(
        _ path: String, _ body: [String: JSONValue], endpoint: String, deadline: Duration?, authenticated: Bool = true
    ) async throws(ClusterStoreError) -> JSONObject {
        let sentToken = authenticated ? try await authorization(endpoint: endpoint) : nil
        let nioDeadline: NIODeadline = deadline.map { .now() + .nanoseconds(Int64($0.components.seconds) * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000) } ?? .distantFuture
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(endpoint + path, body, token: sentToken), deadline: nioDeadline)
        } catch {
            let timedOut = (error as? HTTPClientError) == .deadlineExceeded || (error as? HTTPClientError) == .connectTimeout
            throw ClusterStoreError(timedOut ? .timeout : .unreachable, "\(path) failed", endpoint: endpoint, cause: error)
        }
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: Self.maximumAnswer)
        } catch {
            throw ClusterStoreError(.unreachable, "\(path): the answer broke off", endpoint: endpoint, cause: error)
        }
        guard let object = JSONValue.parse(Array(bytes.readableBytesView))?.objectValue else {
            throw accessProblem(String(buffer: bytes), path: path, endpoint: endpoint, sentToken: sentToken)
                ?? ClusterStoreError(.badAnswer, "\(path) answered HTTP \(response.status.code) without JSON", endpoint: endpoint)
        }
        let answer = JSONObject(object)
        if let error = answer.errorText, let problem = accessProblem(error, path: path, endpoint: endpoint, sentToken: sentToken) {
            throw problem
        }
        return answer
    }

    /// The token to send to `endpoint`, authenticating first when none is held; nil without a
    /// configured user or while etcd's access control is off.
    /// Every caller that finds no token waits for the same authentication (one bcrypt check
    /// on etcd per client, not one per call in flight).
    private func authorization(endpoint: String) async throws(ClusterStoreError) -> String? {
        guard let login else { return nil }
        let next: AuthTokenWait = token.withLock { state in
            switch state {
            case .held(let value): return .ready(value)
            case .authDisabled: return .ready(nil)
            case .authenticating(let task): return .wait(task)
            case .refused(let error, let retryAt) where ContinuousClock.now < retryAt: return .refused(error)
            case .missing, .refused:
                let task = Task { await self.authenticate(login, endpoint: endpoint) }
                state = .authenticating(task)
                return .wait(task)
            }
        }
        switch next {
        case .ready(let value): return value
        case .wait(let task): return try await task.value.get()
        case .refused(let error): throw error
        }
    }

    /// `POST /v3/auth/authenticate`; records the token (or that access control is off), or
    /// forgets the attempt when it failed so that the next call tries again; a refusal
    /// (`.denied`) is kept for a pause instead, so calls meanwhile fail without asking etcd.
    private func authenticate(_ login: (user: String, password: SecretValue), endpoint: String) async -> Result<String?, ClusterStoreError> {
        let outcome: Result<String?, ClusterStoreError>
        logins.withLock { $0 += 1 }
        do throws(ClusterStoreError) {
            // Longer than a unary call's deadline: etcd checks the password with bcrypt, which
            // takes a while on a loaded member, and a fleet starting at once authenticates at once.
            let answer = try await call(
                "/v3/auth/authenticate", ["name": .string(login.user), "password": .string(login.password.exposed)],
                endpoint: endpoint, deadline: max(unaryTimeout, .seconds(3)), authenticated: false)
            if let value = answer.string("token"), !value.isEmpty {
                outcome = .success(value)
            } else if let error = answer.errorText, error.contains("authentication is not enabled") {
                // Access control off: calls go without a token until etcd asks for one.
                outcome = .success(nil)
            } else {
                outcome = .failure(
                    ClusterStoreError(
                        .rejected, "etcd did not authenticate user \"\(login.user)\"", endpoint: endpoint,
                        etcdSaid: answer.errorText ?? "no token in the answer"))
            }
        } catch {
            outcome = .failure(error)
        }
        token.withLock { state in
            switch outcome {
            case .success(let value?):
                state = .held(value)
                loginPause.withLock { $0 = nil }
            case .success(nil):
                state = .authDisabled
                loginPause.withLock { $0 = nil }
            case .failure(let error) where error.code == .denied:
                // Refused, not unreachable: wait before asking again, 1 s doubling to 30 s,
                // however many calls come meanwhile (each login costs etcd a bcrypt check).
                let pause = loginPause.withLock { last in
                    let next = min((last ?? .milliseconds(500)) * 2, Self.longestLoginPause)
                    last = next
                    return next
                }
                state = .refused(error: error, retryAt: .now + pause)
            case .failure:
                state = .missing
            }
        }
        return outcome
    }

    /// What etcd's access control said, as an error that names the user and the prefix (never
    /// the password or token), or nil when `error` is not about access. An invalid token is
    /// dropped (only if it is still the one sent) so the next call authenticates again.
    private func accessProblem(_ error: String, path: String, endpoint: String, sentToken: String?) -> ClusterStoreError? {
        let who = login.map { "etcd user \"\($0.user)\"" } ?? "this client (no [cluster] user)"
        let grant = "etcdctl role grant-permission ROLE --prefix=true readwrite \(prefix)/"
        // "revision of auth store is old": a JWT token issued before the last change to etcd's
        // users or roles (anyone's); etcd's own client logs in again on it, as on an invalid one.
        if error.contains("invalid auth token") || error.contains("revision of auth store is old")
            || (login != nil && error.contains("user name is empty"))
        {
            // "user name is empty": access control was turned on after this client found it off.
            token.withLock { current in
                if case .authDisabled = current { current = .missing }
                if current.holds(sentToken) { current = .missing }
            }
            return ClusterStoreError(.unauthenticated, "\(path): the auth token of \(who) is invalid or expired", endpoint: endpoint, etcdSaid: error)
        }
        if error.contains("user name is empty") {
            return ClusterStoreError(
                .denied,
                "etcd has access control enabled (auth enable) and [cluster] names no user: set user and password_credential or password_file; the user's role needs readwrite on \(prefix)/",
                endpoint: endpoint, etcdSaid: error)
        }
        if error.contains("authentication failed") {
            return ClusterStoreError(
                .denied, "etcd refused the password of \(who): check the user and its [cluster] password source (etcdctl user passwd)",
                endpoint: endpoint, etcdSaid: error)
        }
        if error.contains("permission denied") {
            return ClusterStoreError(
                .denied, "\(who) may not use \(path) under \(prefix)/: its role needs readwrite on the prefix (\(grant))",
                endpoint: endpoint, etcdSaid: error)
        }
        if error.hasPrefix("CommonName of client") {
            return ClusterStoreError(
                .denied,
                "etcd's JSON gateway refuses every request made with a client certificate that has a CommonName while access control is enabled: issue cert_file without a CN (e.g. openssl -subj /O=secret-rotator); the etcd user comes from [cluster] user",
                endpoint: endpoint, etcdSaid: error.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if error == "connection closed" && endpoint.hasPrefix("https://") {
            // The member answered us over TLS, but its gateway could not reach the member's own
            // gRPC port, which it dials as a client with the member's server certificate.
            return ClusterStoreError(
                .unreachable,
                "etcd's JSON gateway cannot reach its own member: the member's server certificate probably lacks the clientAuth extended key usage (the gateway dials the member with it as a client certificate, so it needs extendedKeyUsage = serverAuth, clientAuth; etcdctl works without it)",
                endpoint: endpoint, etcdSaid: error)
        }
        return nil
    }

    private func request(_ url: String, _ body: [String: JSONValue], token: String? = nil) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: token) }
        request.body = .bytes(ByteBuffer(bytes: JSONValue.object(body).serialized()))
        return request
    }

    static func keyValue(_ object: JSONObject) -> ClusterKeyValue? {
        guard let key = object.bytes("key") else { return nil }
        return ClusterKeyValue(
            key: String(decoding: key, as: UTF8.self), value: object.bytes("value") ?? [],
            createRevision: object.int64("create_revision") ?? 0, modRevision: object.int64("mod_revision") ?? 0,
            lease: object.int64("lease") ?? 0)
    }

    /// etcd's prefix range end: the prefix with its last byte incremented (`clientv3.GetPrefixRangeEnd`).
    static func rangeEnd(_ prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]
    }

    static func base64(_ text: String) -> String { base64(Array(text.utf8)) }
    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
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
private enum AuthTokenWait: Sendable {
    case ready(String?)
    case wait(Task<Result<String?, ClusterStoreError>, Never>)
    case refused(ClusterStoreError)
}
