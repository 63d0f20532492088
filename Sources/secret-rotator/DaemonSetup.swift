import ArgumentParser
import Logging
import SecretRotator

/// What `run`, `rotate` and `fetch` share: load the config (exit 78 on errors), pick the state
/// directory, set up logging and the GenAuth client.
struct DaemonOptions: ParsableArguments {
    @OptionGroup var configOption: ConfigOption
    @OptionGroup var stateDirectoryOption: StateDirectoryOption

    @Flag(name: .long, help: "Log debug details (never secrets).")
    var verbose = false

    func loadConfig() throws -> RotatorConfig {
        try configOption.loadConfig()
    }

    func stateDirectory(for config: RotatorConfig) -> String {
        stateDirectoryOption.path(for: config)
    }

    /// Native journald entries under systemd, readable stderr lines otherwise.
    func bootstrapLogging() {
        JournalLogHandler.bootstrap(level: verbose ? .debug : .info)
    }

    /// - Parameter metrics: where the client reports its API requests (the daemon's textfile).
    static func makeClient(_ config: RotatorConfig, metrics: RotatorMetrics = .disabled) throws -> GenAuthClient {
        let settings = config.genauth
        do {
            return try GenAuthClient(configuration: GenAuthClientConfiguration(settings), metrics: metrics)
        } catch {
            StandardError.write("cannot set up the GenAuth client: \(error)")
            throw ExitCode(78)
        }
    }

    /// The fleet this daemon is part of (`[cluster]`): an etcd client and the
    /// coordinator, with the engine already joined to it, so no refresh is ever sent without
    /// the fence. Nil without `[cluster]`. Exit 78 when the TLS files cannot be used.
    static func joinFleet(
        _ config: RotatorConfig, engine: RotationEngine, stateDirectory: String, metrics: RotatorMetrics
    ) async throws -> (coordinator: FleetCoordinator, store: EtcdGatewayClient)? {
        guard let settings = config.cluster else { return nil }
        let store: EtcdGatewayClient
        do {
            // A third of the keepalive period per member, so a frozen member leaves time for the next.
            store = try EtcdGatewayClient(
                settings: settings, unaryTimeout: max(.milliseconds(300), min(settings.leaseTTL / 4, .seconds(3))))
        } catch {
            StandardError.write("secret-rotator: cannot set up the etcd client: \(error)")
            throw ExitCode(78)
        }
        let coordinator = FleetCoordinator(
            settings: settings, store: store, engine: engine, stateDirectory: stateDirectory, metrics: metrics,
            logger: Logger(label: "secret-rotator.cluster"))
        await engine.joinCluster(coordinator)
        return (coordinator, store)
    }

    /// One writer per app on this host: the apps of `config`, locked in the runtime directory
    /// (`AppLocks`). Exit 75 when another process holds one, 73 when the locks cannot be made.
    static func lockApps(_ config: RotatorConfig, stateDirectory: String) throws -> AppLocks {
        let locks = AppLocks(stateDirectory: stateDirectory)
        do {
            try locks.hold(exactly: config.apps.map(\.id))
        } catch {
            StandardError.write("secret-rotator: \(error)")
            throw ExitCode(error.isHeldByAnother ? 75 : 73)
        }
        return locks
    }

    static func lock(_ stateDirectory: String) throws -> StateDirectoryLock {
        do {
            try StateDirectory(path: stateDirectory).createDirectory()
            return try StateDirectoryLock.acquire(stateDirectory: stateDirectory)
        } catch let error as StateDirectoryLockError {
            StandardError.write("secret-rotator: \(error)")
            // 75 only when another instance holds it; a lock file that cannot be opened
            // (read-only or broken state directory) is 73, like any other unusable directory.
            throw ExitCode(error.isHeldByAnother ? 75 : 73)
        } catch {
            StandardError.write("secret-rotator: cannot use the state directory: \(error)")
            throw ExitCode(73)
        }
    }
}
