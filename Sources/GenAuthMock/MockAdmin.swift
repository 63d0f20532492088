#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The admin API under `/__admin/`, for out-of-process tests and demos. It exposes the
/// secrets on purpose: the mock is a test double and binds to loopback by default.
enum MockAdmin {
    static let prefix = "/__admin/"

    static func handle(_ request: MockHTTPRequest, state: GenAuthMockState) -> MockHTTPResponse {
        let route = String(request.path.dropFirst(prefix.count))
        switch (request.method, route) {
        case ("GET", "apps"):
            let apps = state.snapshot().apps.map { appJSON($0, state: state) }
            return .json(.object([("apps", .array(apps))]))
        case ("POST", "apps"):
            guard let body = MockJSON.parse(request.body), let appId = body["appId"]?.stringValue, !appId.isEmpty else {
                return error(400, "body must be {\"appId\": ..., \"appName\"?: ..., \"secret\"?: ...}")
            }
            state.addApp(appId: appId, appName: body["appName"]?.stringValue, secret: body["secret"]?.stringValue)
            return ok()
        case ("GET", let r) where r.hasPrefix("apps/"):
            let appId = MockHTTPRequest.percentDecode(String(r.dropFirst("apps/".count)))
            guard let app = state.snapshot().apps.first(where: { $0.appId == appId }) else { return error(404, "no such app") }
            return .json(appJSON(app, state: state))
        case ("GET", "requests"):
            return encoded(["requests": state.requestLog()])
        case ("DELETE", "requests"):
            state.clearRequestLog()
            return ok()
        case ("GET", "faults"):
            let rules = state.pendingFaults().map { rule in
                MockJSON.object([
                    ("endpoint", rule.endpoint.map { .string($0.rawValue) } ?? .null),
                    ("appId", rule.appId.map { .string($0) } ?? .null),
                    ("count", .int(rule.count)), ("fault", .string(rule.fault.name)),
                ])
            }
            return .json(.object([("faults", .array(rules))]))
        case ("POST", "faults"):
            guard let body = MockJSON.parse(request.body), let fault = MockFault(admin: body) else {
                return error(400, "unknown or incomplete fault; see genauth-mock --help")
            }
            var endpoint: MockEndpoint?
            if let name = body["endpoint"]?.stringValue {
                guard let parsed = MockEndpoint(rawValue: name) else { return error(400, "unknown endpoint \(name)") }
                endpoint = parsed
            }
            let count = body["count"]?.intValue ?? 1
            guard count > 0 else { return error(400, "count must be positive") }
            state.inject(MockFaultRule(endpoint: endpoint, appId: body["appId"]?.stringValue, count: count, fault: fault))
            return ok()
        case ("DELETE", "faults"):
            state.clearFaults()
            return ok()
        case ("POST", "tokens/revoke"):
            state.revokeAllTokens()
            return ok()
        case ("GET", "issued"):
            // Everything a leak check must not find: every token and app secret ever handed out
            // (also those replaced since), and the access key secrets it accepts.
            let issued = state.issuedValues()
            return .json(.object([
                ("tokens", .array(issued.tokens.map(MockJSON.string))),
                ("secrets", .array(issued.secrets.map(MockJSON.string))),
                ("accessKeySecrets", .array(issued.accessKeySecrets.map(MockJSON.string))),
            ]))
        case ("GET", "stats"):
            return .json(.object([("tokensIssued", .int(state.tokensIssued)), ("tokenExpiresIn", .int(state.tokenExpiresIn))]))
        case ("POST", "config"):
            guard let body = MockJSON.parse(request.body), let seconds = body["tokenExpiresIn"]?.intValue, seconds > 0 else {
                return error(400, "body must be {\"tokenExpiresIn\": <seconds>}")
            }
            state.tokenExpiresIn = seconds
            return ok()
        case ("POST", "save"):
            do {
                return try state.save() ? ok() : error(409, "no --save file configured")
            } catch {
                return Self.error(500, "save failed: \(error)")
            }
        default:
            return error(404, "unknown admin route \(request.method) \(request.path)")
        }
    }

    /// One app for the admin API; `clientCredentialsAccepted`/`Refused` count its backend's
    /// `/oidc/token` calls with the current secret and with any other.
    private static func appJSON(_ app: MockSeed.App, state: GenAuthMockState) -> MockJSON {
        let calls = state.clientCredentialsCalls(appId: app.appId)
        return .object([
            ("appId", .string(app.appId)), ("appName", .string(app.appName ?? app.appId)),
            ("secret", .string(app.secret ?? "")), ("rotationCount", .int(app.rotationCount ?? 0)),
            ("clientCredentialsAccepted", .int(calls.accepted)), ("clientCredentialsRefused", .int(calls.refused)),
        ])
    }

    private static func encoded(_ value: some Encodable) -> MockHTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return error(500, "encoding failed") }
        return MockHTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(data))
    }

    private static func ok() -> MockHTTPResponse { .json(.object([("ok", .bool(true))])) }

    private static func error(_ status: Int, _ message: String) -> MockHTTPResponse {
        .json(.object([("ok", .bool(false)), ("error", .string(message))]), status: status)
    }
}
