/// What validating a config may ask of the host besides the config text itself: the files the
/// config names (CA file, access key secret file or credential, templates) and the ids of
/// owner and group names. `system` reads the disk and NSS; the config fuzzer passes an
/// in-memory host so that `ConfigLoader.load(text:path:fileMode:)` reads no file. (The output
/// path conflict check still looks paths up with realpath and stat.)
struct ConfigHost: Sendable {
    /// The text of a file the config names; errors name the path and say what went wrong.
    var readText: @Sendable (_ path: String) throws(ValueSyntaxError) -> String
    /// The same for a file that must also be trusted (owner and mode; `ConfigFileReader.readTrusted`).
    var readTrustedText: @Sendable (_ path: String, _ what: String, _ followSymlinks: Bool) throws(ValueSyntaxError) -> String
    /// The id of a user or group name (never numeric: those need no lookup), or nil when unknown.
    var accountID: @Sendable (_ name: String, _ kind: AccountLookup.Kind) -> UInt32?
    /// The trusted absolute path of an `on_rotate` program (`ConfigFileReader.trustedProgram`).
    var resolveProgram: @Sendable (_ program: String) throws(ValueSyntaxError) -> String = { program throws(ValueSyntaxError) in
        try ConfigFileReader.trustedProgram(program, searchPath: ProcessEnvironment.current["PATH"])
    }

    /// The permission bits of a file, nil when it cannot be read (the read's own error says why).
    var fileMode: @Sendable (_ path: String) -> UInt16? = { path in
        (try? ConfigFileReader.read(path)).map { UInt16($0.mode.rawValue & 0o7777) }
    }

    static let system = ConfigHost(
        readText: { path throws(ValueSyntaxError) in try ConfigFileReader.read(path).text },
        readTrustedText: { path, what, followSymlinks throws(ValueSyntaxError) in
            try ConfigFileReader.readTrusted(path, what: what, followSymlinks: followSymlinks).text
        },
        accountID: { name, kind in
            switch kind {
            case .user: AccountResolver.userID(named: name)?.rawValue
            case .group: AccountResolver.groupID(named: name)?.rawValue
            }
        })
}
