import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import SecretRotator
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the rotation daemon (or, with --once, do what is due and exit).",
        discussion: """
            Rotates each app on its schedule, writes new secrets atomically to their outputs and \
            runs on_rotate hooks, journalling every step so that a crash or restart resumes \
            without rotating twice. Only one instance may use a state directory.

            Signals (secret-rotator(8), SIGNALS): SIGTERM/SIGINT stop it, exit 0; SIGHUP \
            re-reads the config (an invalid one is refused and logged, the old one stays); \
            SIGUSR1 picks up `rotate`/`fetch` requests.

            With --once (for a systemd timer or cron): do everything that is due now, then exit \
            0, also when nothing was due; non-zero only when an app failed. Refused with \
            [cluster], where a leader holds its etcd lease between rotations.

            With [cluster] (the guide "Running a fleet"): rotate apps are rotated only while this \
            host leads the etcd election, and every refresh is fenced by a transaction on its \
            election key; every host watches for rotation notices and fetches new secrets at once.

            Exit status: 0 ok, 1 an app failed (--once), 75 another instance holds the state \
            directory, 78 invalid config.
            """)

    @OptionGroup var options: DaemonOptions

    @Flag(name: .long, help: "Do everything that is due now, then exit.")
    var once = false

    func run() async throws {
        // --once keeps the default action: killed mid-way, its steps resume from the journal.
        if !once { EarlyStopSignal.install() }
        ControlSignals.ignoreUntilTrapped()
        let config = try options.loadConfig()
        // Before anything that needs shutting down is made (a client not shut down traps).
        if config.cluster != nil && once {
            StandardError.write(
                "secret-rotator: run --once cannot take part in the [cluster] election (a leader holds its etcd lease between rotations); run the daemon, or remove [cluster] for a single host")
            throw ExitCode(78)
        }
        options.bootstrapLogging()
        let stateDirectory = options.stateDirectory(for: config)
        let lock = try DaemonOptions.lock(stateDirectory)
        let appLocks = try DaemonOptions.lockApps(config, stateDirectory: stateDirectory)
        let logger = Logger(label: "secret-rotator")
        // Always made, so a reload can add [metrics]; it writes only while a textfile is set.
        let textfile = MetricsTextfile(path: config.metrics.textfile)
        // Replaced by every reload with a client made from the new [genauth].
        let client = ReloadableGenAuthClient(try DaemonOptions.makeClient(config, metrics: textfile.metrics), metrics: textfile.metrics)
        // One value for the engine and the service: its database stays open for the process.
        let store = StateDirectory(path: stateDirectory)
        let engine = RotationEngine(config: config, api: client, stateDirectory: store, metrics: textfile.metrics)
        // Joined before the engine's first step: no refresh is ever sent without the fence.
        let fleet = try await DaemonOptions.joinFleet(config, engine: engine, stateDirectory: stateDirectory, metrics: textfile.metrics)
        let fleetTask = Task { await fleet?.coordinator.run() }
        let exporter = Task { await textfile.run() }
        var failed = false
        var unusableState = false
        do {
            try await engine.start()
            if once {
                failed = !(await runOnce(engine))
            } else {
                let notifier = Notifier()
                var events = RotationService.Events.systemd(notifier)
                events.configApplied = { config in textfile.setPath(config.metrics.textfile) }
                let service = RotationService(
                    engine: engine, configPath: options.configOption.path, loader: ConfigLoader(),
                    stateDirectory: store, events: events,
                    maximumSleep: notifier.watchdogInterval ?? RotationService.wallClockRecheck, appLocks: appLocks,
                    client: client, logger: logger)
                let group = service.serviceGroup(logger: logger)
                try await group.run()
                // STOPPING=1 goes out from the notifier's own thread: let it leave before exit.
                notifier.flush(upTo: .seconds(2))
            }
        } catch let error as StateDirectoryError {
            // The database could not be opened or prepared (a link, a directory, ENOSPC, EROFS):
            // an unusable state directory, 73 like the lock's own failures (sysexits EX_CANTCREAT).
            StandardError.write("secret-rotator: cannot use the state directory: \(error)")
            unusableState = true
        } catch {
            logger.critical("stopped by an error: \(error)")
            failed = true
        }
        // The engine has drained: leave the election so another host leads at once.
        fleetTask.cancel()
        await fleetTask.value
        await fleet?.store.shutdown()
        // Ends after a last write, so the file holds the final values (also after --once).
        exporter.cancel()
        await exporter.value
        try? await client.shutdown()
        withExtendedLifetime((lock, appLocks)) {}
        if unusableState { throw ExitCode(73) }
        if failed { throw ExitCode.failure }
    }

    /// One attempt per app: every due step runs (outputs are checked and repaired first), and an
    /// app that fails is reported with its backoff instead of being retried in a loop.
    private func runOnce(_ engine: RotationEngine) async -> Bool {
        await engine.runDue()
        let report = await engine.status()
        let now = Date()
        for app in report.failing {
            let retry = app.nextDue.map { " (next attempt \(StatusReport.due($0, now: now)))" } ?? ""
            StandardError.write("\(app.name): failed: \(app.lastError ?? "unknown error")\(retry)")
        }
        for app in report.apps where app.consecutiveFailures == 0 && app.unfinishedCall != nil {
            let at = app.nextDue.map { " (\(StatusReport.due($0, now: now)))" } ?? ""
            StandardError.write("\(app.name): a refresh's outcome is unknown; the next run reconciles it with GenAuth\(at)")
        }
        return report.failing.isEmpty && !report.apps.contains { $0.unfinishedCall != nil }
    }
}
