#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A cached management token and the user pool it is scoped to.
struct ManagementToken: Sendable {
    let value: SecretValue
    let userPoolId: String
    /// When to stop using it (already shortened by the safety margin).
    let refreshAt: ContinuousClock.Instant
    /// Distinguishes fetches, so a late 401 on an old token cannot discard a newer one.
    let generation: Int

    /// Reads `scoped_userpool_id` from the JWT payload without verifying the signature,
    /// as the SDKs do; nil when the token is not a JWT or lacks the claim.
    static func scopedUserPoolId(fromJWT token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = base64URLDecode(parts[1]) else { return nil }
        // Two `scoped_userpool_id` claims: which pool the token is for is ambiguous.
        guard JSONDuplicateKeys.first(in: payload) == nil else { return nil }
        struct Claims: Decodable {
            let scoped_userpool_id: String?
        }
        guard let claims = try? JSONDecoder().decode(Claims.self, from: Data(payload)) else { return nil }
        guard let pool = claims.scoped_userpool_id, !pool.isEmpty else { return nil }
        return pool
    }

    static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var standard = String(
            text.map { c -> Character in
                switch c {
                case "-": return "+"
                case "_": return "/"
                default: return c
                }
            })
        while standard.utf8.count % 4 != 0 { standard.append("=") }
        return Data(base64Encoded: standard).map(Array.init)
    }

    /// Refresh a bit before the server's expiry so an in-flight request never carries a
    /// token that dies on the way: 10 % of the lifetime, at most a minute.
    static func safetyMargin(expiresIn: Duration) -> Duration {
        min(expiresIn / 10, .seconds(60))
    }
}
