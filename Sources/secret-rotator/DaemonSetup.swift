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

    static func makeClient(_ config: RotatorConfig) throws -> GenAuthClient {
        let settings = config.genauth
        do {
            return try GenAuthClient(
                configuration: GenAuthClientConfiguration(
                    host: settings.host, flavour: settings.flavour, accessKeyId: settings.accessKeyID,
                    accessKeySecret: settings.accessKeySecret, requestTimeout: settings.requestTimeout,
                    caFile: settings.caFile))
        } catch {
            StandardError.write("cannot set up the GenAuth client: \(error)")
            throw ExitCode(78)
        }
    }

    /// Takes the state-directory lock, then clears the temp files crashed writers left in the
    /// state directory and next to `config`'s outputs: writes no longer sweep their directory
    /// (only a failed one does), so start-up is where a crash's leftovers go. Under the lock,
    /// no other secret-rotator writes there.
    static func lock(_ stateDirectory: String, config: RotatorConfig) throws -> StateDirectoryLock {
        let lock: StateDirectoryLock
        do {
            try StateStore(directory: stateDirectory).prepare()
            lock = try StateDirectoryLock.acquire(stateDirectory: stateDirectory)
        } catch let error as StateDirectoryLock.HeldError {
            StandardError.write("secret-rotator: \(error)")
            throw ExitCode(75)
        } catch {
            StandardError.write("secret-rotator: cannot use the state directory: \(error)")
            throw ExitCode(73)
        }
        sweepStaleTemporaries(config: config, stateDirectory: stateDirectory)
        return lock
    }

    /// Best effort: a directory that cannot be swept is logged and the daemon starts anyway;
    /// the next failed write there sweeps it again.
    private static func sweepStaleTemporaries(config: RotatorConfig, stateDirectory: String) {
        let logger = Logger(label: "secret-rotator")
        let writer = AtomicFileWriter()
        // The StateStore's record directories (its files are written with AtomicFileWriter).
        var sweeps = ["apps", "pending"].map { writer.sweepStaleTemporaries(inDirectory: "\(stateDirectory)/\($0)") }
        // Template text does not matter for sweeping, only paths, owners and directory safety.
        let outputs = config.apps.flatMap { app in app.outputs.map { $0.outputSpec(template: nil) } }
        sweeps += OutputWriter().sweepStaleTemporaries(for: outputs)
        for sweep in sweeps {
            if !sweep.removed.isEmpty {
                logger.info(
                    "removed temp files a crashed writer left",
                    metadata: ["directory": "\(sweep.directory)", "files": "\(sweep.removed.joined(separator: " "))"])
            }
            if let error = sweep.error {
                logger.warning("cannot sweep stale temp files: \(error)", metadata: ["directory": "\(sweep.directory)"])
            }
        }
    }
}
