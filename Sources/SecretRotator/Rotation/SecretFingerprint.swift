import Crypto

/// A one-way fingerprint of a secret, kept in the state journal so that reconciling an unknown
/// refresh can tell "GenAuth now has a different secret" from "nothing changed" without
/// storing the secret itself. GenAuth secrets carry 128 random bits, so SHA-256 of one reveals
/// nothing usable.
public enum SecretFingerprint {
    public static func of(_ secret: SecretValue) -> String {
        SHA256.hash(data: Array(secret.exposed.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}
