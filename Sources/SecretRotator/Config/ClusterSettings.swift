/// `[cluster]`: the etcd cluster a fleet of rotators shares (Architecture, Fleet).
/// Without the table (`RotatorConfig.cluster == nil`) nothing changes: `rotate` apps rotate,
/// `follow` apps poll. With it, `rotate` apps become candidates of one election and only its
/// leader rotates them; every host watches the prefix for rotation notices.
public struct ClusterSettings: Sendable, Equatable {
    /// Client URLs of the etcd members, e.g. `http://10.0.0.1:2379` (all `http` or all
    /// `https`). Requests go to one member at a time and move to the next when it fails.
    public var endpoints: [String]
    /// Every key of this fleet lives under it, e.g. `/secret-rotator/62a1b2c3d4e5f60718293a4b`.
    /// Default: `/secret-rotator/<access_key_id>` (for a user pool's own key pair the access
    /// key id is the user pool id, GenAuth console "Settings → Basic information").
    public var prefix: String
    /// TTL of this host's etcd lease (seconds resolution, 2 s to 5 min). A leader that stops
    /// renewing it loses the election after at most this long; default 10 s.
    public var leaseTTL: Duration
    /// The name this host publishes in notices and in the election (default: the host name).
    public var host: String
    /// The election this host's `rotate` apps take part in: hosts that list the same apps
    /// share a group. Default `default`.
    public var group: String
    /// PEM files for TLS to etcd; checked like the access key file (owner, mode, no link).
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    /// The etcd user this host authenticates as (`/v3/auth/authenticate`), for a cluster with
    /// `auth enable`; nil: no authentication. Its role needs readwrite on `<prefix>/` only.
    public var user: String?
    /// The user's password, read once at load from `passwordSource`; never logged.
    public var password: SecretValue?
    /// Where the password came from (a systemd credential or a 0600 file); shown instead of it.
    public var passwordSource: AccessKeySecretSource?

    public init(
        endpoints: [String], prefix: String, leaseTTL: Duration = .seconds(10), host: String, group: String = "default",
        caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, user: String? = nil,
        password: SecretValue? = nil, passwordSource: AccessKeySecretSource? = nil
    ) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.leaseTTL = leaseTTL
        self.host = host
        self.group = group
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.user = user
        self.password = password
        self.passwordSource = passwordSource
    }

    /// The etcd election name: `<prefix>/election/<group>`.
    public var electionName: String { "\(prefix)/election/\(group)" }
    /// `<prefix>/apps/<app id>`: the last rotation's notice `{version, rotated_at, host}`.
    public func noticeKey(appID: String) -> String { "\(prefix)/apps/\(appID)" }
    /// `<prefix>/intent/<app id>`: a refresh the leader is about to send (fencing, hand-over).
    public func intentKey(appID: String) -> String { "\(prefix)/intent/\(appID)" }
}

extension ClusterSettings {
    /// The `[cluster]` keys whose values differ between `old` and `new`, in the config's
    /// spelling (`endpoints`, `lease_ttl`, ...); `["[cluster]"]` when the table was added or
    /// removed. A reload names them when it refuses the change.
    public static func changedKeys(from old: ClusterSettings?, to new: ClusterSettings?) -> [String] {
        guard let old, let new else { return old == nil && new == nil ? [] : ["[cluster]"] }
        let keys: [(String, Bool)] = [
            ("endpoints", old.endpoints != new.endpoints), ("prefix", old.prefix != new.prefix),
            ("lease_ttl", old.leaseTTL != new.leaseTTL), ("host", old.host != new.host), ("group", old.group != new.group),
            ("ca_file", old.caFile != new.caFile), ("cert_file", old.certFile != new.certFile),
            ("key_file", old.keyFile != new.keyFile), ("user", old.user != new.user),
            // The client authenticates with the password it started with: a new one (same
            // source, new content) needs a restart as much as a new source does.
            ("password", old.passwordSource != new.passwordSource || old.password != new.password),
        ]
        return keys.filter(\.1).map(\.0)
    }
}
