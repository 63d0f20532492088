import Foundation
import GenAuthMock
import InMemoryLogging
import Logging
import Synchronization
import Testing

@testable import SecretRotator

/// Every log entry a test's loggers write, in swift-log's `InMemoryLogHandler`: tests assert on
/// an entry's `event` and other metadata, and only prose checks (no secret, token or access key
/// secret in any message) read the rendered text.
package final class LogCapture: Sendable {
    private let handler: InMemoryLogHandler = {
        var handler = InMemoryLogHandler()
        handler.logLevel = .trace
        return handler
    }()
    /// Error descriptions a test adds (`GenAuthHarness.record`), so the leak check covers them.
    private let notes = Mutex<[String]>([])

    package init() {}

    /// A logger writing into this capture (every copy of the handler shares its entries).
    package func logger(label: String = "secret-rotator.genauth") -> Logger {
        let handler = handler
        return Logger(label: label) { _ in handler }
    }

    package var entries: [InMemoryLogHandler.Entry] { handler.entries }

    /// The entries whose `event` metadata is `name`.
    package func events(_ name: String) -> [InMemoryLogHandler.Entry] {
        entries.filter { $0.metadata["event"]?.description == name }
    }

    package func contains(event name: String) -> Bool { !events(name).isEmpty }

    /// Every entry rendered whole (level, message, metadata, error) and every added note: for
    /// checks that really are about text, such as no secret in any of it.
    package var renderedText: [String] {
        entries.map { entry in
            "\(entry.level) \(entry.message) \(entry.metadata) \(entry.error.map { "\($0)" } ?? "-")"
        } + notes.withLock { $0 }
    }

    package func append(note: String) { notes.withLock { $0.append(note) } }

    /// The values from `secrets` that appear anywhere in the captured text.
    package func leaks(of secrets: [String]) -> [String] {
        let text = renderedText.joined(separator: "\n")
        return secrets.filter { !$0.isEmpty && text.contains($0) }
    }
}

/// An in-process mock plus a client pointed at it, torn down and leak-checked after use.
package struct GenAuthHarness {
    package let server: GenAuthMockServer
    package let client: GenAuthClient
    package let capture: LogCapture
    package let seed: MockSeed

    package var state: GenAuthMockState { server.state }
    package static let appId = "62a1b2c3d4e5f60718293c01"
    package static let otherAppId = "62a1b2c3d4e5f60718293c02"

    package static func seed(tokenExpiresIn: Int = 3600) -> MockSeed {
        MockSeed(
            userPoolId: "pool-\(UUID().uuidString.prefix(8).lowercased())",
            accessKeys: [.init(accessKeyId: "ak-test", accessKeySecret: "sk-\(UUID().uuidString)")],
            apps: [.init(appId: appId, appName: "billing"), .init(appId: otherAppId, appName: "search")],
            tokenExpiresIn: tokenExpiresIn)
    }

    /// Records an error's description in the capture so the leak check covers error text too.
    package func record(_ error: GenAuthError) {
        capture.append(note: "error \(error) \(String(reflecting: error))")
    }

    /// Runs `body` and returns the `GenAuthError` it throws; records a test issue if it does not.
    package func expectFailure<T>(
        sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
    ) async -> GenAuthError? {
        do {
            let value = try await body()
            Issue.record("expected a GenAuthError, got \(value)", sourceLocation: sourceLocation)
            return nil
        } catch let error as GenAuthError {
            record(error)
            return error
        } catch {
            Issue.record("expected a GenAuthError, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    package func requests(to endpoint: MockEndpoint) -> [MockRequestRecord] {
        state.requestLog().filter { $0.path == endpoint.path }
    }
}

package func withGenAuthHarness(
    flavour: APIFlavour = .genauth,
    seed: MockSeed = GenAuthHarness.seed(),
    requestTimeout: Duration = .seconds(5),
    clock: any TokenClock = SystemTokenClock(),
    accessKeySecret: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (GenAuthHarness) async throws -> Void
) async throws {
    let state = GenAuthMockState(seed: seed)
    let server = try await GenAuthMockServer.start(state: state)
    let capture = LogCapture()
    let configuration = GenAuthClientConfiguration(
        host: server.baseURL, flavour: flavour, accessKeyId: seed.accessKeys[0].accessKeyId,
        accessKeySecret: SecretValue(accessKeySecret ?? seed.accessKeys[0].accessKeySecret),
        requestTimeout: requestTimeout)
    let client = try GenAuthClient(configuration: configuration, logger: capture.logger(), clock: clock)
    let harness = GenAuthHarness(server: server, client: client, capture: capture, seed: seed)
    do {
        try await body(harness)
    } catch {
        try? await client.shutdown()
        try? await server.stop()
        throw error
    }
    try await client.shutdown()
    try await server.stop()
    // Every test in the GenAuth suites doubles as a leak check (Architecture, invariant 5).
    var secrets = state.everyIssuedSecret()
    if let accessKeySecret { secrets.append(accessKeySecret) }
    let leaks = capture.leaks(of: secrets)
    #expect(leaks.isEmpty, "secrets leaked into logs or error text: \(leaks.count)", sourceLocation: sourceLocation)
}
