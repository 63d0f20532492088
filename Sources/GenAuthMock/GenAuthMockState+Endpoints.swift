#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// The mock's endpoints: each request answered as GenAuth answers it (the envelope, its codes
/// and messages in the request's language), and the helpers that read requests.
extension GenAuthMockState {
    func answer(_ request: MockHTTPRequest, lang: Language, requestId: String) -> (MockHTTPResponse, rotated: Bool) {
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

    func issueToken(_ request: MockHTTPRequest, lang: Language, requestId: String) -> MockHTTPResponse {
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
    func authenticate(_ request: MockHTTPRequest, lang: Language, requestId: String) -> MockHTTPResponse? {
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

    func refusal(for fault: MockFault, request: MockHTTPRequest, lang: Language, requestId: String) -> MockHTTPResponse {
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

    func replacingSecret(
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

    func success(_ data: MockJSON, lang: Language, requestId: String) -> MockHTTPResponse {
        .json(
            .object([
                ("statusCode", .int(200)), ("message", .string(lang.success)), ("requestId", .string(requestId)), ("data", data),
            ]))
    }

    func envelope(status: Int, apiCode: Int?, message: String, requestId: String, httpStatus: Int = 200) -> MockHTTPResponse {
        var members: [(String, MockJSON)] = [("statusCode", .int(status))]
        if let apiCode { members.append(("apiCode", .int(apiCode))) }
        members.append(("message", .string(message)))
        members.append(("requestId", .string(requestId)))
        return .json(.object(members), status: httpStatus)
    }

    func appNotFound(lang: Language, requestId: String) -> MockHTTPResponse {
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
