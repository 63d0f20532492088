/// The validated, fully resolved configuration: every per-app value has already inherited
/// from `[defaults]`, every owner and group is a numeric id, every path is absolute. Code that
/// receives a `RotatorConfig` never has to re-check it.
public struct RotatorConfig: Sendable {
    /// The file it was read from, for messages and for reloading.
    public var sourcePath: String
    public var genauth: GenAuthSettings
    public var defaults: DefaultSettings
    public var apps: [AppConfig]
    /// `[metrics]`; empty (no textfile) when the table is absent.
    public var metrics = MetricsSettings()
    /// `[cluster]`; nil when the table is absent (a single host, Architecture, Fleet).
    public var cluster: ClusterSettings? = nil

    /// The app with this name, else with this id. O(N): for one lookup; many go through
    /// `AppLookup`.
    public func app(named nameOrID: String) -> AppConfig? {
        apps.first { $0.name == nameOrID } ?? apps.first { $0.id == nameOrID }
    }
}

/// Apps by name and by id, built once in O(N): resolving M names costs O(M), not O(N·M)
/// (`rotate` with thousands of names, a request directory with thousands of files).
public struct AppLookup: Sendable {
    private let byName: [String: Int]
    private let byID: [String: Int]
    private let apps: [AppConfig]

    public init(_ apps: [AppConfig]) {
        self.apps = apps
        byName = Dictionary(apps.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        byID = Dictionary(apps.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// As `RotatorConfig.app(named:)`: a name first, then an id.
    public func app(named nameOrID: String) -> AppConfig? {
        (byName[nameOrID] ?? byID[nameOrID]).map { apps[$0] }
    }
}

public struct GenAuthSettings: Sendable {
    public var host: String
    public var flavour: APIFlavour
    public var accessKeyID: String
    public var accessKeySecret: SecretValue
    /// Where the secret came from; shown by `check-config` instead of the value.
    public var accessKeySecretSource: AccessKeySecretSource
    public var requestTimeout: Duration
    public var caFile: String?
    /// The global budget of API calls, so a fleet of apps falling due together cannot hammer GenAuth.
    public var requestsPerSecond: Double
}

public enum AccessKeySecretSource: Sendable, Equatable, CustomStringConvertible {
    case credential(name: String, path: String)
    case file(path: String)
    case environment(variable: String)
    case inline

    public var description: String {
        switch self {
        case .credential(let name, let path): "systemd credential \"\(name)\" (\(path))"
        case .file(let path): "file \(path)"
        case .environment(let variable): "environment variable \(variable)"
        case .inline: "inline access_key_secret in the config file"
        }
    }
}

public struct RetryPolicy: Sendable, Equatable {
    public var initial: Duration
    public var max: Duration
    public var multiplier: Double
}

public enum AppAction: String, Sendable, CaseIterable {
    /// Calls refresh-application-secret on the interval: exactly one host may do this per app.
    case rotate
    /// Only reads the current secret and writes it when it changed (Architecture: a fleet has one rotating host per app).
    case follow
}

public enum FirstStart: String, Sendable, CaseIterable {
    /// Write the app's current secret without rotating it, then follow the schedule.
    case fetch
    /// Rotate at once on first start.
    case rotate
}

public struct DefaultSettings: Sendable {
    public var interval: Duration
    public var jitter: Duration
    public var maxConcurrent: Int
    public var retry: RetryPolicy
    /// The drop directory: apps without outputs get `<directory>/<name>`.
    public var directory: String
    public var mode: FileMode
    public var owner: AccountID?
    public var group: AccountID?
    public var stateDirectory: String
    public var hookTimeout: Duration
    public var firstStart: FirstStart
    /// How often each `rotate` app's current secret is read from GenAuth and compared with the
    /// one on disk (a changed one is adopted); `.zero` turns the check off. Default 1 hour.
    public var verifyInterval: Duration = .seconds(3_600)
    /// What consumer units are asked to do after a rotation (`consumer_action`).
    public var consumerAction: ConsumerAction = .reloadOrRestart
    /// How long a consumer may stay unconfirmed on an older secret before `status` reports it
    /// (`consumer_grace`). Default 1 minute: a notification takes milliseconds, a retry seconds.
    public var consumerGrace: Duration = .seconds(60)
    /// When scheduled rotations may start, for apps that set no `window` of their own; nil: any time.
    public var window: RotationWindow? = nil
}

public struct AppConfig: Sendable {
    public var id: String
    public var name: String
    public var action: AppAction
    public var interval: Duration
    public var jitter: Duration
    public var firstStart: FirstStart
    /// argv, run without a shell after all outputs of a version are written.
    public var onRotate: [String]?
    public var hookTimeout: Duration
    public var outputs: [OutputConfig]
    /// When its scheduled rotations may start (its own `window`, else `[defaults]`'s); nil:
    /// whenever they fall due. Only scheduled rotations of a `rotate` app wait for it.
    public var window: RotationWindow? = nil
    /// Where the app was configured: the main file or one of apps.d/*.toml (check-config
    /// shows it; diagnostics about the app point there). Nil for configs built in code.
    public var source: AppSource? = nil
    /// systemd units (`billing.service`) that use the secret: told over D-Bus once it is
    /// durable on every output, then checked to have picked it up (`consumers`).
    public var consumers: [String] = []
    public var consumerAction: ConsumerAction = .reloadOrRestart
    public var consumerGrace: Duration = .seconds(60)
}

/// The file and table an `[[app]]` was read from.
public struct AppSource: Sendable, Equatable {
    public var file: String
    /// The table's key path inside its file, e.g. `app[2]`.
    public var keyPath: String
    public var line: Int?
}

public struct OutputConfig: Sendable {
    public var path: String
    public var format: OutputFormat
    public var envKey: String?
    public var templatePath: String?
    public var mode: FileMode
    public var owner: AccountID?
    public var group: AccountID?
    public var trailingNewline: Bool
    public var allowWorldReadable: Bool
    public var allowUnsafeDirectory: Bool
    /// True for the implicit `<directory>/<name>` output, whose parent the writer may create.
    public var inDropDirectory: Bool
}
