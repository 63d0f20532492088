import Foundation
import GenAuthMock
import Logging
import Synchronization
import Testing

@testable import SecretRotator

/// Collects every log line (message + metadata) a client writes, so tests can prove that
/// no secret, token or access key secret ever reaches a log.
final class GenAuthLogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    func logger(label: String = "secret-rotator.genauth") -> Logger {
        var logger = Logger(label: label) { _ in GenAuthCapturingLogHandler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    /// The values from `secrets` that appear anywhere in the captured text.
    func leaks(of secrets: [String]) -> [String] {
        let text = all.joined(separator: "\n")
        return secrets.filter { !$0.isEmpty && text.contains($0) }
    }
}

struct GenAuthCapturingLogHandler: LogHandler {
    let capture: GenAuthLogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (key, value) in event.metadata ?? [:] { merged[key] = value }
        capture.append("\(event.level) \(event.message) \(merged) \(event.error.map { "\($0)" } ?? "-") \(event.source) \(event.file):\(event.line)")
    }
}

/// A test clock that only moves when told to.
final class ManualTokenClock: TokenClock {
    private let offset = Mutex<Duration>(.zero)
    private let base = ContinuousClock.now

    func now() -> ContinuousClock.Instant { base.advanced(by: offset.withLock { $0 }) }

    func advance(by duration: Duration) { offset.withLock { $0 += duration } }
}

/// An in-process mock plus a client pointed at it, torn down and leak-checked after use.
struct GenAuthHarness {
    let server: GenAuthMockServer
    let client: GenAuthClient
    let capture: GenAuthLogCapture
    let seed: MockSeed

    var state: GenAuthMockState { server.state }
    static let appId = "62a1b2c3d4e5f60718293c01"
    static let otherAppId = "62a1b2c3d4e5f60718293c02"

    static func seed(tokenExpiresIn: Int = 3600) -> MockSeed {
        MockSeed(
            userPoolId: "pool-\(UUID().uuidString.prefix(8).lowercased())",
            accessKeys: [.init(accessKeyId: "ak-test", accessKeySecret: "sk-\(UUID().uuidString)")],
            apps: [.init(appId: appId, appName: "billing"), .init(appId: otherAppId, appName: "search")],
            tokenExpiresIn: tokenExpiresIn)
    }

    /// Records an error's description in the capture so the leak check covers error text too.
    func record(_ error: GenAuthError) {
        capture.append("error \(error) \(String(reflecting: error))")
    }

    /// Runs `body` and returns the `GenAuthError` it throws; records a test issue if it does not.
    func expectFailure<T>(
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

    func requests(to endpoint: MockEndpoint) -> [MockRequestRecord] {
        state.requestLog().filter { $0.path == endpoint.path }
    }
}

func withGenAuthHarness(
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
    let capture = GenAuthLogCapture()
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

/// Polls `condition` until it holds or `timeout` passes: for effects that land
/// asynchronously in the mock (a delayed refresh applied after the client gave up).
func waitForGenAuth(timeout: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
