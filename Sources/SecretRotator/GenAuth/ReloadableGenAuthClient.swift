import Logging
import Synchronization

/// The daemon's GenAuth client across reloads: every call goes to the client made from the
/// `[genauth]` table in force when the call starts, and a reload puts a new one in place
/// (`replace(with:)`), so a changed host, flavour, access key, key secret, `ca_file` or
/// `request_timeout` is used from the next call on. A client holds its own token and
/// connections, so nothing made with the old key or trust roots is reused.
///
/// A replaced client finishes the calls it has in flight (a refresh cut off would become an
/// unknown outcome) and is shut down when the last one ends; `shutdown()` also waits for
/// those. Call `shutdown()` before dropping this value.
public final class ReloadableGenAuthClient: SecretAPI, Sendable {
    /// One client and the calls it has in flight.
    private final class Generation: Sendable {
        let client: GenAuthClient
        private let calls = Mutex<(inFlight: Int, retired: Bool)>((0, false))

        init(_ client: GenAuthClient) { self.client = client }

        func callStarted() { calls.withLock { $0.inFlight += 1 } }

        /// True when this was the last call of a retired client: the caller shuts it down.
        func callEnded() -> Bool {
            calls.withLock { value in
                value.inFlight -= 1
                return value.retired && value.inFlight == 0
            }
        }

        /// True when no call is in flight: the caller shuts it down now.
        func retire() -> Bool {
            calls.withLock { value in
                value.retired = true
                return value.inFlight == 0
            }
        }
    }

    private let current: Mutex<Generation>
    /// Shut-downs of replaced clients still in progress, and who waits for them (`shutdown()`).
    /// A count, not the tasks: a daemon reloaded for months keeps nothing per reload.
    private let retiring = Mutex<(inProgress: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))
    private let metrics: RotatorMetrics
    private let logger: Logger

    /// - Parameters:
    ///   - client: the client made from the config the daemon started with.
    ///   - metrics: given to every client made by `makeClient(_:)`.
    public init(_ client: GenAuthClient, metrics: RotatorMetrics = .disabled, logger: Logger = Logger(label: "secret-rotator.genauth")) {
        current = Mutex(Generation(client))
        self.metrics = metrics
        self.logger = logger
    }

    /// The client calls go to now.
    public var client: GenAuthClient { current.withLock { $0.client } }

    /// A client for `settings`, not yet in use: a reload makes it before deciding, so a
    /// `[genauth]` that cannot be used (a `ca_file` without PEM certificates) refuses the
    /// reload with nothing changed. Shut it down if it is not passed to `replace(with:)`.
    /// - Throws: `GenAuthError` with reason `.invalidConfiguration`.
    public func makeClient(_ settings: GenAuthSettings) throws(GenAuthError) -> GenAuthClient {
        try GenAuthClient(configuration: GenAuthClientConfiguration(settings), logger: logger, metrics: metrics)
    }

    /// From now on every call goes to `client`; the previous one is shut down once its calls
    /// in flight have ended.
    public func replace(with client: GenAuthClient) {
        let old = current.withLock { generation in
            defer { generation = Generation(client) }
            return generation
        }
        if old.retire() { shutDownLater(old.client) }
    }

    /// Shuts down the client in use and waits for replaced ones still finishing calls.
    public func shutdown() async throws {
        let generation = current.withLock { $0 }
        _ = generation.retire()
        try await generation.client.shutdown()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = retiring.withLock { value -> Bool in
                if value.inProgress == 0 { return true }
                value.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    public func refreshApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue {
        let generation = begin()
        defer { end(generation) }
        return try await generation.client.refreshApplicationSecret(appId: appId)
    }

    public func getApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue {
        let generation = begin()
        defer { end(generation) }
        return try await generation.client.getApplicationSecret(appId: appId)
    }

    /// The generation in use, with the call counted under the same lock `replace` takes, so a
    /// call never starts on a client already retired.
    private func begin() -> Generation {
        current.withLock { generation in
            generation.callStarted()
            return generation
        }
    }

    private func end(_ generation: Generation) {
        if generation.callEnded() { shutDownLater(generation.client) }
    }

    private func shutDownLater(_ client: GenAuthClient) {
        retiring.withLock { $0.inProgress += 1 }
        Task { [self] in
            do {
                try await client.shutdown()
            } catch {
                logger.warning("the replaced GenAuth client did not shut down cleanly: \(error)")
            }
            let waiters = self.retiring.withLock { value -> [CheckedContinuation<Void, Never>] in
                value.inProgress -= 1
                guard value.inProgress == 0 else { return [] }
                defer { value.waiters = [] }
                return value.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }
}
