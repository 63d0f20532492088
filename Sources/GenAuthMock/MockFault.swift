/// A misbehaviour the mock can show instead of (or on top of) its normal answer.
///
/// Faults that *apply* the request first (`dropAfterProcessing`, `malformedJSON`,
/// `oversizeBody`, `emptySecret`, `invalidSecret`) model a server that did the work and
/// then failed to say so; the others refuse the request before anything changes.
public enum MockFault: Sendable, Equatable {
    /// Answer with this HTTP status (e.g. 500, 502, 503); with `jsonBody` the body is the
    /// V3 error envelope carrying the same `statusCode`, otherwise a short plain-text body.
    case httpStatus(Int, jsonBody: Bool)
    /// HTTP 200 with `{"statusCode":429,...}` in the body: the documented throttle answer.
    case throttledInBody
    /// HTTP 429 with a `Retry-After` header (seconds) and the 429 envelope.
    case throttledHTTP(retryAfterSeconds: Int)
    /// A business error at HTTP 200, e.g. 403 (no permission) or 404/2011 (app not found).
    case businessError(statusCode: Int, apiCode: Int?, message: String)
    /// Wait this long, then process the request normally.
    case delay(milliseconds: Int)
    /// Close the connection as soon as the request arrives, without processing it.
    case dropBeforeProcessing
    /// Process the request (a refresh really rotates), then close without answering.
    case dropAfterProcessing
    /// Process, then answer HTTP 200 with a truncated JSON document.
    case malformedJSON
    /// Answer HTTP 200 with an HTML page (a captive portal or a misrouted proxy).
    case htmlPage
    /// Process, then answer a valid-looking envelope padded to this many bytes.
    case oversizeBody(bytes: Int)
    /// Process, then answer success with `"secret":""`.
    case emptySecret
    /// Process, then answer success with a secret containing whitespace and a control character.
    case invalidSecret
    /// Process, then send the head at once and the body one byte every `intervalMilliseconds`
    /// (a server or proxy stalling mid-answer).
    case trickleBody(intervalMilliseconds: Int)
    /// Process, then answer success with `"secret"` twice in `data`: first a decoy, then the
    /// real new secret (a parser that keeps the first would write a dead secret).
    case duplicateSecretKey
    /// Treat the presented token as expired: it is revoked and the answer is a 401 envelope.
    case expiredToken

    /// Whether the request takes effect before the fault shows.
    public var appliesRequest: Bool {
        switch self {
        case .dropAfterProcessing, .malformedJSON, .oversizeBody, .emptySecret, .invalidSecret, .trickleBody, .duplicateSecretKey:
            return true
        case .delay: return true
        default: return false
        }
    }
}

/// "For the next `count` requests matching `endpoint` and/or `appId`, show `fault`."
public struct MockFaultRule: Sendable, Equatable {
    public var endpoint: MockEndpoint?
    public var appId: String?
    public var count: Int
    public var fault: MockFault

    public init(endpoint: MockEndpoint? = nil, appId: String? = nil, count: Int = 1, fault: MockFault) {
        self.endpoint = endpoint
        self.appId = appId
        self.count = count
        self.fault = fault
    }

    func matches(endpoint: MockEndpoint, appId: String?) -> Bool {
        if let wanted = self.endpoint, wanted != endpoint { return false }
        if let wanted = self.appId, wanted != appId { return false }
        return count > 0
    }
}
