import Foundation
import InMemoryLogging
import Logging
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// The engine tells consumer units of every new version, over the `SystemdUnitManaging` seam,
/// keeps what systemd showed, retries a failure with the one backoff and never rotates for it.
@Suite struct ConsumerEngineTests {
    static func config(_ fixture: EngineFixture) -> RotatorConfig {
        var config = fixture.config()
        config.apps[0].consumers = ["billing.service", "worker.service"]
        config.apps[0].consumerGrace = .seconds(30)
        return config
    }

    /// A started engine over this fixture whose consumer units answer as `behaviours` say, after
    /// its first pass (every app fetched, its consumers told), with every log entry kept.
    static func firstPass(
        _ harness: GenAuthHarness, _ fixture: EngineFixture, _ behaviours: [String: FakeSystemdUnits.Behaviour]
    ) async throws -> (engine: RotationEngine, units: FakeSystemdUnits, log: LogCapture) {
        let units = FakeSystemdUnits(clock: fixture.clock.now)
        for (unit, behaviour) in behaviours { units.set(unit, behaviour) }
        let engine = try await fixture.startedEngine(config: config(fixture), units: units)
        return (engine, units, fixture.capture)
    }

    @Test func everyNewVersionIsAnnouncedToEachConsumerAndConfirmed() async throws {
        try await withEngineFixture { harness, fixture in
            let (engine, units, handler) = try await Self.firstPass(harness, fixture, ["worker.service": .reloads])
            #expect(units.calls == [.init(unit: "billing.service", action: .reloadOrRestart), .init(unit: "worker.service", action: .reloadOrRestart)])
            let state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.consumersDoneVersion == 1)
            #expect(state.consumers.map(\.state) == [.confirmed, .confirmed])
            #expect(state.consumers.map(\.detail) == ["restarted", "reloaded"])
            let confirmed = handler.entries.filter { $0.metadata["event"] == "consumer_confirmed" }
            #expect(confirmed.count == 2 && confirmed.allSatisfy { $0.metadata["version"] == "1" })
            // The other app names no consumer: nothing is asked for it.
            #expect(units.calls.count == 2)
            // A rotation tells them again, of the new version.
            fixture.clock.advance(by: .seconds(3_601))
            await engine.runDue()
            #expect(units.calls.count == 4)
            #expect(try #require(await engine.state(of: GenAuthHarness.appId)).consumersDoneVersion == 2)
            fixture.expectInvariant()
        }
    }

    @Test func aRefusedConsumerIsRetriedWithTheBackoffWithoutRotatingAgain() async throws {
        try await withEngineFixture { harness, fixture in
            let (engine, units, handler) = try await Self.firstPass(harness, fixture, ["worker.service": .refuses("Interactive authentication required.")])
            let failed = handler.entries.filter { $0.metadata["event"] == "consumer_failed" }
            #expect(failed.count == 1)
            let message = "\(failed.first?.message ?? "")"
            #expect(message.contains("Interactive authentication required."))
            #expect(failed.first?.metadata["unit"] == "worker.service")
            #expect(!handler.entries.contains { $0.metadata["event"] == "rotation_failed" })
            var state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.consumersDoneVersion == 0 && state.consecutiveFailures == 1)
            #expect(state.consumers.map(\.state) == [.confirmed, .failed])

            // Status reports it once the grace has passed, not before.
            let stateDirectory = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            let early = StatusReport.read(config: Self.config(fixture), stateDirectory: stateDirectory, now: fixture.clock.now())
            #expect(early.verdict == .failing, "within consumer_grace it is a failing attempt, not yet a consumer problem")
            let late = StatusReport.read(
                config: Self.config(fixture), stateDirectory: stateDirectory, now: fixture.clock.now().addingTimeInterval(31))
            #expect(late.verdict == .consumers && late.verdict.rawValue == 5 && late.verdict.pluginState.word == "CRITICAL")
            let text = late.render(now: fixture.clock.now())
            #expect(text.contains("consumer worker.service is not confirmed on version 1"))
            #expect(text.components(separatedBy: "app0: consumer worker.service").count == 2, "told once: \(text)")
            #expect(early.render(now: fixture.clock.now()).contains("consumer worker.service failed"))

            // The retry (after the backoff) tells only the unit that did not settle, and rotates nothing.
            units.set("worker.service", .restarts)
            let refreshes = fixture.refreshRequests(GenAuthHarness.appId)
            await fixture.runDaemonTime(engine, seconds: 60)
            #expect(units.calls.map(\.unit) == ["billing.service", "worker.service", "worker.service"])
            #expect(fixture.refreshRequests(GenAuthHarness.appId) == refreshes, "no rotation for a consumer")
            state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.consumersDoneVersion == 1 && state.consecutiveFailures == 0)
            let healed = StatusReport.read(config: Self.config(fixture), stateDirectory: stateDirectory, now: fixture.clock.now())
            #expect(healed.verdict == .ok)
        }
    }

    /// A consumer that fails at every rotation is late from its first failure: measured from
    /// each new version, an app rotating more often than consumer_grace never showed it.
    @Test func aConsumerFailingAtEveryRotationIsReportedFromItsFirstFailure() async throws {
        try await withEngineFixture { harness, fixture in
            let (engine, _, _) = try await Self.firstPass(harness, fixture, ["worker.service": .jobFails("failed")])
            let firstFailure = fixture.clock.now()
            fixture.clock.advance(by: .seconds(20))
            #expect(await engine.request(.refresh, forApp: GenAuthHarness.appId))
            await engine.runDue()
            let state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.version == 2, "rotated again within the grace")
            #expect(state.consumers.last?.failingSince == firstFailure)
            let stateDirectory = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            let report = StatusReport.read(
                config: Self.config(fixture), stateDirectory: stateDirectory, now: firstFailure.addingTimeInterval(31))
            #expect(report.verdict == .consumers, "31 s after its first failure, though version 2 is 11 s old")
        }
    }

    /// A failing consumer removed from the config no longer holds the app in its failure: the
    /// next step settles the version (the app once failed until its next
    /// rotation).
    @Test func aFailingConsumerRemovedFromTheConfigEndsTheFailure() async throws {
        try await withEngineFixture { harness, fixture in
            let (engine, units, _) = try await Self.firstPass(harness, fixture, ["worker.service": .refuses("no")])
            #expect(try #require(await engine.state(of: GenAuthHarness.appId)).consecutiveFailures == 1)
            for remaining in [["billing.service"], []] {
                var config = Self.config(fixture)
                config.apps[0].consumers = remaining
                await engine.apply(config)
                await fixture.runDaemonTime(engine, seconds: 60)
                let state = try #require(await engine.state(of: GenAuthHarness.appId))
                #expect(state.consecutiveFailures == 0 && state.consumersDoneVersion == state.version, "\(remaining)")
                if remaining.isEmpty { break }
                // Fail again, for the second round (no consumers at all).
                config.apps[0].consumers = ["billing.service", "worker.service"]
                await engine.apply(config)
                _ = await engine.request(.refresh, forApp: GenAuthHarness.appId)
                await engine.runDue()
                #expect(try #require(await engine.state(of: GenAuthHarness.appId)).consecutiveFailures == 1)
            }
            #expect(units.calls.filter { $0.unit == "worker.service" }.count == 2, "a removed unit is not told")
        }
    }

    @Test func aStoppedConsumerIsNotRunningNotAProblem() async throws {
        try await withEngineFixture { harness, fixture in
            let (engine, _, handler) = try await Self.firstPass(harness, fixture, ["worker.service": .stopped])
            #expect(handler.entries.contains { $0.metadata["event"] == "consumer_not_running" && $0.metadata["unit"] == "worker.service" })
            let state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.consumersDoneVersion == 1 && state.consecutiveFailures == 0)
            let stateDirectory = StateDirectory(path: fixture.directory.appendingPathComponent("state").path)
            let report = StatusReport.read(
                config: Self.config(fixture), stateDirectory: stateDirectory, now: fixture.clock.now().addingTimeInterval(3_000))
            #expect(report.apps[0].health.findings.allSatisfy { if case .consumerBehind = $0 { false } else { true } })
            #expect(report.render(now: fixture.clock.now()).contains("consumer worker.service not running"))
        }
    }

    /// A consumer whose job reported done but whose unit never restarted after the write is
    /// not taken as picked up (a merged job, a unit that ignores reloads).
    @Test func aDoneJobWithoutARestartIsAFailure() async throws {
        try await withEngineFixture { harness, fixture in
            let (engine, _, handler) = try await Self.firstPass(harness, fixture, ["billing.service": .ignores])
            let state = try #require(await engine.state(of: GenAuthHarness.appId))
            #expect(state.consumers.first?.state == .failed)
            #expect(handler.entries.contains { $0.metadata["event"] == "consumer_failed" && $0.metadata["unit"] == "billing.service" })
        }
    }
}
