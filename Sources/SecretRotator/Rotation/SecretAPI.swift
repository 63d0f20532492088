/// The two GenAuth calls the engine makes; `GenAuthClient` is the real one, tests may wrap it
/// to count or fail calls.
public protocol SecretAPI: Sendable {
    func refreshApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue
    func getApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue
}

extension GenAuthClient: SecretAPI {}
