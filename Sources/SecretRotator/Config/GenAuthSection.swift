/// Reads `[genauth]`: where the API is and how to authenticate, including finding the access
/// key secret without ever putting its value into a message.
struct GenAuthSection {
    let environment: [String: String]
    let configFileMode: FileMode?
    let secretNeeded: Bool
    var secretIgnored = false
    let host: ConfigHost

    private var secrets: SecretSourceReader { SecretSourceReader(environment: environment, host: host, what: "access key secret") }

    func read(_ reader: TableReader?, sink: DiagnosticCollector) -> GenAuthSettings? {
        guard let reader else {
            sink.error(
                "genauth",
                "missing [genauth] table; it needs at least access_key_id and an access key secret source")
            return nil
        }
        defer { reader.reportUnknownKeys(known: ConfigSchema.genauth) }
        let flavour = reader.choice("flavour", as: APIFlavour.self) ?? .genauth
        var host: String?
        if let written = reader.string("host", example: "\"https://api.genauth.ai\"") {
            switch ValueRules.hostURL(written) {
            case .success(let normalized): host = normalized
            case .failure(let problem): sink.error(reader.keyPath("host"), problem.message)
            }
        } else {
            host = flavour.defaultHost
        }

        let accessKeyID = reader.string("access_key_id", example: "\"6229ff...\"")
        if let accessKeyID {
            if let problem = ValueRules.identifierProblem(accessKeyID, what: "access_key_id") {
                sink.error(reader.keyPath("access_key_id"), problem)
            }
        } else if !reader.contains("access_key_id") {
            sink.error(reader.keyPath("access_key_id"), "missing; give the access key id (or user pool id) of the management key")
        }

        var requestTimeout = reader.duration("request_timeout") ?? .seconds(10)
        if requestTimeout <= .zero || requestTimeout > .seconds(300) {
            sink.error(reader.keyPath("request_timeout"), "must be more than 0s and at most 5m")
            requestTimeout = .seconds(10)
        }

        var caFile = reader.string("ca_file", example: "\"/etc/ssl/private-ca.pem\"")
        if let path = caFile {
            if let problem = ValueRules.absolutePathProblem(path) {
                sink.error(reader.keyPath("ca_file"), problem)
                caFile = nil
            } else {
                do {
                    // The CAs it lists decide whom the daemon sends the access key to.
                    let text = try self.host.readTrustedText(path, "CA file", true)
                    if !text.contains("-----BEGIN CERTIFICATE-----") {
                        sink.error(reader.keyPath("ca_file"), "\(path) contains no PEM certificate")
                    }
                } catch {
                    sink.error(reader.keyPath("ca_file"), error.message)
                }
            }
        }

        var requestsPerSecond = reader.double("requests_per_second") ?? 5
        if !(requestsPerSecond > 0 && requestsPerSecond <= 1000) {
            sink.error(reader.keyPath("requests_per_second"), "must be more than 0 and at most 1000")
            requestsPerSecond = 5
        }

        let secret = readAccessKeySecret(reader, sink: sink)
        guard let host, let accessKeyID, let secret else { return nil }
        return GenAuthSettings(
            host: host, flavour: flavour, accessKeyID: accessKeyID, accessKeySecret: secret.value,
            accessKeySecretSource: secret.source, requestTimeout: requestTimeout, caFile: caFile,
            requestsPerSecond: requestsPerSecond)
    }

    /// Sources in order: systemd credential, file, environment, inline. A source that is named
    /// but broken is an error, never a silent fall-through to a weaker one; the exception is a
    /// credential outside systemd (no $CREDENTIALS_DIRECTORY): the next configured source is
    /// used, and with none, commands that only look (`check-config`, `status`) still work from
    /// a shell, with a warning that the credential itself was not checked.
    private func readAccessKeySecret(_ reader: TableReader, sink: DiagnosticCollector)
        -> (value: SecretValue, source: AccessKeySecretSource)?
    {
        let credentialName = reader.string("access_key_secret_credential", example: "\"genauth-access-key-secret\"")
        let filePath = reader.string("access_key_secret_file", example: "\"/etc/secret-rotator/access-key-secret\"")
        let inline = reader.string("access_key_secret")
        let variable = ConfigSchema.accessKeySecretVariable

        if secretIgnored {
            // Never read: only where it would come from, for messages.
            if let name = credentialName { return (SecretValue(""), .credential(name: name, path: "$CREDENTIALS_DIRECTORY/\(name)")) }
            if let filePath { return (SecretValue(""), .file(path: filePath)) }
            if environment[variable] != nil { return (SecretValue(""), .environment(variable: variable)) }
            if inline != nil { return (SecretValue(""), .inline) }
        }
        if inline != nil, let mode = configFileMode, !mode.isOwnerOnly {
            sink.warning(
                reader.keyPath("access_key_secret"),
                "the access key secret is written inline in a config file with mode \(mode), readable by more than its owner; chmod 0600 the file or use access_key_secret_credential or access_key_secret_file"
            )
        }

        if let name = credentialName {
            let key = reader.keyPath("access_key_secret_credential")
            if let problem = SecretSourceReader.credentialNameProblem(name, example: "genauth-access-key-secret") {
                sink.error(key, problem)
                return nil
            }
            if let path = secrets.credentialPath(name) {
                return secrets.readFile(path, source: .credential(name: name, path: path), keyPath: key, sink: sink)
            }
            if filePath == nil && environment[variable] == nil && inline == nil {
                if !secretNeeded {
                    sink.warning(
                        key,
                        "credential \"\(name)\" not checked: $CREDENTIALS_DIRECTORY is set only inside the unit (LoadCredential=\(name):...); the daemon reads it there"
                    )
                    return (SecretValue(""), .credential(name: name, path: "$CREDENTIALS_DIRECTORY/\(name)"))
                }
                sink.error(
                    key,
                    "credential \"\(name)\" cannot be read: $CREDENTIALS_DIRECTORY is not set (systemd sets it for units with LoadCredential=\(name):...); outside the unit also set access_key_secret_file or \(variable)"
                )
                return nil
            }
        }
        if let path = filePath {
            let key = reader.keyPath("access_key_secret_file")
            if let problem = ValueRules.absolutePathProblem(path) {
                sink.error(key, problem)
                return nil
            }
            let read = secrets.readFile(path, source: .file(path: path), keyPath: key, sink: sink)
            // A warning, not an error like the [cluster] key_file's: installs whose key file
            // is world-readable must keep starting, yet every local user can read this key.
            if read != nil, let mode = host.fileMode(path), mode & 0o007 != 0 {
                sink.warning(
                    key,
                    "\(path) is readable by every user (mode \(String(mode & 0o777, radix: 8))); chmod o-rwx it (0600 owned by the daemon's user, or 0640 with the daemon's group), or load it with LoadCredential= and access_key_secret_credential")
            }
            return read
        }
        if let value = environment[variable] {
            return secrets.checked(value, source: .environment(variable: variable), keyPath: reader.keyPath("access_key_secret"), sink: sink)
        }
        if let inline {
            return secrets.checked(inline, source: .inline, keyPath: reader.keyPath("access_key_secret"), sink: sink)
        }
        if credentialName == nil {
            sink.error(
                reader.keyPath("access_key_secret_credential"),
                "no access key secret: set access_key_secret_credential (systemd LoadCredential=), access_key_secret_file, the \(variable) environment variable, or access_key_secret"
            )
        }
        return nil
    }
}
