#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The long-running daemon as a swift-service-lifecycle `Service`: one scheduler loop that
/// sleeps until the earliest due app (re-reading the wall clock at least every 5 minutes, so
/// clock jumps and suspend are noticed), SIGHUP to reload the config, SIGUSR1 to pick up
/// `rotate`/`fetch` requests. Graceful shutdown (SIGTERM) lets the step in flight finish.
public final class RotationService: Service, Sendable {
    /// Hooks for the systemd integration (sd_notify) without tying this type to it.
    public struct Events: Sendable {
        public var ready: @Sendable (StatusReport) -> Void = { _ in }
        public var status: @Sendable (StatusReport) -> Void = { _ in }
        public var reloading: @Sendable () -> Void = {}
        public var stopping: @Sendable () -> Void = {}
        /// Called from the scheduler loop itself, so a stuck loop stops the pings.
        public var heartbeat: @Sendable () -> Void = {}

        public init() {}
    }

    public static let wallClockRecheck: Duration = .seconds(300)

    let engine: RotationEngine
    let configPath: String
    let loader: ConfigLoader
    let requests: ControlRequests
    let events: Events
    let logger: Logger
    private let wake = WakeSignal()
    private let stopping = StopFlag()
    /// Longest single sleep; the watchdog needs pings more often than the wall-clock re-check.
    let maximumSleep: Duration

    public init(
        engine: RotationEngine, configPath: String, loader: ConfigLoader, stateDirectory: String,
        events: Events = Events(), maximumSleep: Duration = RotationService.wallClockRecheck, logger: Logger
    ) {
        self.engine = engine
        self.configPath = configPath
        self.loader = loader
        self.requests = ControlRequests(stateDirectory: stateDirectory)
        self.events = events
        self.maximumSleep = min(maximumSleep, Self.wallClockRecheck)
        self.logger = logger
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.handleSignals() }
            await withGracefulShutdownHandler {
                await self.scheduleLoop()
            } onGracefulShutdown: { [stopping = self.stopping, wake = self.wake] in
                stopping.set()
                wake.poke()
            }
            group.cancelAll()
        }
        events.stopping()
        logger.info("stopped")
    }

    private func scheduleLoop() async {
        await takeRequests()
        events.ready(await engine.status())
        logger.info("started", metadata: ["config": "\(configPath)"])
        while !stopping.isSet {
            events.heartbeat()
            // Not cancelled by shutdown: a step that started (a refresh, a write) completes.
            let next = await engine.runDue()
            events.status(await engine.status())
            if stopping.isSet { break }
            var sleep = maximumSleep
            if let next {
                let seconds = max(0, next.timeIntervalSinceNow)
                sleep = min(sleep, .milliseconds(Int64((seconds * 1000).rounded(.up))))
            }
            await wake.wait(upTo: sleep)
        }
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

    /// SIGHUP: a valid new config replaces the old one; an invalid one is refused with every
    /// error logged, and the daemon keeps running on the old one.
    func reload() async {
        events.reloading()
        do {
            let loaded = try loader.load(path: configPath)
            for warning in loaded.warnings {
                logger.warning("\(warning.description)", metadata: ["event": "config_warning"])
            }
            let before = Set(await engine.config.apps.map(\.id))
            await engine.apply(loaded.config)
            let after = Set(loaded.config.apps.map(\.id))
            logger.notice(
                "config reloaded: \(after.count) apps, \(after.subtracting(before).count) added, \(before.subtracting(after).count) removed",
                metadata: ["event": "config_reloaded"])
        } catch {
            for diagnostic in error.diagnostics {
                logger.error("\(diagnostic.description)", metadata: ["event": "config_rejected"])
            }
            logger.error(
                "config rejected (\(error.errors.count) errors); still running on the previous config",
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

/// Set once when graceful shutdown begins; read by the scheduler loop between steps.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
