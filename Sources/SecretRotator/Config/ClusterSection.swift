#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads `[cluster]`. Checked here: endpoints are http(s) URLs of one scheme with a
/// host and port and nothing after it, the prefix is an absolute etcd key path without a
/// trailing slash, the TTL is whole seconds from 2 s (etcd's own minimum with its default
/// election timeout) to 5 min, TLS files are absolute, trusted and hold PEM blocks, and a
/// client certificate comes with its key.
struct ClusterSection {
    let host: ConfigHost
    /// Where the default prefix comes from (`[genauth] access_key_id`).
    let accessKeyID: String?

    static let minimumTTL: Duration = .seconds(2)
    static let maximumTTL: Duration = .seconds(300)

    func read(_ reader: TableReader?, sink: DiagnosticCollector) -> ClusterSettings? {
        guard let reader else { return nil }
        defer { reader.reportUnknownKeys(known: ConfigSchema.cluster) }
        var valid = true
        let listed = reader.stringArray("endpoints", example: "[\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]")
        let endpoints = listed ?? []
        if listed?.isEmpty == true || !reader.contains("endpoints") {
            sink.error(
                reader.keyPath("endpoints"),
                "[cluster] needs endpoints: the client URLs of the etcd members, e.g. endpoints = [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\", \"http://10.0.0.3:2379\"]")
        }
        if endpoints.isEmpty { valid = false }
        var schemes: Set<String> = []
        for (index, endpoint) in endpoints.enumerated() {
            if let problem = Self.endpointProblem(endpoint) {
                sink.error("\(reader.keyPath("endpoints"))[\(index)]", problem)
                valid = false
            } else if let scheme = endpoint.split(separator: ":").first {
                schemes.insert(String(scheme))
            }
        }
        if schemes.count > 1 {
            sink.error(reader.keyPath("endpoints"), "mixes http and https endpoints; one cluster is reached one way")
            valid = false
        }
        if Set(endpoints).count != endpoints.count {
            sink.error(reader.keyPath("endpoints"), "lists an endpoint twice")
            valid = false
        }

        var prefix = "/secret-rotator/\(accessKeyID ?? "default")"
        if let own = reader.string("prefix", example: "\"/secret-rotator/62a1b2c3d4e5f60718293a4b\"") {
            if let problem = Self.prefixProblem(own) {
                sink.error(reader.keyPath("prefix"), problem)
                valid = false
            } else {
                prefix = own
            }
        }

        var ttl: Duration = .seconds(10)
        if let own = reader.duration("lease_ttl") {
            if own < Self.minimumTTL || own > Self.maximumTTL || own.components.attoseconds != 0 {
                sink.error(
                    reader.keyPath("lease_ttl"),
                    "\(DurationSyntax.format(own)) is not whole seconds from 2s to 5m; etcd grants leases in seconds and refuses TTLs below about 2s (1.5 × its election timeout)")
                valid = false
            } else {
                ttl = own
            }
        }

        var hostName = Self.systemHostName()
        if let own = reader.string("host", example: "\"web-1\"") {
            if let problem = Self.nameProblem(own, what: "host") {
                sink.error(reader.keyPath("host"), problem)
                valid = false
            } else {
                hostName = own
            }
        }
        var group = "default"
        if let own = reader.string("group", example: "\"default\"") {
            if let problem = Self.nameProblem(own, what: "group") {
                sink.error(reader.keyPath("group"), problem)
                valid = false
            } else {
                group = own
            }
        }

        let caFile = pemFile(reader, "ca_file", what: "etcd CA file", marker: "CERTIFICATE", sink: sink, valid: &valid)
        let certFile = pemFile(reader, "cert_file", what: "etcd client certificate", marker: "CERTIFICATE", sink: sink, valid: &valid)
        let keyFile = pemFile(reader, "key_file", what: "etcd client key", marker: "PRIVATE KEY", sink: sink, valid: &valid)
        if (certFile == nil) != (keyFile == nil) && valid {
            sink.error(
                reader.keyPath(certFile == nil ? "cert_file" : "key_file"),
                "cert_file and key_file go together: a client certificate is useless without its key and the other way round")
            valid = false
        }
        if (caFile != nil || certFile != nil) && schemes == ["http"] {
            sink.error(reader.keyPath("endpoints"), "TLS files are set but the endpoints are http://; use https:// endpoints")
            valid = false
        }
        guard valid else { return nil }
        return ClusterSettings(
            endpoints: endpoints, prefix: prefix, leaseTTL: ttl, host: hostName, group: group, caFile: caFile,
            certFile: certFile, keyFile: keyFile)
    }

    private func pemFile(
        _ reader: TableReader, _ key: String, what: String, marker: String, sink: DiagnosticCollector, valid: inout Bool
    ) -> String? {
        guard let path = reader.string(key, example: "\"/etc/secret-rotator/etcd/\(key.replacingOccurrences(of: "_file", with: "")).pem\"") else {
            return nil
        }
        if let problem = ValueRules.absolutePathProblem(path) {
            sink.error(reader.keyPath(key), problem)
            valid = false
            return nil
        }
        do {
            // Whoever can change these files decides whom the daemon trusts as etcd, or who
            // it is to etcd: the same owner and mode rule as the access key file.
            let text = try host.readTrustedText(path, what, true)
            if key == "key_file", let mode = host.fileMode(path), mode & 0o007 != 0 {
                sink.error(
                    reader.keyPath(key),
                    "\(path) is readable by every user (mode \(String(mode & 0o777, radix: 8))); a private key must not be: chmod o-rwx it (0600, or 0640 with the daemon's group)")
                valid = false
                return nil
            }
            if !text.contains("-----BEGIN ") || !text.contains(marker) {
                sink.error(reader.keyPath(key), "\(path) holds no PEM \(marker.lowercased()) block")
                valid = false
                return nil
            }
        } catch {
            sink.error(reader.keyPath(key), error.message)
            valid = false
            return nil
        }
        return path
    }

    static func endpointProblem(_ endpoint: String) -> String? {
        let example = "write it as http://HOST:PORT, e.g. http://10.0.0.1:2379"
        guard let scheme = ["http://", "https://"].first(where: { endpoint.hasPrefix($0) }) else {
            return "\"\(endpoint)\" is not an http:// or https:// URL; \(example)"
        }
        let rest = endpoint.dropFirst(scheme.count)
        if rest.isEmpty || rest.contains("/") || rest.contains("?") || rest.contains("@") || rest.contains(where: { $0.isWhitespace }) {
            return "\"\(endpoint)\" must be a bare URL with a host and port and no path; \(example)"
        }
        guard let colon = rest.lastIndex(of: ":"), rest[..<colon].isEmpty == false else {
            return "\"\(endpoint)\" has no port; \(example) (etcd's client port is 2379)"
        }
        guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return "\"\(endpoint)\" has no valid port (1 to 65535); \(example)"
        }
        return nil
    }

    static func prefixProblem(_ prefix: String) -> String? {
        if !prefix.hasPrefix("/") || prefix.count < 2 {
            return "\"\(prefix)\" must start with / and name something, e.g. \"/secret-rotator/prod\""
        }
        if prefix.hasSuffix("/") { return "\"\(prefix)\" must not end with /" }
        if prefix.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) {
            return "the prefix contains whitespace or control characters"
        }
        if prefix.utf8.count > 512 { return "the prefix is longer than 512 bytes" }
        return nil
    }

    static func nameProblem(_ name: String, what: String) -> String? {
        if name.isEmpty || name.utf8.count > 128 || !ValueRules.hasOnlySafeNameCharacters(name) {
            return "\"\(name)\" is not a valid \(what) name; use 1 to 128 letters, digits, '-', '_' or '.'"
        }
        return nil
    }

    static func systemHostName() -> String {
        let name = ProcessInfo.processInfo.hostName
        return nameProblem(name, what: "host") == nil ? name : "localhost"
    }
}
