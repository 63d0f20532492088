/// How one HTTP exchange with GenAuth ended, as the `outcome` label of
/// `secret_rotator_api_requests_total`: a small fixed set, so the label cannot grow with what
/// a server answers. Derived from `GenAuthError.Reason`, the client's own classification.
public enum APIRequestOutcome: String, Sendable, CaseIterable {
    /// A V3 envelope with `statusCode` 200 and a payload.
    case ok
    /// A non-2xx HTTP status (429, 5xx, an HTML error page...).
    case httpError = "http_error"
    /// HTTP 200 with a non-200 `statusCode` in the body (GenAuth's business errors: 403, 404/2011...).
    case apiError = "api_error"
    /// The `request_timeout` passed after the request may have been sent.
    case timeout
    /// No connection could be made, or it broke after the request was sent.
    case connectionError = "connection_error"
    /// An answer that could not be trusted: not JSON, not the V3 envelope, oversize, a duplicate key.
    case badAnswer = "bad_answer"
    /// Cancelled by the daemon (shutdown), not by the server.
    case cancelled
    /// The client could not send it at all (bad host URL).
    case configurationError = "configuration_error"

    /// The outcome a failed exchange reports, from the reason the transport gave its error.
    public init(_ error: GenAuthError) {
        switch error.reason {
        case .httpStatus: self = .httpError
        case .apiError: self = .apiError
        case .timeout: self = .timeout
        case .notConnected, .connectionLost: self = .connectionError
        case .malformedResponse, .oversizeResponse, .invalidSecret: self = .badAnswer
        case .cancelled: self = .cancelled
        case .invalidConfiguration: self = .configurationError
        }
    }
}
