#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// The mock's whole world: user pool, access keys, apps and their secrets, issued tokens,
/// pending faults and the request log. Every method is safe to call from any thread; the
/// NIO handler and in-process tests share one instance.
public final class GenAuthMockState: Sendable {
    struct App {
        var appId: String
        var appName: String
        var secret: String
        var rotationCount: Int
    }

    struct Token {
        var userPoolId: String
        var expiresAtUnix: Int
        var revoked: Bool
    }

    struct Inner {
        var userPoolId: String
        var accessKeys: [String: MockSeed.AccessKey]
        var appOrder: [String]
        var apps: [String: App]
        var tokens: [String: Token] = [:]
        var tokenExpiresIn: Int
        var faults: [MockFaultRule] = []
        var log: [MockRequestRecord] = []
        var sequence = 0
        var issuedTokens: [String] = []
        var issuedSecrets: [String] = []
        /// Access key secrets replaced by `replaceAccessKeySecret`: still secrets for a leak check.
        var retiredAccessKeySecrets: [String] = []
        /// `/oidc/token` calls per app id (`MockClientCredentials`).
        var clientCredentials: [String: ClientCredentialsCalls] = [:]
    }

    private let inner: Mutex<Inner>
    private let savePath: String?

    public init(seed: MockSeed, savePath: String? = nil) {
        var apps: [String: App] = [:]
        var order: [String] = []
        var issued: [String] = []
        for app in seed.apps where apps[app.appId] == nil {
            let secret = app.secret ?? MockJWT.randomHex(bytes: 16)
            apps[app.appId] = App(
                appId: app.appId, appName: app.appName ?? app.appId, secret: secret,
                rotationCount: app.rotationCount ?? 0)
            order.append(app.appId)
            issued.append(secret)
        }
        var keys: [String: MockSeed.AccessKey] = [:]
        for key in seed.accessKeys { keys[key.accessKeyId] = key }
        var state = Inner(
            userPoolId: seed.userPoolId, accessKeys: keys, appOrder: order, apps: apps,
            tokenExpiresIn: seed.tokenExpiresIn ?? 7200)
        state.issuedSecrets = issued
        self.inner = Mutex(state)
        self.savePath = savePath
    }

    // MARK: programmatic control (in-process tests)

    public func inject(_ rule: MockFaultRule) {
        inner.withLock { $0.faults.append(rule) }
    }

    public func clearFaults() {
        inner.withLock { $0.faults.removeAll() }
    }

    /// Rules with requests left to hit.
    public func pendingFaults() -> [MockFaultRule] {
        inner.withLock { $0.faults.filter { $0.count > 0 } }
    }

    public func currentSecret(appId: String) -> String? {
        inner.withLock { $0.apps[appId]?.secret }
    }

    public func rotationCount(appId: String) -> Int {
        inner.withLock { $0.apps[appId]?.rotationCount ?? 0 }
    }

    public func addApp(appId: String, appName: String? = nil, secret: String? = nil) {
        inner.withLock { state in
            let value = secret ?? MockJWT.randomHex(bytes: 16)
            if state.apps[appId] == nil { state.appOrder.append(appId) }
            state.apps[appId] = App(appId: appId, appName: appName ?? appId, secret: value, rotationCount: 0)
            state.issuedSecrets.append(value)
        }
    }

    public func requestLog() -> [MockRequestRecord] {
        inner.withLock { $0.log }
    }

    public func clearRequestLog() {
        inner.withLock { $0.log.removeAll() }
    }

    /// How often an app's backend asked `/oidc/token` for a token with the current secret
    /// (`accepted`) and with any other (`refused`): a consumer's view of a rotation.
    public struct ClientCredentialsCalls: Sendable, Equatable {
        public var accepted = 0
        public var refused = 0
        public init(accepted: Int = 0, refused: Int = 0) {
            self.accepted = accepted
            self.refused = refused
        }
    }

    /// The `/oidc/token` counters of `appId` (zero when it never called).
    public func clientCredentialsCalls(appId: String) -> ClientCredentialsCalls {
        inner.withLock { $0.clientCredentials[appId] ?? ClientCredentialsCalls() }
    }

    /// Answers `POST /oidc/token` and counts it; never logged in the request log.
    func answerClientCredentials(_ request: MockHTTPRequest) -> MockHTTPResponse {
        inner.withLock { state in
            let (response, outcome) = MockClientCredentials.answer(request) { state.apps[$0]?.secret }
            switch outcome {
            case .accepted(let appId): state.clientCredentials[appId, default: ClientCredentialsCalls()].accepted += 1
            case .refused(let appId?) where state.apps[appId] != nil:
                state.clientCredentials[appId, default: ClientCredentialsCalls()].refused += 1
            case .refused, .malformed: break
            }
            return response
        }
    }

    /// Accepts one more access key (or replaces the one with the same id), e.g. a key an
    /// operator adds in the console before moving a client to it.
    public func addAccessKey(_ key: MockSeed.AccessKey) {
        inner.withLock { $0.accessKeys[key.accessKeyId] = key }
    }

    /// Rotates the secret of access key `accessKeyId`, as an operator does in the console: from
    /// now on only `secret` gets a token, and every token issued before is revoked. Returns
    /// false for an unknown key.
    @discardableResult
    public func replaceAccessKeySecret(_ accessKeyId: String, with secret: String) -> Bool {
        inner.withLock { state in
            guard let old = state.accessKeys[accessKeyId] else { return false }
            state.retiredAccessKeySecrets.append(old.accessKeySecret)
            state.accessKeys[accessKeyId]?.accessKeySecret = secret
            for key in state.tokens.keys { state.tokens[key]?.revoked = true }
            return true
        }
    }

    /// Makes every issued token invalid, as a key rotation or a server restart would.
    public func revokeAllTokens() {
        inner.withLock { state in
            for key in state.tokens.keys { state.tokens[key]?.revoked = true }
        }
    }

    public var tokenExpiresIn: Int {
        get { inner.withLock { $0.tokenExpiresIn } }
        set { inner.withLock { $0.tokenExpiresIn = newValue } }
    }

    /// How many management tokens were handed out.
    public var tokensIssued: Int {
        inner.withLock { $0.issuedTokens.count }
    }

    /// Every token, app secret and access key secret the mock ever handed out or accepted:
    /// what a leak check must not find anywhere.
    public func everyIssuedSecret() -> [String] {
        let issued = issuedValues()
        return issued.tokens + issued.secrets + issued.accessKeySecrets
    }

    public func issuedValues() -> (tokens: [String], secrets: [String], accessKeySecrets: [String]) {
        inner.withLock { state in
            (
                state.issuedTokens, state.issuedSecrets,
                (state.accessKeys.values.map(\.accessKeySecret) + state.retiredAccessKeySecrets).sorted()
            )
        }
    }

    public func snapshot() -> MockSeed {
        inner.withLock { state in
            MockSeed(
                userPoolId: state.userPoolId,
                accessKeys: state.accessKeys.keys.sorted().compactMap { state.accessKeys[$0] },
                apps: state.appOrder.compactMap { id in
                    state.apps[id].map {
                        MockSeed.App(appId: $0.appId, appName: $0.appName, secret: $0.secret, rotationCount: $0.rotationCount)
                    }
                },
                tokenExpiresIn: state.tokenExpiresIn)
        }
    }

    /// Saves the state to the `savePath` given at init; false when there is none.
    @discardableResult
    public func save() throws -> Bool {
        guard let savePath else { return false }
        try snapshot().save(path: savePath)
        return true
    }

    // MARK: the request pipeline, driven by the NIO handler

    /// Logs the request and takes the first matching fault (using up one of its count).
    func begin(_ request: MockHTTPRequest) -> MockFault? {
        let endpoint = MockEndpoint(path: request.path)
        let appId = Self.appId(of: request)
        return inner.withLock { state in
            var fault: MockFault?
            if let endpoint, let index = state.faults.firstIndex(where: { $0.matches(endpoint: endpoint, appId: appId) }) {
                fault = state.faults[index].fault
                state.faults[index].count -= 1
                if state.faults[index].count <= 0 { state.faults.remove(at: index) }
            }
            state.sequence += 1
            state.log.append(Self.record(request, sequence: state.sequence, appId: appId, fault: fault))
            return fault
        }
    }

    /// Answers `request`, showing `fault` if one was taken in `begin` (a delay is already over).
    func process(_ request: MockHTTPRequest, fault: MockFault?) -> MockOutcome {
        let lang = Language(request)
        let requestId = UUID().uuidString.lowercased()
        if let fault, !fault.appliesRequest {
            return .respond(refusal(for: fault, request: request, lang: lang, requestId: requestId))
        }
        let (response, rotated) = answer(request, lang: lang, requestId: requestId)
        // Best effort: a failed save must not turn a served rotation into an error.
        if rotated { _ = try? save() }
        guard let fault else { return .respond(response) }
        switch fault {
        case .dropAfterProcessing:
            return .drop
        case .malformedJSON:
            return .respond(
                .init(
                    status: 200, headers: [("Content-Type", "application/json; charset=utf-8")],
                    body: Array(#"{"statusCode":200,"message":"\#(lang.success)","requestId":"\#(requestId)","data":{"secret":"#.utf8)))
        case .oversizeBody(let bytes):
            let padding = String(repeating: "x", count: max(bytes, 1))
            return .respond(
                .json(
                    .object([
                        ("statusCode", .int(200)), ("message", .string(lang.success)), ("requestId", .string(requestId)),
                        ("data", .object([("secret", .string(MockJWT.randomHex(bytes: 16))), ("padding", .string(padding))])),
                    ])))
        case .emptySecret:
            return .respond(replacingSecret(in: request, with: "", lang: lang, requestId: requestId, fallback: response))
        case .invalidSecret:
            return .respond(
                replacingSecret(in: request, with: "bad secret\u{07}value", lang: lang, requestId: requestId, fallback: response))
        case .duplicateSecretKey:
            guard let secret = MockJSON.parse(response.body)?["data"]?["secret"]?.stringValue else { return .respond(response) }
            // Written by hand: MockJSON's encoder would keep only one of the two keys.
            let decoy = MockJWT.randomHex(bytes: 16)
            let body = #"{"statusCode":200,"message":"ok","requestId":"\#(requestId)","data":{"secret":"\#(decoy)","secret":"\#(secret)"}}"#
            return .respond(
                MockHTTPResponse(status: 200, headers: [("Content-Type", "application/json; charset=utf-8")], body: Array(body.utf8)))
        default:
            return .respond(response)
        }
    }

    // MARK: endpoints

    private func answer(_ request: MockHTTPRequest, lang: Language, requestId: String) -> (MockHTTPResponse, rotated: Bool) {
        guard let endpoint = MockEndpoint(path: request.path), endpoint.method == request.method else {
            return (envelope(status: 404, apiCode: nil, message: lang.notFoundPath, requestId: requestId, httpStatus: 404), false)
        }
        // Only the token endpoint is reachable without a token.
        if endpoint != .getManagementToken, let refusal = authenticate(request, lang: lang, requestId: requestId) {
            return (refusal, false)
        }
        switch endpoint {
        case .getManagementToken:
            return (issueToken(request, lang: lang, requestId: requestId), false)
        case .refreshApplicationSecret:
            guard let appId = Self.appId(of: request), !appId.isEmpty else {
                return (envelope(status: 400, apiCode: nil, message: lang.missingAppId, requestId: requestId), false)
            }
            let newSecret = MockJWT.randomHex(bytes: 16)
            let found = inner.withLock { state -> Bool in
                guard state.apps[appId] != nil else { return false }
                state.apps[appId]?.secret = newSecret
                state.apps[appId]?.rotationCount += 1
                state.issuedSecrets.append(newSecret)
                return true
            }
            guard found else { return (appNotFound(lang: lang, requestId: requestId), false) }
            return (success(.object([("secret", .string(newSecret))]), lang: lang, requestId: requestId), true)
        case .getApplicationSecret:
            guard let appId = Self.appId(of: request), !appId.isEmpty else {
                return (envelope(status: 400, apiCode: nil, message: lang.missingAppId, requestId: requestId), false)
            }
            guard let secret = currentSecret(appId: appId) else { return (appNotFound(lang: lang, requestId: requestId), false) }
            return (success(.object([("secret", .string(secret))]), lang: lang, requestId: requestId), false)
        case .getApplication:
            guard let appId = Self.appId(of: request), !appId.isEmpty else {
                return (envelope(status: 400, apiCode: nil, message: lang.missingAppId, requestId: requestId), false)
            }
            let record = inner.withLock { state in state.apps[appId].map { Self.applicationDTO($0, pool: state.userPoolId) } }
            guard let record else { return (appNotFound(lang: lang, requestId: requestId), false) }
            return (success(record, lang: lang, requestId: requestId), false)
        case .listApplications:
            let page = max(Int(request.queryValue("page") ?? "") ?? 1, 1)
            let limit = min(max(Int(request.queryValue("limit") ?? "") ?? 10, 1), 50)
            let (items, total) = inner.withLock { state -> ([MockJSON], Int) in
                let start = (page - 1) * limit
                let ids = start < state.appOrder.count ? Array(state.appOrder[start..<min(start + limit, state.appOrder.count)]) : []
                return (ids.compactMap { id in state.apps[id].map { Self.applicationDTO($0, pool: state.userPoolId) } }, state.appOrder.count)
            }
            return (success(.object([("list", .array(items)), ("totalCount", .int(total))]), lang: lang, requestId: requestId), false)
        }
    }

    private func issueToken(_ request: MockHTTPRequest, lang: Language, requestId: String) -> MockHTTPResponse {
        guard let body = MockJSON.parse(request.body), let id = body["accessKeyId"]?.stringValue,
            let secret = body["accessKeySecret"]?.stringValue
        else {
            return envelope(status: 400, apiCode: nil, message: lang.missingCredentials, requestId: requestId)
        }
        let now = Int(Date().timeIntervalSince1970)
        let minted: (String, Int)? = inner.withLock { state in
            guard let key = state.accessKeys[id], key.accessKeySecret == secret else { return nil }
            let pool = key.userPoolId ?? state.userPoolId
            let token = MockJWT.mint(userPoolId: pool, accessKeyId: id, issuedAt: now, expiresIn: state.tokenExpiresIn)
            state.tokens[token] = Token(userPoolId: pool, expiresAtUnix: now + state.tokenExpiresIn, revoked: false)
            state.issuedTokens.append(token)
            return (token, state.tokenExpiresIn)
        }
        guard let minted else {
            return envelope(status: 401, apiCode: nil, message: lang.badCredentials, requestId: requestId)
        }
        return success(.object([("access_token", .string(minted.0)), ("expires_in", .int(minted.1))]), lang: lang, requestId: requestId)
    }

    /// Nil when the token is good and matches the pool header; otherwise the refusal.
    private func authenticate(_ request: MockHTTPRequest, lang: Language, requestId: String) -> MockHTTPResponse? {
        guard let token = Self.presentedToken(request) else {
            return envelope(status: 401, apiCode: nil, message: lang.unauthorized, requestId: requestId)
        }
        let now = Int(Date().timeIntervalSince1970)
        let record = inner.withLock { $0.tokens[token] }
        guard let record, !record.revoked, record.expiresAtUnix > now else {
            return envelope(status: 401, apiCode: nil, message: lang.tokenExpired, requestId: requestId)
        }
        guard let pool = request.header("x-genauth-userpool-id") ?? request.header("x-authing-userpool-id") else {
            return envelope(status: 400, apiCode: nil, message: lang.missingPool, requestId: requestId)
        }
        guard pool == record.userPoolId else {
            return envelope(status: 403, apiCode: 2224, message: lang.poolMismatch, requestId: requestId)
        }
        return nil
    }

    private func refusal(for fault: MockFault, request: MockHTTPRequest, lang: Language, requestId: String) -> MockHTTPResponse {
        switch fault {
        case .httpStatus(let status, let jsonBody):
            if jsonBody {
                return envelope(status: status, apiCode: nil, message: lang.serverError(status), requestId: requestId, httpStatus: status)
            }
            return .text("\(status) \(lang.serverError(status))\n", status: status)
        case .throttledInBody:
            return envelope(status: 429, apiCode: nil, message: lang.throttled, requestId: requestId)
        case .throttledHTTP(let seconds):
            var response = envelope(status: 429, apiCode: nil, message: lang.throttled, requestId: requestId, httpStatus: 429)
            response.headers.append(("Retry-After", String(seconds)))
            return response
        case .businessError(let status, let apiCode, let message):
            return envelope(status: status, apiCode: apiCode, message: message, requestId: requestId)
        case .htmlPage:
            return .text(
                "<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Please sign in</h1></body></html>\n",
                status: 200, contentType: "text/html; charset=utf-8")
        case .expiredToken:
            if let token = Self.presentedToken(request) {
                inner.withLock { $0.tokens[token]?.revoked = true }
            }
            return envelope(status: 401, apiCode: nil, message: lang.tokenExpired, requestId: requestId)
        case .delay, .dropBeforeProcessing, .dropAfterProcessing, .malformedJSON, .oversizeBody, .emptySecret, .invalidSecret,
            .trickleBody, .duplicateSecretKey:
            return envelope(status: 500, apiCode: nil, message: lang.serverError(500), requestId: requestId)
        }
    }

    private func replacingSecret(
        in request: MockHTTPRequest, with value: String, lang: Language, requestId: String, fallback: MockHTTPResponse
    ) -> MockHTTPResponse {
        switch MockEndpoint(path: request.path) {
        case .refreshApplicationSecret, .getApplicationSecret:
            return success(.object([("secret", .string(value))]), lang: lang, requestId: requestId)
        case .getManagementToken:
            return success(.object([("access_token", .string(value)), ("expires_in", .int(7200))]), lang: lang, requestId: requestId)
        default:
            return fallback
        }
    }

    // MARK: envelopes

    private func success(_ data: MockJSON, lang: Language, requestId: String) -> MockHTTPResponse {
        .json(
            .object([
                ("statusCode", .int(200)), ("message", .string(lang.success)), ("requestId", .string(requestId)), ("data", data),
            ]))
    }

    private func envelope(status: Int, apiCode: Int?, message: String, requestId: String, httpStatus: Int = 200) -> MockHTTPResponse {
        var members: [(String, MockJSON)] = [("statusCode", .int(status))]
        if let apiCode { members.append(("apiCode", .int(apiCode))) }
        members.append(("message", .string(message)))
        members.append(("requestId", .string(requestId)))
        return .json(.object(members), status: httpStatus)
    }

    private func appNotFound(lang: Language, requestId: String) -> MockHTTPResponse {
        envelope(status: 404, apiCode: 2011, message: lang.appNotFound, requestId: requestId)
    }

    // MARK: helpers

    static func appId(of request: MockHTTPRequest) -> String? {
        if let value = request.queryValue("appId") { return value }
        return MockJSON.parse(request.body)?["appId"]?.stringValue
    }

    static func presentedToken(_ request: MockHTTPRequest) -> String? {
        guard let raw = request.header("authorization")?.trimmingSpaces, !raw.isEmpty else { return nil }
        if raw.lowercased().hasPrefix("bearer ") {
            let token = String(raw.dropFirst("bearer ".count)).trimmingSpaces
            return token.isEmpty ? nil : token
        }
        // The Java SDK sends the bare token.
        return raw
    }

    static func record(_ request: MockHTTPRequest, sequence: Int, appId: String?, fault: MockFault?) -> MockRequestRecord {
        let scheme: String? = request.header("authorization").map { $0.lowercased().hasPrefix("bearer ") ? "Bearer" : "bare" }
        let body = MockJSON.parse(request.body)
        let accessKeyId = MockEndpoint(path: request.path) == .getManagementToken ? body?["accessKeyId"]?.stringValue : nil
        return MockRequestRecord(
            sequence: sequence, method: request.method, path: request.path,
            headerNames: Set(request.headers.map { $0.name.lowercased() }).sorted(),
            bodyKeys: body?.objectKeys?.sorted(),
            queryKeys: Set(request.query.map(\.name)).sorted(),
            contentType: request.header("content-type"),
            authorizationScheme: scheme, appId: appId, fault: fault?.name, accessKeyId: accessKeyId)
    }

    static func applicationDTO(_ app: App, pool: String) -> MockJSON {
        .object([
            ("appId", .string(app.appId)), ("appIdentifier", .string(app.appName)), ("appName", .string(app.appName)),
            ("appLogo", .string("")), ("appDescription", .null), ("appType", .string("web")), ("userPoolId", .string(pool)),
            ("isIntegrateApp", .bool(false)), ("defaultProtocol", .string("oidc")), ("redirectUris", .array([])),
            ("logoutRedirectUris", .array([])), ("initLoginUri", .string("")), ("ssoEnabled", .bool(false)),
            ("loginConfig", .object([])), ("registerConfig", .object([])), ("brandingConfig", .object([])),
            ("oidcConfig", .object([])), ("samlProviderEnabled", .bool(false)), ("oauthProviderEnabled", .bool(false)),
            ("casProviderEnabled", .bool(false)), ("customBrandingEnabled", .bool(false)),
            ("customSecurityEnabled", .bool(false)),
        ])
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let first = s.first, first == " " || first == "\t" { s.removeFirst() }
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return String(s)
    }
}
