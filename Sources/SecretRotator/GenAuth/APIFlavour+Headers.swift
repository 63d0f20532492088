/// The custom header names of each flavour, exactly as the official SDKs of that brand send them.
extension APIFlavour {
    /// `x-genauth-` or `x-authing-`.
    public var headerPrefix: String { "x-\(rawValue)-" }

    public var userPoolHeader: String { headerPrefix + "userpool-id" }
    public var languageHeader: String { headerPrefix + "lang" }
    public var sdkVersionHeader: String { headerPrefix + "sdk-version" }
}
