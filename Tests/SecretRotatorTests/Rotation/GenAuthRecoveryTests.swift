import Foundation
import GenAuthMock
import InMemoryLogging
import Logging
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// After an outage of GenAuth (503 for minutes), apps waiting on a transient backoff are
/// retried within the request budget's slots once GenAuth answers any call again, not after
/// their own backoff (which had grown to minutes); a permanent failure keeps its backoff, and a
/// flapping GenAuth cuts each app's backoff short at most once per failure streak.
@Suite struct GenAuthRecoveryTests {
    static let extraApps = (3...6).map { "62a1b2c3d4e5f60718293c0\($0)" }
    /// `requests_per_second` of these tests: one slot every 100 ms.
    static let budget = 10.0

    /// The fixture's two apps and four more, all `follow` (their polls are reads, so a 503 is
    /// never a refresh's unknown outcome), paced at `budget`.
    static func config(_ fixture: EngineFixture) -> RotatorConfig {
        var config = fixture.config(action: .follow)
        for (offset, id) in extraApps.enumerated() {
            var app = config.apps[0]
            app.id = id
            app.name = "app\(offset + 2)"
            app.outputs[0].path = fixture.directory.appendingPathComponent("drop/app\(offset + 2)").path
            config.apps.append(app)
        }
        config.genauth.requestsPerSecond = budget
        config.defaults.maxConcurrent = 8
        return config
    }

    /// An engine on `config(fixture)` and the fixture's manual clock, logging into `fixture.capture`.
    static func engine(_ fixture: EngineFixture) -> RotationEngine {
        fixture.engine(config: config(fixture))
    }

    static let unknownApp = MockFaultRule(
        endpoint: .getApplicationSecret, appId: GenAuthHarness.otherAppId, count: 100_000,
        fault: .businessError(statusCode: 404, apiCode: 2011, message: "app not found"))

    /// Every app fetched, then app1 unknown to GenAuth (permanent) and every read answered 503
    /// for six minutes of daemon time from the next poll on. Returns the config.
    static func outage(_ harness: GenAuthHarness, _ fixture: EngineFixture, _ engine: RotationEngine) async throws -> RotatorConfig {
        try await engine.start()
        await engine.runDue()
        harness.state.inject(unknownApp)
        harness.state.inject(.init(endpoint: .getApplicationSecret, count: 100_000, fault: .httpStatus(503, jsonBody: true)))
        fixture.clock.advance(by: .seconds(3_600))
        await fixture.runDaemonTime(engine, seconds: 360)
        return config(fixture)
    }

    static var transientApps: [String] { [GenAuthHarness.appId] + extraApps }

    @Test func appsInATransientBackoffAreRetriedWithinTheBudgetOnceGenAuthAnswers() async throws {
        try await withEngineFixture { harness, fixture in
            for (offset, id) in Self.extraApps.enumerated() { harness.state.addApp(appId: id, appName: "app\(offset + 2)") }
            let engine = Self.engine(fixture)
            let config = try await Self.outage(harness, fixture, engine)
            var retries: [String: Date] = [:]
            for id in Self.transientApps {
                let state = try #require(await engine.state(of: id))
                #expect(state.consecutiveFailures > 1 && state.lastFailureKind == .transient, "\(id): \(state)")
                retries[id] = state.nextAttempt
                #expect(retries[id] != nil, "\(id) waits on a backoff")
            }
            let permanent = try #require(await engine.state(of: GenAuthHarness.otherAppId))
            #expect(permanent.lastFailureKind == .permanent, "\(permanent)")
            let permanentRetry = try #require(permanent.nextAttempt)
            let first = try #require(retries.values.min())
            let last = try #require(retries.values.max())
            // Otherwise the test would pass without the recovery.
            #expect(last.timeIntervalSince(first) > 60, "the backoffs grew during the outage: \(retries.values.sorted())")

            // GenAuth is back; app1 stays unknown. The earliest retry answers first.
            harness.state.clearFaults()
            harness.state.inject(Self.unknownApp)
            fixture.clock.set(first)
            await engine.runDue()
            let recovered = fixture.clock.now()
            // Every other transient app is due within one slot each (plus the jitter inside it).
            let slots = Double(Self.transientApps.count)
            for id in Self.transientApps {
                let state = try #require(await engine.state(of: id))
                if state.consecutiveFailures > 0 {
                    let retry = try #require(state.nextAttempt)
                    #expect(retry <= recovered.addingTimeInterval(slots / Self.budget), "\(id) retries at \(retry), recovery at \(recovered)")
                    #expect(retry > recovered, "\(id): spread over the budget's slots, not all at once")
                }
            }
            await fixture.runDaemonTime(engine, seconds: slots / Self.budget)
            for (index, id) in config.apps.map(\.id).enumerated() where id != GenAuthHarness.otherAppId {
                let state = try #require(await engine.state(of: id))
                #expect(state.consecutiveFailures == 0, "\(id) recovered within \(Int(slots)) slots of the budget: \(state)")
                #expect(fixture.outputSecret(index) == harness.state.currentSecret(appId: id))
            }
            // The permanent failure keeps its backoff (no read of it since).
            let still = try #require(await engine.state(of: GenAuthHarness.otherAppId))
            #expect(still.nextAttempt == permanentRetry && still.consecutiveFailures == permanent.consecutiveFailures)
            let recoveries = fixture.capture.entries.filter { $0.metadata["event"] == "genauth_recovered" }
            #expect(recoveries.count == 1, "one recovery, logged once: \(recoveries.map(\.message))")
        }
    }

    /// GenAuth answers once, then 503 again before the apps pulled forward retry: each of them
    /// fails into the next step of its backoff, and a later answer does not pull it forward
    /// again in the same failure streak (no loop of early retries while GenAuth flaps).
    @Test func aFlappingGenAuthCutsEachBackoffShortOncePerFailureStreak() async throws {
        try await withEngineFixture { harness, fixture in
            for (offset, id) in Self.extraApps.enumerated() { harness.state.addApp(appId: id, appName: "app\(offset + 2)") }
            let engine = Self.engine(fixture)
            _ = try await Self.outage(harness, fixture, engine)
            var before: [String: AppState] = [:]
            for id in Self.transientApps { before[id] = await engine.state(of: id) }
            #expect(before.count == Self.transientApps.count)
            let first = try #require(before.values.compactMap(\.nextAttempt).min())
            let answering = try #require(before.first { $0.value.nextAttempt == first }?.key)

            harness.state.clearFaults()
            harness.state.inject(Self.unknownApp)
            fixture.clock.set(first)
            await engine.runDue()
            var pulled: Set<String> = []
            for id in Self.transientApps {
                let state = try #require(await engine.state(of: id))
                if state.consecutiveFailures > 0, state.nextAttempt != before[id]?.nextAttempt { pulled.insert(id) }
            }
            #expect(pulled.count >= 3, "apps were pulled forward: \(pulled)")
            // GenAuth fails again: the pulled-forward retries fail.
            harness.state.inject(.init(endpoint: .getApplicationSecret, count: 100_000, fault: .httpStatus(503, jsonBody: true)))
            fixture.clock.advance(by: .seconds(Double(Self.transientApps.count) / Self.budget))
            await engine.runDue()
            var afterFlap: [String: AppState] = [:]
            for id in pulled {
                let state = try #require(await engine.state(of: id))
                let old = try #require(before[id])
                #expect(state.consecutiveFailures == old.consecutiveFailures + 1, "\(id) retried once, early: \(state)")
                #expect((state.nextAttempt ?? .distantPast) >= fixture.clock.now().addingTimeInterval(2), "the next backoff step, not at once")
                afterFlap[id] = state
            }
            // GenAuth answers again (an operator's fetch of the app that recovered): the apps
            // already cut short in this streak keep their backoff.
            harness.state.clearFaults()
            harness.state.inject(Self.unknownApp)
            #expect(await engine.request(.fetch, forApp: answering))
            await engine.runDue()
            for (id, state) in afterFlap {
                #expect(await engine.state(of: id)?.nextAttempt == state.nextAttempt, "\(id) pulled forward twice in one failure streak")
            }
        }
    }
}
