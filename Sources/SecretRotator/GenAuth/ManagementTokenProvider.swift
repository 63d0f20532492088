/// Hands out the management token, fetching it at most once at a time: concurrent callers
/// await the same fetch, and a cached token is reused until its refresh time.
actor ManagementTokenProvider {
    typealias Fetch = @Sendable () async throws(GenAuthError) -> (token: SecretValue, userPoolId: String, expiresIn: Duration)

    private let fetch: Fetch
    private let clock: any TokenClock
    private var cached: ManagementToken?
    private var inFlight: Task<ManagementToken, any Error>?
    private var generation = 0

    init(clock: any TokenClock, fetch: @escaping Fetch) {
        self.clock = clock
        self.fetch = fetch
    }

    func token() async throws(GenAuthError) -> ManagementToken {
        if let cached, clock.now() < cached.refreshAt { return cached }
        let task: Task<ManagementToken, any Error>
        if let inFlight {
            task = inFlight
        } else {
            generation += 1
            let generation = self.generation
            let fetch = self.fetch
            let clock = self.clock
            task = Task {
                let fetched = try await fetch()
                let margin = ManagementToken.safetyMargin(expiresIn: fetched.expiresIn)
                return ManagementToken(
                    value: fetched.token, userPoolId: fetched.userPoolId,
                    refreshAt: clock.now().advanced(by: fetched.expiresIn - margin), generation: generation)
            }
            inFlight = task
        }
        do {
            let token = try await task.value
            if inFlight == task { inFlight = nil }
            if cached.map({ $0.generation < token.generation }) ?? true { cached = token }
            return token
        } catch {
            if inFlight == task { inFlight = nil }
            if let error = error as? GenAuthError { throw error }
            throw GenAuthError(
                classification: .transient, reason: .cancelled, operation: "get-management-token",
                underlying: String(describing: type(of: error)), cause: error)
        }
    }

    /// Forgets `token` after the server refused it; a newer token is kept.
    func invalidate(_ token: ManagementToken) {
        if cached?.generation == token.generation { cached = nil }
    }
}
