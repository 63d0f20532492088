/// The version reported in `--version` and in the `x-genauth-sdk-version` header.
public enum SecretRotatorVersion {
    public static let current = "0.1.0"
}
