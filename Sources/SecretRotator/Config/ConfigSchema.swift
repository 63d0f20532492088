/// Every key the config accepts, per table. The loader reports anything else as unknown; tests
/// check that the annotated example config mentions each of them and that rotator.toml(5)
/// (`packaging/man/rotator.toml.5`) has an entry for each under its table's heading.
public enum ConfigSchema {
    public static let topLevel = ["genauth", "defaults", "app", "metrics", "cluster"]
    public static let genauth = [
        "host", "flavour", "access_key_id", "access_key_secret_credential", "access_key_secret_file",
        "access_key_secret", "request_timeout", "ca_file", "requests_per_second",
    ]
    public static let defaults = [
        "interval", "jitter", "max_concurrent", "retry", "directory", "mode", "owner", "group",
        "state_directory", "hook_timeout", "first_start", "verify_interval", "window", "consumer_action", "consumer_grace",
    ]
    public static let retry = ["initial", "max", "multiplier"]
    public static let app = [
        "id", "name", "action", "interval", "jitter", "first_start", "on_rotate", "hook_timeout", "window", "output",
        "consumers", "consumer_action", "consumer_grace",
    ]
    public static let output = [
        "path", "format", "env_key", "template", "mode", "owner", "group", "trailing_newline",
        "allow_world_readable", "allow_unsafe_directory",
    ]

    /// `[metrics]`: the node_exporter textfile.
    public static let metrics = ["textfile"]

    /// `[cluster]`: the etcd cluster a fleet shares.
    public static let cluster = [
        "endpoints", "prefix", "lease_ttl", "host", "group", "ca_file", "cert_file", "key_file", "user", "password_credential",
        "password_file",
    ]

    /// Keys whose values are secrets: no message ever quotes their value, whatever its type.
    public static let secretKeys: Set<String> = ["access_key_secret"]

    /// The environment variable consulted when no file or credential names the access key secret.
    public static let accessKeySecretVariable = "GENAUTH_ACCESS_KEY_SECRET"
    public static let defaultConfigPath = "/etc/secret-rotator/rotator.toml"
    public static let configPathVariable = "SECRET_ROTATOR_CONFIG"
    public static let minimumInterval: Duration = .seconds(60)
    /// Lowers the minimum interval, for tests and demos that rotate every few seconds. Never
    /// needed in production; `check-config` shows the intervals it accepted.
    public static let minimumIntervalVariable = "SECRET_ROTATOR_MINIMUM_INTERVAL"
}
