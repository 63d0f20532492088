#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOSSL

/// Reads `[cluster]`. Checked here: endpoints are http(s) URLs of one scheme with a
/// host and port and nothing after it, the prefix is an absolute etcd key path without a
/// trailing slash, the TTL is whole seconds from 2 s (etcd's own minimum with its default
/// election timeout) to 5 min, TLS files are absolute, trusted and hold PEM blocks, and a
/// client certificate comes with its key, and an etcd user comes with exactly one password
/// source (a systemd credential or a private file, read as `[genauth]` reads its secret).
struct ClusterSection {
    let host: ConfigHost
    /// Where the default prefix comes from (`[genauth] access_key_id`).
    let accessKeyID: String?
    var environment: [String: String] = [:]
    /// As `ConfigLoader.accessKeySecretNeeded`: false for commands that only look, which
    /// accept a credential that exists only inside the unit with a warning.
    var secretNeeded = true
    /// As `ConfigLoader.accessKeySecretIgnored`: the password is not read at all.
    var secretIgnored = false

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
        let login = readLogin(reader, prefix: prefix, sink: sink, valid: &valid)
        if login != nil && schemes == ["http"] {
            // A warning, not an error: a test cluster on loopback may run without TLS.
            sink.warning(
                reader.keyPath("endpoints"),
                "the etcd user's password and token would cross the network in clear text over http://; use https:// endpoints (ca_file, cert_file, key_file)")
        }
        if login != nil, let certFile, let commonName = clientCommonName(certFile) {
            // etcd (3.4.10 on) answers every /v3 gateway request made with such a certificate
            // "CommonName of client sending a request against gateway will be ignored and not
            // used as expected" once auth is enabled: the fleet would never get a token.
            sink.error(
                reader.keyPath("cert_file"),
                "\(certFile) has the CommonName \"\(commonName)\"; with access control enabled etcd's JSON gateway refuses every request made with a client certificate that has one. Issue it without a CN (e.g. openssl req -subj /O=secret-rotator); the etcd identity is [cluster] user")
            valid = false
        }
        guard valid else { return nil }
        return ClusterSettings(
            endpoints: endpoints, prefix: prefix, leaseTTL: ttl, host: hostName, group: group, caFile: caFile,
            certFile: certFile, keyFile: keyFile, user: login?.user, password: login?.password, passwordSource: login?.source)
    }

    /// `user` with `password_credential` and/or `password_file`: the etcd user this host
    /// authenticates as. Either half alone is an error; the credential wins inside the unit,
    /// the file outside it (as `[genauth]`'s access key secret).
    private func readLogin(_ reader: TableReader, prefix: String, sink: DiagnosticCollector, valid: inout Bool)
        -> (user: String, password: SecretValue, source: AccessKeySecretSource)?
    {
        let user = reader.string("user", example: "\"secret-rotator\"")
        let credentialName = reader.string("password_credential", example: "\"etcd-password\"")
        let filePath = reader.string("password_file", example: "\"/etc/secret-rotator/etcd-password\"")
        guard let user else {
            if credentialName != nil || filePath != nil {
                sink.error(
                    reader.keyPath(credentialName != nil ? "password_credential" : "password_file"),
                    "a password is set but no user: add user = \"NAME\", the etcd user (etcdctl user add NAME) whose role may read and write \(prefix)/")
                valid = false
            }
            return nil
        }
        if user.isEmpty || user.utf8.count > 128 || user.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) {
            sink.error(reader.keyPath("user"), "\"\(user)\" is not an etcd user name; use 1 to 128 characters without whitespace or control characters")
            valid = false
            return nil
        }
        guard credentialName != nil || filePath != nil else {
            sink.error(
                reader.keyPath("user"),
                "etcd user \"\(user)\" has no password source: set password_credential (the name given to LoadCredential= in the unit) or password_file (a file only the daemon's user can read, mode 0600)")
            valid = false
            return nil
        }
        let secrets = SecretSourceReader(environment: environment, host: host, what: "etcd password")
        var result: (value: SecretValue, source: AccessKeySecretSource)?
        if let name = credentialName {
            let key = reader.keyPath("password_credential")
            if let problem = SecretSourceReader.credentialNameProblem(name, example: "etcd-password") {
                sink.error(key, problem)
                valid = false
                return nil
            }
            let path = secrets.credentialPath(name)
            let source = AccessKeySecretSource.credential(name: name, path: path ?? "$CREDENTIALS_DIRECTORY/\(name)")
            if secretIgnored { return (user, SecretValue(""), source) }
            if let path {
                guard let read = secrets.readFile(path, source: source, keyPath: key, sink: sink) else {
                    valid = false
                    return nil
                }
                return (user, read.value, read.source)
            }
            if filePath == nil {
                if !secretNeeded {
                    sink.warning(
                        key,
                        "credential \"\(name)\" not checked: $CREDENTIALS_DIRECTORY is set only inside the unit (LoadCredential=\(name):...); the daemon reads it there")
                    return (user, SecretValue(""), source)
                }
                sink.error(
                    key,
                    "credential \"\(name)\" cannot be read: $CREDENTIALS_DIRECTORY is not set (systemd sets it for units with LoadCredential=\(name):...); outside the unit also set password_file")
                valid = false
                return nil
            }
        }
        if let path = filePath {
            let key = reader.keyPath("password_file")
            if let problem = ValueRules.absolutePathProblem(path) {
                sink.error(key, problem)
                valid = false
                return nil
            }
            if secretIgnored { return (user, SecretValue(""), .file(path: path)) }
            result = secrets.readFile(path, source: .file(path: path), keyPath: key, sink: sink, privateFile: true)
        }
        guard let result else {
            valid = false
            return nil
        }
        return (user, result.value, result.source)
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

    /// The first certificate's subject CommonName, nil when it has none or cannot be parsed
    /// (the TLS set-up reports a file it cannot use).
    private func clientCommonName(_ path: String) -> String? {
        guard let text = try? host.readTrustedText(path, "etcd client certificate", true),
            let certificate = try? NIOSSLCertificate.fromPEMBytes(Array(text.utf8)).first
        else { return nil }
        return certificate.subjectName.first { $0.type == .commonName && !$0.value.isEmpty }?.value
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
