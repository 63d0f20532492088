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

    let inner: Mutex<Inner>
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

}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let first = s.first, first == " " || first == "\t" { s.removeFirst() }
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return String(s)
    }
}
