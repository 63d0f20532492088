#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a leader publishes at `<prefix>/apps/<app id>` after a rotation is durable on it
/// (Architecture, Fleet): never the secret, nor a fingerprint of it; only that it changed.
public struct RotationNotice: Codable, Sendable, Equatable {
    /// The fleet's count of secret changes for this app (the previous notice's plus one).
    public var version: Int
    /// When the leader obtained the new secret (RFC 3339 on the wire).
    public var rotatedAt: Date
    /// The `[cluster] host` of the leader that published it.
    public var host: String

    public init(version: Int, rotatedAt: Date, host: String) {
        self.version = version
        self.rotatedAt = rotatedAt
        self.host = host
    }

    enum CodingKeys: String, CodingKey {
        case version
        case rotatedAt = "rotated_at"
        case host
    }
}

/// What a leader records at `<prefix>/intent/<app id>` in its fencing transaction, just
/// before it sends refresh-application-secret. A leader that takes over and finds one reads
/// GenAuth's current secret instead of rotating again (the hand-over).
public struct RotationIntent: Codable, Sendable, Equatable {
    public var host: String
    public var startedAt: Date

    public init(host: String, startedAt: Date) {
        self.host = host
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case host
        case startedAt = "started_at"
    }
}

/// The value of a candidate's election key: who it is and which apps it would rotate, so the
/// others can tell an app nobody rotates (a leader whose config lacks it).
public struct CandidateValue: Codable, Sendable, Equatable {
    public var host: String
    public var apps: [String]

    public init(host: String, apps: [String]) {
        self.host = host
        self.apps = apps
    }
}

/// JSON for the records above: RFC 3339 dates with fractional seconds, strict decoding, at
/// most 4 KiB (anything larger is not ours). Another fleet member's bytes are untrusted input.
public enum ClusterRecordCoding {
    static let limit = 4096
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-30T15:04:05.123Z`.
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Self.format(date))
        }
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(value))) ?? []
    }

    /// `date` in UTC to the nearest millisecond, e.g. `2027-01-15T08:00:00.135Z`. The format
    /// style truncates the binary fraction, and a parsed `.135` is stored as 0.13499…, so a
    /// notice written again came out a millisecond early (the answer fuzzer found it).
    static func format(_ date: Date) -> String {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        let seconds = (milliseconds / 1000).rounded(.down)
        let fraction = String(Int(milliseconds - seconds * 1000))
        let whole = Date.ISO8601FormatStyle().format(Date(timeIntervalSince1970: seconds))
        return "\(whole.dropLast()).\(String(repeating: "0", count: max(0, 3 - fraction.count)))\(fraction)Z"
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        guard bytes.count <= limit else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            if let date = try? Self.style.parse(text) { return date }
            if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an RFC 3339 date")
        }
        return try? decoder.decode(T.self, from: Data(bytes))
    }
}
