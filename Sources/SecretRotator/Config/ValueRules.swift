/// Checks on single values that several sections share. Each returns a message for the
/// operator, or nil when the value is fine.
enum ValueRules {
    /// Paths must be absolute and plain: the daemon's working directory is `/` under systemd,
    /// and `..` components make "which file is this" a puzzle during an incident.
    static func absolutePathProblem(_ path: String) -> String? {
        if path.isEmpty { return "empty path; give an absolute path such as /etc/app/secret" }
        if !path.hasPrefix("/") {
            return "\"\(path)\" is a relative path; give an absolute path (the daemon runs from /)"
        }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "path contains control characters"
        }
        if path.count > 1 && path.hasSuffix("/") {
            return "\"\(path)\" ends with a slash; name the file or directory without it"
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if components.contains(where: { $0 == ".." || $0 == "." }) {
            return "\"\(path)\" contains \".\" or \"..\" components; write the plain absolute path"
        }
        if path.count > 1 && components.contains(where: \.isEmpty) {
            return "\"\(path)\" contains an empty component (\"//\"); write the plain absolute path"
        }
        return nil
    }

    static let safeNameRule = "use 1-128 letters, digits, '.', '_' or '-', not starting with '.'"

    /// App names become file names in the drop directory, so anything that could escape it,
    /// hide the file or confuse a shell is refused.
    static func unsafeNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "empty name; \(safeNameRule)" }
        if name == "." || name == ".." { return "\"\(name)\" cannot be a file name; \(safeNameRule)" }
        if name.utf8.contains(UInt8(ascii: "/")) { return "name \"\(name)\" contains '/', which would leave the drop directory; \(safeNameRule)" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "name contains control characters; \(safeNameRule)"
        }
        if name.hasPrefix(".") { return "name \"\(name)\" starts with '.', which hides the file; \(safeNameRule)" }
        if name.utf8.count > 128 { return "name is longer than 128 characters; \(safeNameRule)" }
        if !hasOnlySafeNameCharacters(name) { return "name \"\(name)\" contains characters unsafe in a file name; \(safeNameRule)" }
        return nil
    }

    /// Only ASCII letters, digits, '.', '_' and '-': the characters of an app name, and of a
    /// `[cluster]` host or group name.
    static func hasOnlySafeNameCharacters(_ name: String) -> Bool {
        name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    /// App ids and access key ids go into URLs and headers: printable ASCII without spaces.
    static func identifierProblem(_ value: String, what: String) -> String? {
        if value.isEmpty { return "empty \(what)" }
        if value.utf8.count > 128 { return "\(what) is longer than 128 characters" }
        let printable = value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        if !printable { return "\(what) must be printable ASCII without spaces" }
        // Bytes, not `contains("/")`: Foundation's substring search took a tenth of reading a
        // config of 10,000 apps.
        if value.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "#") }) {
            return "\(what) contains '/', '?', '&' or '#'"
        }
        return nil
    }

    static func envKeyProblem(_ key: String) -> String? {
        if OutputRenderer.isValidEnvKey(key) { return nil }
        return "\"\(key)\" is not a valid environment variable name; use letters, digits and '_', not starting with a digit"
    }

    /// Returns the normalized host URL or a problem. Plain http is allowed only to loopback,
    /// because the access key secret and every rotated secret cross this connection.
    static func hostURL(_ text: String) -> Result<String, ValueSyntaxError> {
        let scheme: String
        let rest: Substring
        if text.hasPrefix("https://") {
            scheme = "https"
            rest = text.dropFirst("https://".count)
        } else if text.hasPrefix("http://") {
            scheme = "http"
            rest = text.dropFirst("http://".count)
        } else {
            return .failure(ValueSyntaxError("\"\(text)\" is not an https:// URL such as \"https://api.genauth.ai\""))
        }
        if text.contains("?") || text.contains("#") {
            return .failure(ValueSyntaxError("\"\(text)\" has a query or fragment; give only scheme, host, port and path"))
        }
        if text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) {
            return .failure(ValueSyntaxError("host URL contains spaces, control or non-ASCII characters"))
        }
        let authority = rest.prefix { $0 != "/" }
        if authority.contains("@") {
            return .failure(ValueSyntaxError("\"\(text)\" contains user info ('@'); credentials never go in the URL"))
        }
        let hostName: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                return .failure(ValueSyntaxError("\"\(text)\" has an unterminated IPv6 address"))
            }
            hostName = authority[authority.index(after: authority.startIndex)..<close]
            let afterClose = authority[authority.index(after: close)...]
            if afterClose.hasPrefix(":") { portText = afterClose.dropFirst() } else if !afterClose.isEmpty {
                return .failure(ValueSyntaxError("\"\(text)\" has text after the IPv6 address"))
            }
        } else if let colon = authority.firstIndex(of: ":") {
            hostName = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            hostName = authority
        }
        if hostName.isEmpty {
            return .failure(ValueSyntaxError("\"\(text)\" has no host name"))
        }
        if let portText {
            guard let port = Int(portText), (1...65_535).contains(port) else {
                return .failure(ValueSyntaxError("\"\(text)\" has an invalid port \"\(portText)\"; use 1-65535"))
            }
        }
        if scheme == "http" {
            let loopback = hostName == "localhost" || hostName == "::1" || hostName.hasPrefix("127.")
            if !loopback {
                return .failure(
                    ValueSyntaxError(
                        "plain http:// is allowed only for a loopback host (127.0.0.1, ::1, localhost), e.g. the local mock; use https:// for \(hostName)"
                    ))
            }
        }
        var normalized = text
        while normalized.hasSuffix("/") { normalized.removeLast() }
        return .success(normalized)
    }
}
