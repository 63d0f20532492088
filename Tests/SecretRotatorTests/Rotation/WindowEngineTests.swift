import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Windows through the engine and `status`: the fixture's clock starts Sunday 2030-03-17
/// 17:46:40 UTC, both apps rotate hourly and fetch on first start.
@Suite struct WindowEngineTests {
    static let nightly = "* 03:00-04:00 UTC"

    /// Verification off unless asked for: its hourly reads would be the engine's next wake.
    func config(_ fixture: EngineFixture, window: String = nightly, verify: Duration = .zero) throws -> RotatorConfig {
        var config = fixture.config()
        config.defaults.verifyInterval = verify
        let parsed = try RotationWindow.parse(window)
        for index in config.apps.indices { config.apps[index].window = parsed }
        return config
    }

    /// A started engine an hour after its first start: both apps due by their interval and
    /// held, as it is not 03:00-04:00 UTC, so nothing rotated.
    func heldByTheWindow(_ harness: GenAuthHarness, _ fixture: EngineFixture) async throws -> RotationEngine {
        let engine = try await fixture.startedEngine(config: try config(fixture))
        fixture.clock.advance(by: .seconds(3_600))
        await engine.runDue()
        #expect(harness.state.rotationCount(appId: GenAuthHarness.appId) == 0)
        return engine
    }

    @Test func theEngineWaitsForTheWindowThenRotatesInsideIt() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine(config: try config(fixture))
            let id = GenAuthHarness.appId
            #expect(await engine.state(of: id)?.version == 1, "a first start is not held to the window")

            fixture.clock.advance(by: .seconds(3_600))
            let wake = await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 0, "due by its interval, but outside the window")
            #expect(wake == (try utc("2030-03-18T03:00:00Z")))
            #expect(await engine.status().apps.allSatisfy(\.waitingForWindow))
            let waits = harness.capture.events("rotation_waits_for_window")
            #expect(waits.count == 2, "one line per app and wait: \(waits)")
            #expect(waits.allSatisfy { $0.metadata["starts_at"] == "2030-03-18T03:00:00Z" })
            // The window itself is only in the message.
            #expect(waits.allSatisfy { "\($0.message)".contains("* 03:00-04:00 UTC") })

            await fixture.runDaemonTime(engine, seconds: fixture.clock.now().distance(to: try utc("2030-03-18T04:00:00Z")))
            #expect(harness.state.rotationCount(appId: id) == 1)
            let rotatedAt = try #require(await engine.state(of: id)?.secretObtainedAt)
            let opening = DateInterval(start: try utc("2030-03-18T03:00:00Z"), end: try utc("2030-03-18T04:00:00Z"))
            #expect(opening.contains(rotatedAt) && rotatedAt < opening.end)
            fixture.expectInvariant()
        }
    }

    /// An operator's `rotate` goes through the request, never the schedule: no window.
    @Test func anOperatorRotateIgnoresTheWindow() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await heldByTheWindow(harness, fixture)
            let id = GenAuthHarness.appId

            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue(maxStepsPerApp: 8)
            #expect(harness.state.rotationCount(appId: id) == 1)
            #expect(harness.state.rotationCount(appId: GenAuthHarness.otherAppId) == 0, "the other app still waits")
            fixture.expectInvariant()
        }
    }

    /// A rotation that started inside the window and failed is retried after its backoff,
    /// even once the window has closed: GenAuth may have killed nothing yet, but the rotation
    /// was owed from inside the window, and holding it a day would leave it failing.
    @Test func aRetriedRotationIgnoresTheWindow() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await heldByTheWindow(harness, fixture)
            let id = GenAuthHarness.appId

            fixture.clock.set(try utc("2030-03-18T03:59:59Z"))
            harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: id, count: 1, fault: .httpStatus(503, jsonBody: false)))
            await engine.runDue()
            let failed = try #require(await engine.state(of: id))
            #expect(failed.consecutiveFailures == 1 && failed.rotationOwed)
            let retry = try #require(failed.nextAttempt)
            #expect(retry > (try utc("2030-03-18T04:00:00Z")), "the retry falls after the window closed")

            await fixture.runDaemonTime(engine, seconds: 60)
            #expect(harness.state.rotationCount(appId: id) == 1)
            let rotatedAt = try #require(await engine.state(of: id)?.secretObtainedAt)
            #expect(rotatedAt >= retry)
            fixture.expectInvariant()
        }
    }

    /// Overdue is judged from the window-aware due date: waiting for the window is fine, a
    /// window that passed without the rotation is not.
    @Test func statusIsNotOverdueWhileWaitingButIsOnceTheWindowPassed() async throws {
        try await withEngineFixture { _, fixture in
            // Hourly verification: the next step is a read, the rotation still waits for the window.
            let config = try config(fixture, window: "Mon 03:00-04:00 UTC", verify: .seconds(3_600))
            _ = try await fixture.startedEngine(config: config)
            let store = StateDirectory(path: config.defaults.stateDirectory)

            // Sunday 23:00: due by its interval since 18:46, long past a 10-minute grace.
            let waiting = StatusReport.read(config: config, stateDirectory: store, now: try utc("2030-03-17T23:00:00Z"))
            let app = waiting.apps[0]
            #expect(app.health.verdict == .ok, "\(app.health.findings)")
            #expect(app.waitingForWindow)
            #expect(app.scheduledDue == (try utc("2030-03-18T03:00:00Z")))
            #expect(app.nextWindowOpening == (try utc("2030-03-18T03:00:00Z")))
            #expect(app.nextWindowClosing == (try utc("2030-03-18T04:00:00Z")))
            let text = waiting.render(now: try utc("2030-03-17T23:00:00Z"))
            #expect(text.contains("app0: window Mon 03:00-04:00 UTC, next opens in 4h"), "\(text)")
            #expect(text.contains("the due rotation waits for it"))
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            let json = String(decoding: try encoder.encode(waiting), as: UTF8.self)
            #expect(json.contains("\"nextWindowOpening\":\"2030-03-18T03:00:00Z\""), "\(json)")

            // Monday 05:00: the window passed and the daemon did not rotate.
            let missed = StatusReport.read(config: config, stateDirectory: store, now: try utc("2030-03-18T05:00:00Z"))
            #expect(missed.apps[0].health.findings.contains(.overdue(since: try utc("2030-03-18T03:00:00Z"))), "\(missed.apps[0].health.findings)")
            #expect(missed.apps[0].nextWindowOpening == (try utc("2030-03-25T03:00:00Z")))
        }
    }
}
