/// One HTTP request as the mock sees it, independent of NIO so the API logic is testable
/// and runs under a lock without touching the channel.
public struct MockHTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [(name: String, value: String)]
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, uri: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = parts.first.map(String.init) ?? "/"
        self.query = parts.count > 1 ? MockHTTPRequest.parseQuery(String(parts[1])) : []
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    static func parseQuery(_ query: String) -> [(name: String, value: String)] {
        rawPairs(query).map { (percentDecode($0.name), percentDecode($0.value)) }
    }

    /// An `application/x-www-form-urlencoded` body, or nil when any part is not valid
    /// percent-encoding (`strictPercentDecode`).
    static func parseForm(_ body: String) -> [(name: String, value: String)]? {
        var pairs: [(name: String, value: String)] = []
        for pair in rawPairs(body) {
            guard let name = strictPercentDecode(pair.name), let value = strictPercentDecode(pair.value) else { return nil }
            pairs.append((name, value))
        }
        return pairs
    }

    /// `a=b&c` as (name, value) pairs, still encoded.
    private static func rawPairs(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
        }
    }

    /// Percent-decoding with `+` as a space, lenient: text with a `%` not followed by two hex
    /// digits (or not UTF-8 once decoded) is kept as it came, never partly decoded.
    static func percentDecode(_ s: String) -> String {
        strictPercentDecode(s) ?? s
    }

    /// Percent-decoding with `+` as a space; nil for a `%` without two hex digits after it or
    /// bytes that are not UTF-8 (where a client must be refused, not guessed at).
    static func strictPercentDecode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// What the mock does with a request once it has decided.
public enum MockOutcome: Sendable {
    case respond(MockHTTPResponse)
    /// Close the connection without a response.
    case drop
}

public struct MockHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    static func json(_ value: MockJSON, status: Int = 200, extraHeaders: [(name: String, value: String)] = []) -> MockHTTPResponse {
        MockHTTPResponse(
            status: status,
            headers: [("Content-Type", "application/json; charset=utf-8")] + extraHeaders,
            body: Array(value.serialized.utf8)
        )
    }

    static func text(_ text: String, status: Int, contentType: String = "text/plain; charset=utf-8") -> MockHTTPResponse {
        MockHTTPResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }
}
