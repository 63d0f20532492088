/// Reads a secret the config names by source, never by value: a systemd credential
/// (`LoadCredential=`, read from `$CREDENTIALS_DIRECTORY`) or a file. `[genauth]` uses it for
/// the access key secret and `[cluster]` for the etcd user's password, so both follow one rule:
/// the file must be trusted (owner root or the daemon's user, not writable by others, no
/// planted link), only a trailing newline is stripped, and no message ever quotes the value.
struct SecretSourceReader {
    let environment: [String: String]
    let host: ConfigHost
    /// What the secret is, for messages: "access key secret", "etcd password".
    let what: String

    /// Why `name` cannot be a credential name (the name given to `LoadCredential=`), or nil.
    static func credentialNameProblem(_ name: String, example: String) -> String? {
        if name.isEmpty || name.contains("/") || name == "." || name == ".." {
            return "\"\(name)\" is not a credential name; use the name given to LoadCredential=, e.g. \"\(example)\""
        }
        return nil
    }

    /// `$CREDENTIALS_DIRECTORY/<name>` inside the unit; nil outside it (no such variable).
    func credentialPath(_ name: String) -> String? {
        guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else { return nil }
        return directory + "/" + name
    }

    /// Reads the secret from `path` as `source`; reports an error at `keyPath` and returns nil
    /// when the file is not trusted, cannot be read, is empty or holds control characters.
    /// - Parameter privateFile: also refuse a file every user may read (mode o+r).
    func readFile(
        _ path: String, source: AccessKeySecretSource, keyPath: String, sink: DiagnosticCollector, privateFile: Bool = false
    ) -> (value: SecretValue, source: AccessKeySecretSource)? {
        do {
            // Owned by a stranger or writable by others, it is not our key (and may be a link
            // someone planted to make us read another file).
            let text = try host.readTrustedText(path, "\(what) file", true)
            if privateFile, let mode = host.fileMode(path), mode & 0o007 != 0 {
                sink.error(
                    keyPath,
                    "\(path) is readable by every user (mode \(String(mode & 0o777, radix: 8))); a file holding the \(what) must not be: chmod o-rwx it (0600, or 0640 with the daemon's group)")
                return nil
            }
            return checked(text, source: source, keyPath: keyPath, sink: sink)
        } catch {
            sink.error(keyPath, "cannot read the \(what) from \(source): \(error.message)")
            return nil
        }
    }

    /// Only the trailing newline an editor or `echo` adds is stripped; anything else odd is an
    /// error described without echoing the value.
    func checked(
        _ raw: String, source: AccessKeySecretSource, keyPath: String, sink: DiagnosticCollector
    ) -> (value: SecretValue, source: AccessKeySecretSource)? {
        // Bytes, not Characters: Swift treats "\r\n" as one Character, so hasSuffix("\n") misses it.
        var bytes = Array(raw.utf8)
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        let value = String(decoding: bytes, as: UTF8.self)
        if value.isEmpty {
            sink.error(keyPath, "the \(what) from \(source) is empty")
            return nil
        }
        if value.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            sink.error(keyPath, "the \(what) from \(source) contains whitespace, line breaks or control characters (value not shown)")
            return nil
        }
        return (SecretValue(value), source)
    }
}
