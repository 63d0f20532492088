/// Decides whether a string from the API may be written as an application secret
/// (Architecture, invariant 7): non-empty, at most 1 KiB, printable ASCII with no whitespace.
/// Anything else would corrupt an env file or a consumer's config, so it is refused.
public enum ApplicationSecretValidator {
    public static let maxBytes = 1024

    /// Nil when valid; otherwise why not (without the value).
    public static func problem(with secret: String) -> String? {
        let bytes = secret.utf8
        if bytes.isEmpty { return "the secret is empty" }
        if bytes.count > maxBytes { return "the secret is \(bytes.count) bytes, more than \(maxBytes)" }
        if !bytes.allSatisfy({ (0x21...0x7e).contains($0) }) {
            return "the secret contains whitespace, control or non-ASCII characters"
        }
        return nil
    }
}
