/// Which of the two brandings of the same API a deployment speaks. It decides the header
/// prefix (`x-genauth-*` or `x-authing-*`) and the default host.
public enum APIFlavour: String, Sendable, CaseIterable {
    case genauth
    case authing

    public var defaultHost: String {
        switch self {
        case .genauth: "https://api.genauth.ai"
        case .authing: "https://api.authing.cn"
        }
    }
}
