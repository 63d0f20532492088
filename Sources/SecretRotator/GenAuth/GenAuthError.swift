/// A failed GenAuth call, with what the server said and what the caller may do next.
///
/// `description` carries status codes, the operation, the request ID and the server's
/// message, never a secret, token or access key secret (Architecture, invariant 5).
public struct GenAuthError: Error, Sendable, CustomStringConvertible {
    /// What the rotation engine may do next (Architecture, "Wire protocol").
    public enum Classification: String, Sendable, CaseIterable {
        /// Not sent, or refused before processing (connect failure, DNS, 429, 503): retry with backoff.
        case transient
        /// A refresh may or may not have taken effect (timeout or reset after sending, 5xx):
        /// read the truth with `getApplicationSecret` before anything else.
        case outcomeUnknown
        /// The request is wrong and retrying will not fix it (400, 403, 404/2011, bad host).
        case permanent
        /// The access key was refused (or a fresh token was refused again).
        case authentication
    }

    /// What went wrong, for logs and tests.
    public enum Reason: String, Sendable {
        /// A non-200 `statusCode` in the body.
        case apiError
        /// A non-2xx HTTP status.
        case httpStatus
        /// No connection (refused, DNS, connect timeout, TLS handshake).
        case notConnected
        /// The deadline passed after the request may have been sent.
        case timeout
        /// The connection broke after the request was sent.
        case connectionLost
        /// Not JSON, not the V3 envelope, or a missing field.
        case malformedResponse
        /// More than `maxResponseBytes`.
        case oversizeResponse
        /// A returned secret or token failed validation.
        case invalidSecret
        /// The client configuration cannot work (bad host URL, unreadable CA file).
        case invalidConfiguration
        case cancelled
    }

    public let classification: Classification
    public let reason: Reason
    /// The V3 endpoint name, e.g. `refresh-application-secret`.
    public let operation: String
    public let httpStatus: Int?
    /// `statusCode` from the body.
    public let apiStatusCode: Int?
    public let apiCode: Int?
    public let message: String?
    public let requestId: String?
    /// From `Retry-After`, when the server sent one.
    public let retryAfter: Duration?
    /// The transport error's type and case, when there was one (never a payload): what logs show of `cause`.
    public let underlying: String?
    /// The transport's own error, when one caused this (an `HTTPClientError`, an `IOError`...).
    public let cause: (any Error)?
    /// `file:line` where the error was raised, for bug reports.
    public let location: String

    public init(
        classification: Classification, reason: Reason, operation: String, httpStatus: Int? = nil,
        apiStatusCode: Int? = nil, apiCode: Int? = nil, message: String? = nil, requestId: String? = nil,
        retryAfter: Duration? = nil, underlying: String? = nil, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.classification = classification
        self.reason = reason
        self.operation = operation
        self.httpStatus = httpStatus
        self.apiStatusCode = apiStatusCode
        self.apiCode = apiCode
        self.message = message.map(GenAuthError.sanitized)
        self.requestId = requestId.map(GenAuthError.sanitized)
        self.retryAfter = retryAfter
        self.underlying = underlying
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    public var description: String {
        var parts = ["GenAuth \(operation) failed: \(classification.rawValue) (\(reason.rawValue))"]
        if let httpStatus { parts.append("HTTP \(httpStatus)") }
        if let apiStatusCode { parts.append("statusCode \(apiStatusCode)") }
        if let apiCode { parts.append("apiCode \(apiCode)") }
        if let requestId { parts.append("requestId \(requestId)") }
        if let retryAfter { parts.append("retry after \(retryAfter)") }
        if let underlying { parts.append(underlying) }
        if let message, !message.isEmpty { parts.append("message \"\(message)\"") }
        return parts.joined(separator: ", ")
    }

    /// Server text goes into logs and journald: keep it short and on one line.
    static func sanitized(_ text: String) -> String {
        let cleaned = text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) }
        return String(String(cleaned).prefix(200))
    }
}
