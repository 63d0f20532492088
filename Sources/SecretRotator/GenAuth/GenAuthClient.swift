import AsyncHTTPClient
import Logging
import NIOCore
import NIOSSL

/// The GenAuth / Authing V3 management API, as far as secret rotation needs it.
///
/// One management token is shared by all callers and fetched again when it nears expiry
/// or the server refuses it (once per call). The client never retries a refresh by itself:
/// the rotation engine decides from `GenAuthError.classification`. Nothing secret is
/// logged. Call `shutdown()` before dropping the client.
public final class GenAuthClient: Sendable {
    public let configuration: GenAuthClientConfiguration
    private let transport: GenAuthTransport
    private let tokens: ManagementTokenProvider
    private let http: HTTPClient
    private let logger: Logger

    /// - Parameter metrics: counts and times every HTTP exchange (`RotatorMetrics.Name.apiRequests`).
    public init(
        configuration: GenAuthClientConfiguration,
        logger: Logger = Logger(label: "secret-rotator.genauth"),
        clock: any TokenClock = SystemTokenClock(),
        metrics: RotatorMetrics = .disabled
    ) throws(GenAuthError) {
        guard let baseURL = configuration.normalizedHost else {
            throw GenAuthError(
                classification: .permanent, reason: .invalidConfiguration, operation: "configure",
                message: "host must be an http(s) URL such as https://api.genauth.ai")
        }
        guard configuration.requestTimeout > .zero, configuration.maxResponseBytes > 0 else {
            throw GenAuthError(
                classification: .permanent, reason: .invalidConfiguration, operation: "configure",
                message: "request_timeout and the response limit must be positive")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = configuration.caFile {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw GenAuthError(
                    classification: .permanent, reason: .invalidConfiguration, operation: "configure",
                    message: "cannot read PEM certificates from ca_file \(caFile)")
            }
        }
        var httpConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        let timeout = GenAuthTransport.timeAmount(configuration.requestTimeout)
        // Connect must give up before the overall deadline, so a host that never answers
        // shows up as "not connected" (safe to retry) rather than as a timeout after sending.
        httpConfiguration.timeout = .init(
            connect: GenAuthTransport.timeAmount(configuration.requestTimeout * 3 / 4), read: timeout)
        // Fail fast on refused connections instead of retrying inside AHC until the deadline:
        // the engine owns retries, and it needs to see "not connected".
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.decompression = .disabled
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let transport = GenAuthTransport(baseURL: baseURL, configuration: configuration, http: http, metrics: metrics)

        self.configuration = configuration
        self.http = http
        self.transport = transport
        self.logger = logger
        self.tokens = ManagementTokenProvider(clock: clock) { () async throws(GenAuthError) in
            try await GenAuthClient.fetchToken(transport: transport, logger: logger)
        }
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// Rotates the app's secret and returns the new one. The old one is dead from now on.
    ///
    /// On `.outcomeUnknown` the rotation may have happened: read `getApplicationSecret`
    /// before trying again (Architecture, invariant 3).
    public func refreshApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue {
        let operation = APIOperation.refreshApplicationSecret(appId: appId)
        let answer = try await authenticated(operation, as: SecretPayload.self)
        let secret = try Self.validated(answer.payload.secret, operation: operation, answer: answer)
        // Debug: the engine logs the rotation once, with the app and version.
        logger.debug(
            "application secret rotated",
            metadata: ["app_id": "\(appId)", "request_id": "\(answer.requestId ?? "-")"])
        return secret
    }

    /// The app's current secret, as the server holds it (the truth to reconcile against).
    public func getApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue {
        let operation = APIOperation.getApplicationSecret(appId: appId)
        let answer = try await authenticated(operation, as: SecretPayload.self)
        return try Self.validated(answer.payload.secret, operation: operation, answer: answer)
    }

    /// The app's record; useful to check that an app ID exists before rotating it.
    public func getApplication(appId: String) async throws(GenAuthError) -> GenAuthApplication {
        let operation = APIOperation.getApplication(appId: appId)
        let answer = try await authenticated(operation, as: GenAuthApplication.self)
        return answer.payload
    }

    // MARK: internals

    private func authenticated<Payload: Decodable & Sendable>(
        _ operation: APIOperation, as type: Payload.Type
    ) async throws(GenAuthError) -> GenAuthTransport.Answer<Payload> {
        let token = try await tokens.token()
        do throws(GenAuthError) {
            let answer = try await transport.call(operation, token: token, as: type)
            log(operation, status: answer.httpStatus, requestId: answer.requestId)
            return answer
        } catch let error where error.isUnauthorizedToken {
            // The token expired early or was revoked: a 401 means nothing was done, so
            // one more attempt with a fresh token is safe even for a refresh.
            logger.notice(
                "management token refused; fetching a new one",
                metadata: ["operation": "\(operation.name)", "request_id": "\(error.requestId ?? "-")"])
            await tokens.invalidate(token)
            let fresh = try await tokens.token()
            do throws(GenAuthError) {
                let answer = try await transport.call(operation, token: fresh, as: type)
                log(operation, status: answer.httpStatus, requestId: answer.requestId)
                return answer
            } catch {
                logFailure(error, operation: operation)
                throw error
            }
        } catch {
            logFailure(error, operation: operation)
            throw error
        }
    }

    private static func fetchToken(
        transport: GenAuthTransport, logger: Logger
    ) async throws(GenAuthError) -> (token: SecretValue, userPoolId: String, expiresIn: Duration) {
        let operation = APIOperation.getManagementToken
        logger.debug("fetching management token")
        let answer: GenAuthTransport.Answer<TokenPayload>
        do throws(GenAuthError) {
            answer = try await transport.call(operation, token: nil, as: TokenPayload.self)
        } catch {
            // Debug: each caller logs the failure it causes, once (no double lines).
            logger.debug("management token request failed", metadata: Self.metadata(error))
            throw error
        }
        let grant = try Self.grant(from: answer, operation: operation, accessKeyId: transport.configuration.accessKeyId)
        logger.debug("management token fetched", metadata: ["expires_in": "\(grant.expiresIn.components.seconds)"])
        return grant
    }

    /// The checked token of a successful `get-management-token` answer, the user pool it is
    /// scoped to and its lifetime. No I/O: the answer fuzzer calls it too.
    static func grant(
        from answer: GenAuthTransport.Answer<TokenPayload>, operation: APIOperation, accessKeyId: String
    ) throws(GenAuthError) -> (token: SecretValue, userPoolId: String, expiresIn: Duration) {
        guard let token = answer.payload.access_token, !token.isEmpty,
            token.utf8.count <= 16 * 1024, token.utf8.allSatisfy({ (0x21...0x7e).contains($0) })
        else {
            throw GenAuthError.badAnswer(
                .invalidSecret, operation: operation, message: "missing or unusable access_token",
                httpStatus: answer.httpStatus, requestId: answer.requestId)
        }
        guard let expiresIn = answer.payload.expires_in, expiresIn > 0 else {
            throw GenAuthError.badAnswer(
                .malformedResponse, operation: operation, message: "missing or non-positive expires_in",
                httpStatus: answer.httpStatus, requestId: answer.requestId)
        }
        // Collaborator keys are not the pool ID, so the pool comes from the token (as in
        // the SDKs); the access key ID is the documented fallback.
        let userPoolId = ManagementToken.scopedUserPoolId(fromJWT: token) ?? accessKeyId
        return (SecretValue(token), userPoolId, .seconds(expiresIn))
    }

    /// The checked secret of a successful secret answer. No I/O: the answer fuzzer calls it too.
    static func validated<P: Sendable>(
        _ secret: String?, operation: APIOperation, answer: GenAuthTransport.Answer<P>
    ) throws(GenAuthError) -> SecretValue {
        guard let secret else {
            throw GenAuthError.badAnswer(
                .malformedResponse, operation: operation, message: "data.secret is missing",
                httpStatus: answer.httpStatus, requestId: answer.requestId)
        }
        if let problem = ApplicationSecretValidator.problem(with: secret) {
            throw GenAuthError.badAnswer(
                .invalidSecret, operation: operation, message: problem, httpStatus: answer.httpStatus,
                requestId: answer.requestId)
        }
        return SecretValue(secret)
    }

    private func log(_ operation: APIOperation, status: Int, requestId: String?) {
        logger.debug(
            "GenAuth call succeeded",
            metadata: [
                "operation": "\(operation.name)", "app_id": "\(operation.appId ?? "-")", "http_status": "\(status)",
                "request_id": "\(requestId ?? "-")",
            ])
    }

    private func logFailure(_ error: GenAuthError, operation: APIOperation) {
        var metadata = Self.metadata(error)
        metadata["app_id"] = "\(operation.appId ?? "-")"
        // Debug: the engine (or the command) logs the failure once, with the same fields.
        logger.debug("GenAuth call failed", metadata: metadata)
    }

    private static func metadata(_ error: GenAuthError) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "operation": "\(error.operation)", "classification": "\(error.classification.rawValue)",
            "reason": "\(error.reason.rawValue)",
        ]
        if let value = error.httpStatus { metadata["http_status"] = "\(value)" }
        if let value = error.apiStatusCode { metadata["api_status_code"] = "\(value)" }
        if let value = error.apiCode { metadata["api_code"] = "\(value)" }
        if let value = error.requestId { metadata["request_id"] = "\(value)" }
        if let value = error.message { metadata["message"] = "\(value)" }
        return metadata
    }
}
