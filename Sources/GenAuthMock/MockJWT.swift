#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Mints management tokens shaped like the real ones: a three-part JWT whose payload has
/// a string `scoped_userpool_id`. The signature is random bytes: the mock validates a
/// token by looking it up, and clients (like the SDKs) decode without verifying.
enum MockJWT {
    static func mint(userPoolId: String, accessKeyId: String, issuedAt: Int, expiresIn: Int) -> String {
        let header = base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        // The Python SDKs decode the payload with the *standard* base64 alphabet, which
        // silently drops '-' and '_'; keep re-rolling the nonce until neither appears.
        while true {
            let payload = MockJSON.object([
                ("token_type", .string("management_token")),
                ("scoped_userpool_id", .string(userPoolId)),
                ("access_key_type", .string("userpool")),
                ("access_key_id", .string(accessKeyId)),
                ("iat", .int(issuedAt)),
                ("exp", .int(issuedAt + expiresIn)),
                ("jti", .string(randomHex(bytes: 12))),
            ])
            let encoded = base64URL(Array(payload.serialized.utf8))
            if !encoded.contains("-") && !encoded.contains("_") {
                var signature = [UInt8](repeating: 0, count: 32)
                var rng = SystemRandomNumberGenerator()
                for i in signature.indices { signature[i] = UInt8.random(in: 0...255, using: &rng) }
                return header + "." + encoded + "." + base64URL(signature)
            }
        }
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        String(
            Data(bytes).base64EncodedString().compactMap { c -> Character? in
                switch c {
                case "+": return "-"
                case "/": return "_"
                case "=": return nil
                default: return c
                }
            })
    }

    static func randomHex(bytes count: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        var out = ""
        for _ in 0..<count {
            let byte = UInt8.random(in: 0...255, using: &rng)
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return out
    }
}
