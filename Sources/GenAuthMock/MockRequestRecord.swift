/// What the mock remembers about a request: enough to compare clients on the wire and to
/// check invariants, never a secret value (header and body *names* only).
public struct MockRequestRecord: Sendable, Codable, Equatable {
    public var sequence: Int
    public var method: String
    public var path: String
    /// Lowercased, sorted.
    public var headerNames: [String]
    /// Sorted keys of a JSON object body; nil when there is no JSON object body.
    public var bodyKeys: [String]?
    /// Sorted query parameter names.
    public var queryKeys: [String]
    public var contentType: String?
    /// "Bearer", "bare" or nil: how the token was presented.
    public var authorizationScheme: String?
    public var appId: String?
    /// The fault shown for this request, if any (a short name).
    public var fault: String?
    /// The `accessKeyId` a `get-management-token` request asked with (an id, not a secret):
    /// which key a client uses, e.g. after a reload changed it. Nil for other requests.
    public var accessKeyId: String?

    public init(
        sequence: Int, method: String, path: String, headerNames: [String], bodyKeys: [String]?, queryKeys: [String],
        contentType: String?, authorizationScheme: String?, appId: String?, fault: String?, accessKeyId: String? = nil
    ) {
        self.sequence = sequence
        self.method = method
        self.path = path
        self.headerNames = headerNames
        self.bodyKeys = bodyKeys
        self.queryKeys = queryKeys
        self.contentType = contentType
        self.authorizationScheme = authorizationScheme
        self.appId = appId
        self.fault = fault
        self.accessKeyId = accessKeyId
    }
}
