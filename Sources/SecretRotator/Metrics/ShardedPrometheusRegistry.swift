import CoreMetrics
import Prometheus
import Synchronization

/// swift-prometheus's registry, split into shards of at most `appsPerShard` apps each, so that
/// making a series costs O(1) however many apps there are.
///
/// Why: `PrometheusCollectorRegistry` keeps each metric family as an immutable dictionary of
/// label sets and, for every new label set, stores a copy with one more entry
/// (`MetricFamily.adding`, swift-prometheus 2.4): O(series of the family) per new series, so
/// registering every app's series was O(N²) (75 % of start-up CPU at 10,000 apps, 12 s to
/// READY). In a shard a family holds the series of at most `appsPerShard` apps. Series
/// without an `app_id` dimension (API requests, the exposure window, the fleet) live in the
/// first shard.
///
/// The text is still rendered by swift-prometheus: each shard emits its families, and `emit`
/// merges the shards' output so each family appears once, with one `# HELP`/`# TYPE` header
/// followed by the samples of every shard (the text format requires a family's lines to be
/// contiguous and its TYPE line to be unique).
public final class ShardedPrometheusRegistry: Sendable {
    /// Apps per shard: large enough that shards stay few (157 at 10,000 apps), small enough
    /// that one registration copies at most a few hundred entries. An app keeps its place for
    /// the life of the process (a reload that removes it leaves the place unused).
    public static let appsPerShard = 64

    private struct State {
        var shards: [PrometheusMetricsFactory] = []
        /// Apps placed per shard (index), and each app's shard.
        var appsIn: [Int] = []
        var shardOf: [String: Int] = [:]
        /// The shard of every handler made, for `destroy*`.
        var handlerShard: [ObjectIdentifier: Int] = [:]
        /// Shards with room for another app.
        var open: [Int] = []
    }

    private let state: Mutex<State>
    private let durationBuckets: [String: [Duration]]

    public init(durationBuckets: [String: [Duration]]) {
        self.durationBuckets = durationBuckets
        var state = State()
        state.shards = [Self.shard(durationBuckets)]
        state.appsIn = [0]
        state.open = [0]
        self.state = Mutex(state)
    }

    /// The `MetricsFactory` that routes each series to its app's shard.
    public var factory: any MetricsFactory { Factory(registry: self) }

    private static func shard(_ buckets: [String: [Duration]]) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        factory.durationHistogramBuckets = buckets
        return factory
    }

    /// The shard for a series with these dimensions: its app's (placed on first use), or the first.
    fileprivate func shard(for dimensions: [(String, String)]) -> (index: Int, factory: PrometheusMetricsFactory) {
        guard let appID = dimensions.first(where: { $0.0 == "app_id" })?.1 else {
            return state.withLock { (0, $0.shards[0]) }
        }
        return state.withLock { state in
            if let index = state.shardOf[appID] { return (index, state.shards[index]) }
            if state.open.isEmpty {
                state.shards.append(Self.shard(durationBuckets))
                state.appsIn.append(0)
                state.open.append(state.shards.count - 1)
            }
            let index = state.open[state.open.count - 1]
            state.shardOf[appID] = index
            state.appsIn[index] += 1
            if state.appsIn[index] >= Self.appsPerShard { state.open.removeLast() }
            return (index, state.shards[index])
        }
    }

    fileprivate func remember(_ handler: AnyObject, shard: Int) {
        state.withLock { $0.handlerShard[ObjectIdentifier(handler)] = shard }
    }

    /// The shard that made `handler`, forgotten (its series is being destroyed).
    fileprivate func takeShard(of handler: AnyObject) -> PrometheusMetricsFactory? {
        state.withLock { state in
            state.handlerShard.removeValue(forKey: ObjectIdentifier(handler)).map { state.shards[$0] }
        }
    }

    /// Every shard's families in the Prometheus text exposition format (0.0.4), merged so that
    /// each family is contiguous under one header. O(total output).
    public func emit() -> [UInt8] {
        let shards = state.withLock { $0.shards }
        if shards.count == 1 { return shards[0].registry.emitToBuffer() }
        var order: [String] = []
        var headers: [String: [UInt8]] = [:]
        var headerShard: [String: Int] = [:]
        var samples: [String: [UInt8]] = [:]
        for (index, shard) in shards.enumerated() {
            let text = shard.registry.emitToBuffer()
            var family = ""
            var start = text.startIndex
            while start < text.endIndex {
                let end = text[start...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? text.endIndex
                let line = text[start..<end]
                start = end
                guard line.starts(with: Self.helpPrefix) || line.starts(with: Self.typePrefix) else {
                    samples[family, default: []].append(contentsOf: line)
                    continue
                }
                // "# HELP name ..." or "# TYPE name type": the family's name is the third field.
                family = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
                if headerShard[family] == nil {
                    headerShard[family] = index
                    order.append(family)
                }
                // One header per family: the first shard's.
                if headerShard[family] == index { headers[family, default: []].append(contentsOf: line) }
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(headers.values.reduce(0) { $0 + $1.count } + samples.values.reduce(0) { $0 + $1.count })
        for name in order {
            out += headers[name] ?? []
            out += samples[name] ?? []
        }
        return out
    }

    private static let helpPrefix = Array("# HELP ".utf8)
    private static let typePrefix = Array("# TYPE ".utf8)

    private struct Factory: MetricsFactory {
        let registry: ShardedPrometheusRegistry

        /// Makes the series in its app's shard and remembers the shard for `destroy*`.
        private func routed<Handler>(_ dimensions: [(String, String)], _ make: (PrometheusMetricsFactory) -> Handler) -> Handler {
            let (index, shard) = registry.shard(for: dimensions)
            let handler = make(shard)
            registry.remember(handler as AnyObject, shard: index)
            return handler
        }

        func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
            routed(dimensions) { $0.makeCounter(label: label, dimensions: dimensions) }
        }

        func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
            routed(dimensions) { $0.makeFloatingPointCounter(label: label, dimensions: dimensions) }
        }

        func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
            routed(dimensions) { $0.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate) }
        }

        func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
            routed(dimensions) { $0.makeMeter(label: label, dimensions: dimensions) }
        }

        func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
            routed(dimensions) { $0.makeTimer(label: label, dimensions: dimensions) }
        }

        func destroyCounter(_ handler: any CounterHandler) { registry.takeShard(of: handler)?.destroyCounter(handler) }
        func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
            registry.takeShard(of: handler)?.destroyFloatingPointCounter(handler)
        }
        func destroyRecorder(_ handler: any RecorderHandler) { registry.takeShard(of: handler)?.destroyRecorder(handler) }
        func destroyMeter(_ handler: any MeterHandler) { registry.takeShard(of: handler)?.destroyMeter(handler) }
        func destroyTimer(_ handler: any TimerHandler) { registry.takeShard(of: handler)?.destroyTimer(handler) }
    }
}
