/// Everything the client needs to reach one user pool's management API.
public struct GenAuthClientConfiguration: Sendable {
    /// Base URL without a trailing slash, e.g. `https://api.genauth.ai` or a private deployment.
    public var host: String
    public var flavour: APIFlavour
    /// The user pool ID or access key ID (not secret).
    public var accessKeyId: String
    public var accessKeySecret: SecretValue
    /// Deadline for one HTTP exchange, connect included.
    public var requestTimeout: Duration
    /// Extra PEM trust roots (added to the system store) for private deployments.
    public var caFile: String?
    /// `x-*-lang`: the language of the server's `message` fields.
    public var language: String
    /// Responses larger than this are rejected unread: no legitimate answer comes near it.
    public var maxResponseBytes: Int

    public init(
        host: String? = nil,
        flavour: APIFlavour = .genauth,
        accessKeyId: String,
        accessKeySecret: SecretValue,
        requestTimeout: Duration = .seconds(10),
        caFile: String? = nil,
        language: String = "en-US",
        maxResponseBytes: Int = 64 * 1024
    ) {
        self.host = host ?? flavour.defaultHost
        self.flavour = flavour
        self.accessKeyId = accessKeyId
        self.accessKeySecret = accessKeySecret
        self.requestTimeout = requestTimeout
        self.caFile = caFile
        self.language = language
        self.maxResponseBytes = maxResponseBytes
    }

    /// The host with trailing slashes removed, or nil when it is not an http(s) URL with a host.
    var normalizedHost: String? {
        var value = host
        while value.hasSuffix("/") { value.removeLast() }
        let lower = value.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            rest = value.dropFirst("https://".count)
        } else if lower.hasPrefix("http://") {
            rest = value.dropFirst("http://".count)
        } else {
            return nil
        }
        guard let first = rest.first, first != "/", first != ":", !rest.contains(where: { $0 == " " || $0 == "?" || $0 == "#" })
        else { return nil }
        return value
    }
}

extension GenAuthClientConfiguration {
    /// The client settings of a loaded `[genauth]` table (every key but `requests_per_second`,
    /// which the engine's rate limiter applies).
    public init(_ settings: GenAuthSettings) {
        self.init(
            host: settings.host, flavour: settings.flavour, accessKeyId: settings.accessKeyID,
            accessKeySecret: settings.accessKeySecret, requestTimeout: settings.requestTimeout, caFile: settings.caFile)
    }
}
