#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The token endpoint a GenAuth application's own backend calls with its app secret: the
/// consumer's side of a rotation. `POST /oidc/token` with `grant_type=client_credentials`
/// (OAuth 2.0, RFC 6749 §4.4), the client authenticated by `client_secret_post` (form fields
/// `client_id` and `client_secret`) or `client_secret_basic` (`Authorization: Basic` over the
/// form-urlencoded id and secret, RFC 6749 §2.3.1). It accepts only the app's current secret,
/// so a consumer still holding a rotated-away secret is refused like GenAuth refuses it.
///
/// Answers (RFC 6749 §5.1, §5.2): 200 `{"access_token","token_type":"Bearer","expires_in"}`;
/// 401 `{"error":"invalid_client"}` for an unknown app or any other secret (with
/// `WWW-Authenticate: Basic` when Basic was tried); 400 `invalid_request` (no or two client
/// authentications, not a form) or `unsupported_grant_type`. Calls are counted per app
/// (`GenAuthMockState.clientCredentialsCalls`) and not kept in the request log: a consumer
/// checking every 10 ms would fill it.
enum MockClientCredentials {
    static let path = "/oidc/token"
    static let tokenLifetime = 3_600

    enum Outcome: Equatable {
        case accepted(appId: String)
        case refused(appId: String?)
        case malformed
    }

    /// Decides the request with `currentSecret` (nil: unknown app); no state is touched here.
    static func answer(
        _ request: MockHTTPRequest, currentSecret: (String) -> String?
    ) -> (response: MockHTTPResponse, outcome: Outcome) {
        guard request.method == "POST" else {
            var response = error(405, "invalid_request", "use POST")
            response.headers.append(("Allow", "POST"))
            return (response, .malformed)
        }
        let contentType = request.header("content-type")?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            return (error(400, "invalid_request", "the body must be application/x-www-form-urlencoded"), .malformed)
        }
        guard let form = MockHTTPRequest.parseForm(String(decoding: request.body, as: UTF8.self)) else {
            return (error(400, "invalid_request", "the body is not valid form encoding"), .malformed)
        }
        // RFC 6749 §3.2: a parameter is sent at most once.
        guard Set(form.map(\.name)).count == form.count else {
            return (error(400, "invalid_request", "a parameter was sent more than once"), .malformed)
        }
        func field(_ name: String) -> String? { form.first { $0.name == name }?.value }
        guard let grant = field("grant_type") else {
            return (error(400, "invalid_request", "grant_type is missing"), .malformed)
        }
        guard grant == "client_credentials" else {
            return (error(400, "unsupported_grant_type", "only client_credentials"), .malformed)
        }
        let basic = basicCredentials(request.header("authorization"))
        let posted = field("client_secret").map { (field("client_id") ?? "", $0) }
        // RFC 6749 §2.3: a client uses one authentication method per request.
        let credentials: (id: String, secret: String)
        switch (basic, posted) {
        case (.some(let pair), nil): credentials = pair
        case (nil, .some(let pair)): credentials = pair
        case (.some, .some): return (error(400, "invalid_request", "two client authentications"), .malformed)
        case (nil, nil): return (invalidClient(basic: false), .refused(appId: field("client_id")))
        }
        guard !credentials.id.isEmpty, let current = currentSecret(credentials.id), current == credentials.secret else {
            return (invalidClient(basic: basic != nil), .refused(appId: credentials.id.isEmpty ? nil : credentials.id))
        }
        let token = MockJWT.randomHex(bytes: 24)
        let body = MockJSON.object([
            ("access_token", .string(token)), ("token_type", .string("Bearer")), ("expires_in", .int(tokenLifetime)),
        ])
        return (.json(body, extraHeaders: [("Cache-Control", "no-store")]), .accepted(appId: credentials.id))
    }

    /// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, decoded; nil when absent or not Basic.
    static func basicCredentials(_ header: String?) -> (id: String, secret: String)? {
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic " else { return nil }
        guard let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingSpaces),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":"),
            let id = MockHTTPRequest.strictPercentDecode(String(text[..<colon])), let secret = MockHTTPRequest.strictPercentDecode(String(text[text.index(after: colon)...]))
        else { return ("", "") }
        return (id, secret)
    }

    private static func invalidClient(basic: Bool) -> MockHTTPResponse {
        var response = error(401, "invalid_client", "client authentication failed")
        if basic { response.headers.append(("WWW-Authenticate", "Basic realm=\"genauth\"")) }
        return response
    }

    private static func error(_ status: Int, _ code: String, _ description: String) -> MockHTTPResponse {
        let body = MockJSON.object([("error", .string(code)), ("error_description", .string(description))])
        return .json(body, status: status, extraHeaders: [("Cache-Control", "no-store")])
    }
}
