import Foundation
import GenAuthMock
import Synchronization
import Testing

@testable import SecretRotator

/// Counts hook runs and fails the first `failures` of them.
package final class RecordingHookRunner: HookRunning {
    private let runs = Mutex<[HookInvocation]>([])
    private let failuresLeft: Mutex<Int>
    package init(failures: Int = 0) { failuresLeft = Mutex(failures) }
    package var invocations: [HookInvocation] { runs.withLock { $0 } }
    /// Fails the next `count` runs.
    package func failNext(_ count: Int) { failuresLeft.withLock { $0 = count } }
    package func run(_ invocation: HookInvocation) async -> HookOutcome {
        runs.withLock { $0.append(invocation) }
        let fail = failuresLeft.withLock { left -> Bool in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        return HookOutcome(status: fail ? .exited(1) : .exited(0), output: fail ? "reload failed" : "")
    }
}

/// An engine on a temp state directory, raw outputs, the manual clock and a GenAuth: the
/// in-process HTTP mock (`init(harness:)`, for what crosses the wire) or `FakeSecretAPI`
/// (`init(fake:)`, for engine behaviour that needs only some API).
package struct EngineFixture {
    /// What the engine calls.
    package let api: any SecretAPI
    /// The engine's log.
    package let capture: LogCapture
    package let clock = ManualClock()
    package let directory: URL
    package let hooks: RecordingHookRunner
    /// The config's `genauth.host`: the mock's address, or one never dialled for the fake.
    private let host: String
    private let accepted: @Sendable (String) -> String?
    private let refreshes: @Sendable () -> Int

    package init(harness: GenAuthHarness, hooks: RecordingHookRunner = RecordingHookRunner()) throws {
        let state = harness.state
        try self.init(
            api: harness.client, capture: harness.capture, host: harness.server.baseURL, hooks: hooks,
            accepted: { state.currentSecret(appId: $0) },
            refreshes: { state.requestLog().filter { $0.path.hasSuffix("refresh-application-secret") }.count })
    }

    package init(fake: FakeSecretAPI, capture: LogCapture = LogCapture(), hooks: RecordingHookRunner = RecordingHookRunner()) throws {
        try self.init(
            api: fake, capture: capture, host: "http://127.0.0.1:9", hooks: hooks,
            accepted: { fake.currentSecret(appId: $0) }, refreshes: { fake.calls(.refresh) })
    }

    private init(
        api: any SecretAPI, capture: LogCapture, host: String, hooks: RecordingHookRunner,
        accepted: @escaping @Sendable (String) -> String?, refreshes: @escaping @Sendable () -> Int
    ) throws {
        self.api = api
        self.capture = capture
        self.host = host
        self.hooks = hooks
        self.accepted = accepted
        self.refreshes = refreshes
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sr-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
    }

    package var appIDs: [String] { [GenAuthHarness.appId, GenAuthHarness.otherAppId] }

    package func config(hook: [String]? = nil, firstStart: FirstStart = .fetch, action: AppAction = .rotate) -> RotatorConfig {
        let defaults = DefaultSettings(
            interval: .seconds(3_600), jitter: .zero, maxConcurrent: 2,
            retry: RetryPolicy(initial: .seconds(2), max: .seconds(600), multiplier: 2),
            directory: directory.appendingPathComponent("drop").path, mode: FileMode(rawValue: 0o600), owner: nil,
            group: nil, stateDirectory: directory.appendingPathComponent("state").path, hookTimeout: .seconds(10),
            firstStart: firstStart)
        let apps = appIDs.enumerated().map { index, id in
            AppConfig(
                id: id, name: "app\(index)", action: action, interval: .seconds(3_600), jitter: .zero,
                firstStart: firstStart, onRotate: hook, hookTimeout: .seconds(10),
                outputs: [
                    OutputConfig(
                        path: directory.appendingPathComponent("drop/app\(index)").path, format: .raw, envKey: nil,
                        templatePath: nil, mode: FileMode(rawValue: 0o600), owner: nil, group: nil,
                        trailingNewline: true, allowWorldReadable: false, allowUnsafeDirectory: false,
                        inDropDirectory: true)
                ])
        }
        let genauth = GenAuthSettings(
            host: host, flavour: .genauth, accessKeyID: "ak-test", accessKeySecret: SecretValue("unused"),
            accessKeySecretSource: .inline, requestTimeout: .seconds(5), caFile: nil, requestsPerSecond: 1000)
        return RotatorConfig(sourcePath: "test.toml", genauth: genauth, defaults: defaults, apps: apps)
    }

    package func engine(hook: [String]? = nil, firstStart: FirstStart = .fetch, action: AppAction = .rotate) throws -> RotationEngine {
        engine(config: config(hook: hook, firstStart: firstStart, action: action))
    }

    /// An engine on `config`, this fixture's manual clock (or the real one), a seeded backoff,
    /// logging into `capture`; `api`, `hooks` and `units` replace the fixture's own seams.
    package func engine(
        config: RotatorConfig, seed: UInt64 = 9, api: (any SecretAPI)? = nil, hooks: (any HookRunning)? = nil,
        units: (any SystemdUnitManaging)? = nil, metrics: RotatorMetrics = .disabled, realClock: Bool = false
    ) -> RotationEngine {
        var now: @Sendable () -> Date = clock.now
        if realClock { now = { Date() } }
        let api: any SecretAPI = api ?? self.api
        let hooks: any HookRunning = hooks ?? self.hooks
        let units: any SystemdUnitManaging = units ?? SystemdBusUnits()
        return RotationEngine(
            config: config, api: api, stateDirectory: StateDirectory(path: config.defaults.stateDirectory),
            hooks: hooks, units: units, now: now, random: SplitMix64(seed: seed), metrics: metrics,
            logger: capture.logger(label: "secret-rotator.engine"))
    }

    /// `engine(hook:firstStart:action:)`, started and through its first pass (each app's first
    /// start done): where most engine tests begin.
    package func startedEngine(hook: [String]? = nil, firstStart: FirstStart = .fetch, action: AppAction = .rotate) async throws -> RotationEngine {
        try await started(engine(hook: hook, firstStart: firstStart, action: action))
    }

    /// `engine(config:...)`, started and through its first pass.
    package func startedEngine(
        config: RotatorConfig, seed: UInt64 = 9, api: (any SecretAPI)? = nil, hooks: (any HookRunning)? = nil,
        units: (any SystemdUnitManaging)? = nil, metrics: RotatorMetrics = .disabled, realClock: Bool = false
    ) async throws -> RotationEngine {
        try await started(engine(config: config, seed: seed, api: api, hooks: hooks, units: units, metrics: metrics, realClock: realClock))
    }

    private func started(_ engine: RotationEngine) async throws -> RotationEngine {
        try await engine.start()
        await engine.runDue()
        return engine
    }

    package func outputSecret(_ index: Int) -> String? {
        (try? String(contentsOf: directory.appendingPathComponent("drop/app\(index)"), encoding: .utf8))
            .map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 }
    }

    /// Architecture, invariant 1: every app's output holds the secret GenAuth (the mock or the fake) accepts now.
    package func expectInvariant(sourceLocation: SourceLocation = #_sourceLocation) {
        for (index, id) in appIDs.enumerated() {
            #expect(outputSecret(index) == accepted(id), "app\(index)", sourceLocation: sourceLocation)
        }
        let stateDirectory = StateDirectory(path: directory.appendingPathComponent("state").path)
        for id in appIDs {
            let found = stateDirectory.inspect(appID: id)
            #expect(found.secretVersion == found.state?.version, "\(id): held secret not on every output", sourceLocation: sourceLocation)
        }
    }

    /// Refreshes sent so far, for every app (`appId` does not narrow it).
    package func refreshRequests(_ appId: String) -> Int { refreshes() }

    /// Drives the engine through `span` seconds of daemon time on the manual clock, waking
    /// only when the engine says the next step is due (as the daemon does).
    package func runDaemonTime(_ engine: RotationEngine, seconds span: TimeInterval) async {
        let end = clock.now().addingTimeInterval(span)
        for _ in 0..<1_000 {
            let next = await engine.runDue() ?? end
            if clock.now() >= end { break }
            clock.set(min(max(next, clock.now()), end))
        }
    }

    package func cleanUp() { try? FileManager.default.removeItem(at: directory) }
}

/// A fresh mock and an engine fixture on it, removed afterwards: what every engine test sets up.
package func withEngineFixture(
    requestTimeout: Duration = .seconds(5), accessKeySecret: String? = nil, hooks: RecordingHookRunner = RecordingHookRunner(),
    _ body: (GenAuthHarness, EngineFixture) async throws -> Void
) async throws {
    try await withGenAuthHarness(requestTimeout: requestTimeout, accessKeySecret: accessKeySecret) { harness in
        let fixture = try EngineFixture(harness: harness, hooks: hooks)
        defer { fixture.cleanUp() }
        try await body(harness, fixture)
    }
}


/// A `FakeSecretAPI` knowing both fixture apps and an engine fixture on it, removed afterwards;
/// no secret the fake issued may reach the engine's log.
package func withFakeEngineFixture(
    hooks: RecordingHookRunner = RecordingHookRunner(), sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (FakeSecretAPI, EngineFixture) async throws -> Void
) async throws {
    let fake = FakeSecretAPI(appIds: [GenAuthHarness.appId, GenAuthHarness.otherAppId])
    let fixture = try EngineFixture(fake: fake, hooks: hooks)
    defer { fixture.cleanUp() }
    try await body(fake, fixture)
    let leaks = fixture.capture.leaks(of: fake.everyIssuedSecret)
    #expect(leaks.isEmpty, "secrets leaked into the engine's log: \(leaks.count)", sourceLocation: sourceLocation)
}
