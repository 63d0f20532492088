/// Which brand of the V3 API to speak: it decides the default host and the prefix of the
/// custom headers (`x-genauth-*` or `x-authing-*`), exactly as the official SDKs differ.
public enum APIFlavour: String, Sendable, CaseIterable {
    case genauth
    case authing

    public var defaultHost: String {
        switch self {
        case .genauth: return "https://api.genauth.ai"
        case .authing: return "https://api.authing.cn"
        }
    }

    /// `x-genauth-` or `x-authing-`.
    public var headerPrefix: String { "x-\(rawValue)-" }

    public var userPoolHeader: String { headerPrefix + "userpool-id" }
    public var languageHeader: String { headerPrefix + "lang" }
    public var sdkVersionHeader: String { headerPrefix + "sdk-version" }
}
