#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The V3 response envelope `{statusCode, message, apiCode?, requestId?, data?}`. Fields
/// are optional here so a half-valid answer can still be reported with what it did say.
struct APIEnvelope<Payload: Decodable>: Decodable {
    var statusCode: Int?
    var message: String?
    var apiCode: Int?
    var requestId: String?
    var data: Payload?

    private enum CodingKeys: String, CodingKey {
        case statusCode, message, apiCode, requestId, data
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        statusCode = Self.flexibleInt(c, .statusCode)
        message = try? c.decodeIfPresent(String.self, forKey: .message)
        // The legacy API sent apiCode as a string; accept both.
        apiCode = Self.flexibleInt(c, .apiCode)
        requestId = try? c.decodeIfPresent(String.self, forKey: .requestId)
        data = try? c.decodeIfPresent(Payload.self, forKey: .data)
    }

    private static func flexibleInt(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) -> Int? {
        if let value = try? c.decodeIfPresent(Int.self, forKey: key) { return value }
        if let text = try? c.decodeIfPresent(String.self, forKey: key) { return Int(text) }
        return nil
    }

    /// Nil when `bytes` are not a JSON object.
    static func decode(_ bytes: [UInt8]) -> APIEnvelope? {
        try? JSONDecoder().decode(APIEnvelope.self, from: Data(bytes))
    }
}

/// `data` of the two secret endpoints.
struct SecretPayload: Decodable, Sendable {
    var secret: String?
}

/// `data` of `get-management-token`.
struct TokenPayload: Decodable, Sendable {
    var access_token: String?
    var expires_in: Int?
}

/// Stands in for `data` when only the envelope head matters.
struct IgnoredPayload: Decodable, Sendable {
    init(from decoder: any Decoder) throws {}
}
