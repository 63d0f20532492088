#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The long-running daemon as a swift-service-lifecycle `Service`: one scheduler loop that
/// starts each app's step when it falls due and sleeps until the earliest next one, woken
/// early when a step finishes or a signal arrives; it re-reads the wall clock at least every
/// 5 minutes (clock jumps and suspend are noticed) and then compares every output with its
/// held secret. SIGHUP reloads the config, SIGUSR1 picks up `rotate`/`fetch` requests.
/// Graceful shutdown (SIGTERM) lets the steps in flight finish.
public final class RotationService: Service, Sendable {
    /// Hooks for the systemd integration (sd_notify) without tying this type to it.
    public struct Events: Sendable {
        public var ready: @Sendable (StatusReport) -> Void = { _ in }
        public var status: @Sendable (StatusReport) -> Void = { _ in }
        public var reloading: @Sendable () -> Void = {}
        /// Graceful shutdown began; the step in flight is still finishing.
        public var stopping: @Sendable () -> Void = {}
        /// Called from the scheduler loop itself, so a stuck loop stops the pings.
        public var heartbeat: @Sendable () -> Void = {}
        /// A reloaded config was accepted and is applied to the engine right after this returns
        /// (e.g. a changed `[metrics] textfile`).
        public var configApplied: @Sendable (RotatorConfig) -> Void = { _ in }

        public init() {}
    }

    public static let wallClockRecheck: Duration = .seconds(300)

    let engine: RotationEngine
    let configPath: String
    let loader: ConfigLoader
    let requests: ControlRequests
    let events: Events
    let logger: Logger
    /// The per-app locks this daemon holds; a reload must take those of added apps first.
    let appLocks: AppLocks?
    /// The engine's GenAuth client, replaced by a reload with one made from the new
    /// `[genauth]` (nil: the engine's `SecretAPI` is not reloaded, as in tests with fakes).
    let client: ReloadableGenAuthClient?
    private let wake = WakeSignal()
    private let stopping = StopFlag()
    /// Longest single sleep; the watchdog needs pings more often than the wall-clock re-check.
    let maximumSleep: Duration

    public init(
        engine: RotationEngine, configPath: String, loader: ConfigLoader, stateDirectory: StateDirectory,
        events: Events = Events(), maximumSleep: Duration = RotationService.wallClockRecheck, appLocks: AppLocks? = nil,
        client: ReloadableGenAuthClient? = nil, logger: Logger
    ) {
        self.appLocks = appLocks
        self.client = client
        self.engine = engine
        self.configPath = configPath
        self.loader = loader
        self.requests = ControlRequests(stateDirectory: stateDirectory)
        self.events = events
        self.maximumSleep = min(maximumSleep, Self.wallClockRecheck)
        self.logger = logger
    }

    public func run() async throws {
        // The group traps SIGTERM/SIGINT before it starts services, so from here on a stop
        // signal reaches the graceful shutdown handler; one that came earlier is taken now.
        if EarlyStopSignal.received {
            events.stopping()
            logger.notice("stop requested during start-up; nothing was in flight")
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.handleSignals() }
            await withGracefulShutdownHandler {
                await self.scheduleLoop()
            } onGracefulShutdown: { [stopping = self.stopping, wake = self.wake, events = self.events] in
                events.stopping()
                stopping.set()
                wake.poke()
            }
            group.cancelAll()
        }
        logger.info("stopped")
    }

    private func scheduleLoop() async {
        await engine.onWorkFinished { [wake] in wake.poke() }
        await takeRequests()
        events.ready(await engine.status())
        logger.info("started", metadata: ["config": "\(configPath)"])
        var lastFullCheck = ContinuousClock.now
        var lastStatus: ContinuousClock.Instant?
        // A cancelled task (not a graceful stop) also ends the loop: its waits return at once,
        // so going on would spin.
        while !stopping.isSet && !Task.isCancelled {
            await feedWatchdog()
            if ContinuousClock.now - lastFullCheck >= Self.wallClockRecheck {
                // The level-triggered pass: every output is compared with its held secret.
                await engine.checkOutputs()
                lastFullCheck = .now
            }
            // Starts what is due and returns at once: no step waits for another app's step.
            let next = await engine.startDue()
            // A status is a pass over every app, and the loop turns once per finished step:
            // made at every turn it cost O(apps) per step in a pass over thousands of apps,
            // while systemd is sent at most one a second anyway. A turn too soon after the last
            // leaves it owed and comes back when it is due, so the latest state is reported.
            var statusOwedIn: Duration?
            if let lastStatus, ContinuousClock.now - lastStatus < Self.statusSpacing {
                statusOwedIn = Self.statusSpacing - (ContinuousClock.now - lastStatus)
            } else {
                events.status(await engine.status())
                lastStatus = .now
            }
            if stopping.isSet { break }
            // nil: nothing can start before a step finishes (its poke wakes us) or no apps.
            var sleep = maximumSleep
            if let next {
                let seconds = max(0, next.timeIntervalSinceNow)
                sleep = min(sleep, .milliseconds(Int64((seconds * 1000).rounded(.up))))
            }
            if let statusOwedIn { sleep = min(sleep, statusOwedIn) }
            await wake.wait(upTo: sleep)
        }
        // Graceful shutdown: a step that started completes if it can within `stopGrace`;
        // then what is left is cancelled (a refresh becomes an unknown outcome, reconciled at
        // the next start), so a stop never waits for a trickling answer until systemd's
        // TimeoutStopSec= kills us mid-write.
        let deadline = ContinuousClock.now.advanced(by: Self.stopGrace)
        while await engine.hasRunningSteps, !Task.isCancelled {
            let left = deadline - ContinuousClock.now
            if left <= .zero { break }
            // Poked whenever a step finishes.
            await wake.wait(upTo: left)
        }
        let drained = !(await engine.hasRunningSteps)
        if !drained {
            logger.warning(
                "steps still in flight \(Self.stopGrace) after the stop request; cancelling them (an unsettled refresh is reconciled at the next start)",
                metadata: ["event": "stop_cancelled_steps"])
            await engine.cancelInFlight()
            await engine.drain()
        }
    }

    /// The least time between two status reports from the loop (the notifier's own spacing).
    static let statusSpacing: Duration = .seconds(1)

    /// How long a stop waits for steps in flight before cancelling them: well inside the
    /// unit's TimeoutStopSec= (90 s) and the 5 s an operator expects.
    static let stopGrace: Duration = .seconds(3)

    /// A long step (a slow API call, a hook near its timeout) is not a stuck scheduler, so the
    /// watchdog is fed while steps run, but only for as long as a healthy step can take; a
    /// step hanging beyond that stops the pings and lets systemd restart the daemon.
    private func feedWatchdog() async {
        let budget = await engine.stepBudget
        if let longest = await engine.longestRunningStep(), longest > budget {
            logger.critical("a rotation step has run for \(DurationSyntax.format(longest)); no longer feeding the watchdog")
            return
        }
        events.heartbeat()
    }

    private func handleSignals() async {
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
        for await signal in signals {
            if Task.isCancelled { return }
            switch signal {
            case .sighup: await reload()
            case .sigusr1: await takeRequests()
            default: break
            }
            wake.poke()
        }
    }

    /// SIGHUP: a valid new config replaces the old one, every setting the daemon uses included:
    /// apps and `[defaults]` (the engine), `[genauth]` (a new GenAuth client: host, flavour,
    /// access key, key secret re-read from its source, `ca_file` re-read, `request_timeout`;
    /// `requests_per_second` in the engine's budget) and `[metrics]` (`configApplied`). What a
    /// running daemon cannot change (`state_directory`, `[cluster]`) refuses the reload, naming
    /// it. An invalid or refused config is logged with every error, and the daemon keeps
    /// running on the old one: nothing of the new one is applied.
    func reload() async {
        events.reloading()
        do {
            let loaded = try loader.load(path: configPath)
            for warning in loaded.warnings {
                logger.warning("\(warning.description)", metadata: ["event": "config_warning"])
            }
            let current = await engine.config
            // What a running daemon keeps from its start, all named at once so one restart applies
            // them all: the lock and the records stay where it started (moving them under a running
            // daemon would let a second one start on the old directory), and the lease, election
            // and watch belong to the cluster settings they started with.
            var needRestart: [String] = []
            if loaded.config.defaults.stateDirectory != current.defaults.stateDirectory {
                needRestart.append(
                    "state_directory changed from \(current.defaults.stateDirectory) to \(loaded.config.defaults.stateDirectory)")
            }
            let clusterKeys = ClusterSettings.changedKeys(from: current.cluster, to: loaded.config.cluster)
            if clusterKeys == ["[cluster]"] {
                needRestart.append(current.cluster == nil ? "[cluster] was added" : "[cluster] was removed")
            } else if !clusterKeys.isEmpty {
                needRestart.append("[cluster] \(clusterKeys.joined(separator: ", ")) changed")
            }
            if !needRestart.isEmpty {
                logger.error(
                    "config rejected: \(needRestart.joined(separator: "; ")); a running daemon cannot apply this, restart it (still running on the previous config)",
                    metadata: ["event": "config_rejected"])
                events.ready(await engine.status())
                return
            }
            // Made before anything changes: a [genauth] that cannot be used refuses the reload.
            var replacement: GenAuthClient?
            if let client {
                do {
                    replacement = try client.makeClient(loaded.config.genauth)
                } catch {
                    logger.error(
                        "config rejected: [genauth]: \(error.message ?? error.description); still running on the previous config",
                        metadata: ["event": "config_rejected"])
                    events.ready(await engine.status())
                    return
                }
            }
            if let appLocks {
                do {
                    try appLocks.hold(exactly: loaded.config.apps.map(\.id))
                } catch {
                    try? await replacement?.shutdown()
                    logger.error(
                        "config rejected: \(error); still running on the previous config", metadata: ["event": "config_rejected"])
                    events.ready(await engine.status())
                    return
                }
            }
            let before = Set(current.apps.map(\.id))
            if let replacement { client?.replace(with: replacement) }
            // Before the engine: a [metrics] this reload adds starts recording first, so the
            // engine's apply fills every app's series.
            events.configApplied(loaded.config)
            await engine.apply(loaded.config)
            let after = Set(loaded.config.apps.map(\.id))
            let genauth = GenAuthClientConfiguration(loaded.config.genauth)
            logger.notice(
                "config reloaded: \(after.count) apps, \(after.subtracting(before).count) added, \(before.subtracting(after).count) removed; GenAuth \(genauth.host) (\(genauth.flavour.rawValue)) with access key \(genauth.accessKeyId) from \(loaded.config.genauth.accessKeySecretSource)",
                metadata: ["event": "config_reloaded"])
        } catch {
            for diagnostic in error.diagnostics {
                logger.error("\(diagnostic.description)", metadata: ["event": "config_rejected"])
            }
            logger.error(
                "config rejected (\(error.errors.count) error\(error.errors.count == 1 ? "" : "s")); still running on the previous config",
                metadata: ["event": "config_rejected"])
        }
        events.ready(await engine.status())
    }

    private func takeRequests() async {
        for request in requests.drain() {
            let step: RotationPlanner.Step = request.kind == .rotate ? .refresh : .fetch
            if await engine.request(step, forApp: request.appID) {
                logger.notice("\(request.kind.rawValue) requested by an operator", metadata: ["app_id": "\(request.appID)"])
            } else {
                logger.warning("request for an unknown app ignored", metadata: ["app_id": "\(request.appID)"])
            }
        }
    }
}

extension RotationService {
    /// The group the daemon runs in: SIGTERM/SIGINT shut it down gracefully, and the service
    /// returning (which it does only when asked to stop) is a clean end, not a failure.
    public func serviceGroup(logger: Logger) -> ServiceGroup {
        ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }
}

/// Set once when graceful shutdown begins; read by the scheduler loop between steps.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

extension RotationService.Events {
    /// Reports to systemd: READY once config, lock, journal and schedule are loaded (before any
    /// rotation), STATUS at every turn of the loop (the notifier sends at most one a second),
    /// WATCHDOG from the scheduler loop (sent only when systemd asked for a watchdog),
    /// RELOADING/READY around SIGHUP, STOPPING (and more time) when shutdown begins. None of
    /// them waits for systemd to read.
    public static func systemd(_ notifier: Notifier) -> Self {
        var events = Self()
        events.ready = { report in notifier.ready(status: report.summary(now: Date())) }
        events.status = { report in notifier.status(report.summary(now: Date())) }
        events.reloading = { notifier.reloading() }
        events.stopping = {
            notifier.stopping()
            notifier.extendTimeout(by: .seconds(90))
        }
        events.heartbeat = { notifier.watchdog() }
        return events
    }
}
