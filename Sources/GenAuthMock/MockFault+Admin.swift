extension MockFault {
    /// The short name used in the request log and by the admin endpoint.
    public var name: String {
        switch self {
        case .httpStatus(let status, let json): return "http-status-\(status)\(json ? "-json" : "")"
        case .throttledInBody: return "throttled-in-body"
        case .throttledHTTP: return "throttled-http"
        case .businessError(let code, _, _): return "business-error-\(code)"
        case .delay: return "delay"
        case .dropBeforeProcessing: return "drop-before-processing"
        case .dropAfterProcessing: return "drop-after-processing"
        case .malformedJSON: return "malformed-json"
        case .htmlPage: return "html-page"
        case .oversizeBody: return "oversize-body"
        case .emptySecret: return "empty-secret"
        case .invalidSecret: return "invalid-secret"
        case .expiredToken: return "expired-token"
        case .trickleBody: return "trickle-body"
        case .duplicateSecretKey: return "duplicate-secret-key"
        }
    }

    /// Reads the admin endpoint's fault description, e.g.
    /// `{"fault":"http-status","status":503,"jsonBody":false}` or `{"fault":"delay","milliseconds":1500}` or `{"fault":"trickle-body","milliseconds":1500}`.
    init?(admin json: MockJSON) {
        guard let kind = json["fault"]?.stringValue else { return nil }
        switch kind {
        case "http-status":
            guard let status = json["status"]?.intValue, (100...599).contains(status) else { return nil }
            let jsonBody: Bool
            if case .bool(let b) = json["jsonBody"] ?? .bool(true) { jsonBody = b } else { return nil }
            self = .httpStatus(status, jsonBody: jsonBody)
        case "throttled-in-body": self = .throttledInBody
        case "throttled-http": self = .throttledHTTP(retryAfterSeconds: json["retryAfter"]?.intValue ?? 1)
        case "business-error":
            guard let code = json["statusCode"]?.intValue else { return nil }
            self = .businessError(
                statusCode: code, apiCode: json["apiCode"]?.intValue,
                message: json["message"]?.stringValue ?? "injected business error")
        case "delay":
            guard let ms = json["milliseconds"]?.intValue, ms >= 0 else { return nil }
            self = .delay(milliseconds: ms)
        case "drop-before-processing": self = .dropBeforeProcessing
        case "drop-after-processing": self = .dropAfterProcessing
        case "malformed-json": self = .malformedJSON
        case "html-page": self = .htmlPage
        case "oversize-body": self = .oversizeBody(bytes: json["bytes"]?.intValue ?? 128 * 1024)
        case "empty-secret": self = .emptySecret
        case "invalid-secret": self = .invalidSecret
        case "expired-token": self = .expiredToken
        case "trickle-body":
            guard let ms = json["milliseconds"]?.intValue, ms >= 1 else { return nil }
            self = .trickleBody(intervalMilliseconds: ms)
        case "duplicate-secret-key": self = .duplicateSecretKey
        default: return nil
        }
    }
}
