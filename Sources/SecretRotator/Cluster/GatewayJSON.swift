#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Any JSON value, decoded and encoded with Foundation's JSON coders: etcd's gateway answers
/// carry many optional fields whose presence is the information (a keepalive without `TTL`,
/// a txn without `succeeded`), so they are read as a tree instead of fixed structs.
enum JSONValue: Codable, Sendable, Equatable, ExpressibleByStringLiteral {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    init(stringLiteral value: String) { self = .string(value) }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    func serialized() -> [UInt8] {
        (try? Array(JSONEncoder().encode(self))) ?? Array("null".utf8)
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }
}

/// Typed reads of a gateway answer's fields (proto3 JSON: int64 as strings, bytes as base64).
struct JSONObject: Sendable {
    let fields: [String: JSONValue]

    init(_ fields: [String: JSONValue]) { self.fields = fields }

    func object(_ key: String) -> JSONObject? { fields[key]?.objectValue.map(JSONObject.init) }

    func array(_ key: String) -> [JSONValue]? {
        if case .array(let value) = fields[key] { return value }
        return nil
    }

    func string(_ key: String) -> String? {
        if case .string(let value) = fields[key] { return value }
        return nil
    }

    func bool(_ key: String) -> Bool? {
        if case .bool(let value) = fields[key] { return value }
        return nil
    }

    func int64(_ key: String) -> Int64? {
        switch fields[key] {
        case .string(let text): Int64(text)
        case .number(let value) where value.rounded() == value && abs(value) < 9e15: Int64(value)
        default: nil
        }
    }

    /// A base64 `bytes` field.
    func bytes(_ key: String) -> [UInt8]? {
        guard let text = string(key), let data = Data(base64Encoded: text) else { return nil }
        return Array(data)
    }

    /// The gateway's error answer: `{"error": "...", "message": "...", "code": N}`.
    var errorText: String? {
        if let message = string("message") ?? string("error") { return message }
        return nil
    }
}
