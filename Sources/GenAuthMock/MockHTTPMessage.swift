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
        query.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecode(String(kv[0]))
            let value = kv.count > 1 ? percentDecode(String(kv[1])) : ""
            return (name, value)
        }
    }

    static func percentDecode(_ s: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(s.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), let hi = iterator.next(), let lo = iterator.next(),
                let value = UInt8(String(decoding: [hi, lo], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
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
