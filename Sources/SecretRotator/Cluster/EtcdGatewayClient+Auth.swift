#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// etcd's access control on the client side: one login shared by every call, the token renewed
/// when etcd says it is stale, a refused login paused, and etcd's refusals named.
extension EtcdGatewayClient {
    /// `call`, sent once more when etcd found the token invalid or expired: `call` has dropped
    /// it, so the second attempt authenticates first. A second refusal is thrown.
    func callRenewingToken(
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
    func call(
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
    func authorization(endpoint: String) async throws(ClusterStoreError) -> String? {
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
    func authenticate(_ login: (user: String, password: SecretValue), endpoint: String) async -> Result<String?, ClusterStoreError> {
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
    func accessProblem(_ error: String, path: String, endpoint: String, sentToken: String?) -> ClusterStoreError? {
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
}
