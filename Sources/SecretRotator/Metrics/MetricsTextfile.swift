#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CoreMetrics
import Logging
import NIOPosix
import Prometheus
import Synchronization
import SystemPackage

/// The daemon's metrics as a node_exporter textfile (`[metrics] textfile`): no listening port,
/// node_exporter's textfile collector reads the file and exports it with its own
/// `node_textfile_mtime_seconds`, so a file that stopped being refreshed is detectable.
///
/// Owns a `ShardedPrometheusRegistry` (per instance, never the process-wide default) and the
/// `RotatorMetrics` over it, which the engine and the GenAuth client report to. `run()` writes
/// the registry in the Prometheus text format after every change and at least every
/// `refreshInterval` (60 s): bursts are coalesced, as one write is in flight at most and a
/// change during a write causes exactly one more. Each write is atomic (`AtomicFileWriter`:
/// temp file in the same directory, fsync, rename, fsync of the directory), mode 0644 so that
/// node_exporter's user can read it. Sleeps go through `QuietSleep`, so an idle daemon does not
/// wake each second.
///
/// The directory must exist; it is checked at each write, not when the config loads. A write
/// that fails is logged once per kind of failure (error code and errno) and retried at the
/// next change or refresh; it never stops rotation. The file holds app names and ids, counts
/// and times, never a secret (Architecture, invariant 5).
public final class MetricsTextfile: Sendable {
    /// What the engine and the client report to; its values are what the file shows.
    public let metrics: RotatorMetrics
    private let registry: ShardedPrometheusRegistry
    private let target: Mutex<String?>
    /// Failure kinds already logged since the last good write (once per kind).
    private let reported = Mutex<Set<String>>([])
    private let wake = WakeSignal()
    private let writer = AtomicFileWriter()
    private let fileIO: NIOThreadPool
    private let refreshInterval: Duration
    private let now: @Sendable () -> Date
    private let logger: Logger

    /// At least this often the file is rewritten, changes or not, so its mtime shows the
    /// daemon is alive; alert on `time() - node_textfile_mtime_seconds` well above it.
    public static let defaultRefreshInterval: Duration = .seconds(60)
    /// node_exporter runs as its own user and must read the file; it holds no secret.
    public static let fileMode = FilePermissions(rawValue: 0o644)

    /// - Parameters:
    ///   - path: the absolute `*.prom` path (`MetricsSettings.textfile`); nil writes nothing
    ///     until `setPath` gives one (a reload that adds `[metrics]`).
    ///   - refreshInterval: the longest time between two writes.
    ///   - fileIO: threads for the blocking write and fsyncs (the engine's by default).
    public init(
        path: String?, refreshInterval: Duration = MetricsTextfile.defaultRefreshInterval,
        fileIO: NIOThreadPool = RotationEngine.sharedFileIO, now: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "secret-rotator.metrics")
    ) {
        let registry = ShardedPrometheusRegistry(durationBuckets: RotatorMetrics.durationBuckets)
        self.registry = registry
        // Without a path nothing is recorded until `setPath` gives one: series nothing renders
        // would cost memory and start-up time for every app.
        self.metrics = RotatorMetrics(factory: registry.factory, recording: path != nil)
        self.target = Mutex(path)
        self.fileIO = fileIO
        self.refreshInterval = refreshInterval
        self.now = now
        self.logger = logger
    }

    /// The file written now, nil when none is configured.
    public var path: String? { target.withLock { $0 } }

    /// A reload's `[metrics] textfile`: the next write goes to `path` (nil: stop writing). The
    /// old file is left where it was, with a notice: node_exporter keeps exporting it, and its
    /// mtime shows it stale, until it is removed. A first path starts recording: call this
    /// before the engine applies the reloaded config, whose publishing of every app's state
    /// then fills the app series (counters count from this reload).
    public func setPath(_ path: String?) {
        if path != nil { metrics.startRecording() }
        let old = target.withLock { current -> String? in
            let old = current
            current = path
            return old
        }
        guard old != path else { return }
        reported.withLock { $0 = [] }
        if let old {
            logger.notice(
                "metrics textfile is now \(path ?? "not written"); \(old) is left in place (remove it, or node_exporter exports its stale values)",
                metadata: ["event": "metrics_textfile_changed", "target_path": "\(old)"])
        }
        wake.poke()
    }

    /// The registry in the Prometheus text exposition format (version 0.0.4), ages refreshed to now.
    public func render() -> [UInt8] {
        metrics.refreshAges(now: now())
        return registry.emit()
    }

    /// Renders and writes the file once, if a path is set. Returns whether the file now holds
    /// the values (false: no path, or the write failed and was logged).
    @discardableResult
    public func writeNow() async -> Bool {
        guard let path else { return false }
        let bytes = render()
        let writer = writer
        let options = AtomicWriteOptions(
            mode: Self.fileMode,
            // The textfile directory is shared by every textfile writer on the host and is often
            // group-writable for them; this file holds no secret, so the owner and mode rule of
            // secret outputs is lifted here (never the no-symlink rule, AtomicFileWriter).
            allowUnsafeDirectory: true)
        // Nil: the I/O threads are gone (shutdown) or the task was cancelled before the write ran.
        guard let result = await writer.write(bytes, to: path, options: options, on: fileIO) else { return false }
        switch result {
        case .success:
            let hadFailed = reported.withLock { reported in
                defer { reported = [] }
                return !reported.isEmpty
            }
            if hadFailed {
                logger.notice("metrics textfile written again", metadata: ["event": "metrics_write_recovered", "target_path": "\(path)"])
            }
            return true
        case .failure(let error):
            report(error, path: path)
            return false
        }
    }

    /// Writes at once, then after every change and at least every `refreshInterval`, until the
    /// task is cancelled; then writes once more, so the file ends with the last values.
    public func run() async {
        metrics.onChange { [wake] in wake.poke() }
        if let path {
            logger.info(
                "writing metrics for node_exporter's textfile collector",
                metadata: ["event": "metrics_textfile", "target_path": "\(path)"])
        }
        while !Task.isCancelled {
            await writeNow()
            // Without a path only a change or a reload wakes the loop: nothing to refresh.
            await wake.wait(upTo: path == nil ? .seconds(86_400) : refreshInterval)
        }
        // Not cancelled itself, so the thread pool runs it.
        _ = await Task { await self.writeNow() }.value
    }

    /// Logs a failed write once per kind (code and errno) until a write succeeds again.
    private func report(_ error: OutputError, path: String) {
        let errno = error.errno.map { OutputError.name(of: $0) }
        let kind = "\(error.code.rawValue) \(errno ?? "-")"
        let isNew = reported.withLock { $0.insert(kind).inserted }
        var metadata: Logger.Metadata = [
            "event": "metrics_write_failed", "target_path": "\(path)", "error": "\(error)",
        ]
        if let errno { metadata["errno"] = "\(errno)" }
        guard isNew else {
            logger.debug("metrics textfile still not written", metadata: metadata)
            return
        }
        logger.error(
            "cannot write the metrics textfile (rotation goes on; retried at the next change and every \(DurationSyntax.format(refreshInterval))): \(error)",
            metadata: metadata)
    }
}
