import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Synchronization
import Testing

@testable import SecretRotator

/// The daemon's scheduler loop (`RotationService`) in-process, against the in-process mock.
@Suite struct SchedulerLoopTests {
    /// With every `max_concurrent` slot busy the loop sleeps until a step finishes: 20 apps due
    /// at once, one slot, and a GenAuth that answers every secret read 20 ms late. Each turn of
    /// the loop pings the watchdog (its status reports are at most one a second), so the
    /// number of pings is the number of turns: a few per step, however long the pass takes.
    /// While the slot was busy the loop turned at full speed (tens of thousands of turns in
    /// this pass).
    @Test(.timeLimit(.minutes(1))) func turnsPerStepNotPerMoment() async throws {
        try await withEngineFixture { harness, fixture in
            let apps = 20
            var config = fixture.config()
            config.defaults.maxConcurrent = 1
            let template = config.apps[0]
            config.apps = (0..<apps).map { index in
                var app = template
                app.id = String(format: "62a1b2c3d4e5f6071829%04d", index)
                app.name = "app\(index)"
                app.outputs[0].path = fixture.directory.appendingPathComponent("drop/app\(index)").path
                harness.state.addApp(appId: app.id, appName: app.name)
                return app
            }
            harness.state.inject(MockFaultRule(endpoint: .getApplicationSecret, count: 10_000, fault: .delay(milliseconds: 20)))
            let engine = fixture.engine(config: config, realClock: true)
            try await engine.start()

            let turns = Tally()
            let heartbeats = Tally()
            let (settled, settledSignal) = AsyncStream<Void>.makeStream()
            var events = RotationService.Events()
            events.heartbeat = { heartbeats.add() }
            events.status = { report in
                turns.add()
                // Every app holds its secret and waits for its schedule: the pass is over.
                let now = Date()
                if report.apps.allSatisfy({ $0.hasSecret && $0.version > 0 && ($0.nextDue ?? .distantPast) > now }) {
                    settledSignal.yield()
                }
            }
            let service = RotationService(
                engine: engine, configPath: fixture.directory.appendingPathComponent("unused.toml").path, loader: ConfigLoader(),
                stateDirectory: StateDirectory(path: config.defaults.stateDirectory), events: events,
                logger: harness.capture.logger(label: "secret-rotator"))
            let running = Task { try await service.run() }
            var waiting = settled.makeAsyncIterator()
            _ = await waiting.next()
            let counted = turns.value
            let pinged = heartbeats.value
            // A cancelled service ends its loop (and cancels what is in flight: nothing here).
            running.cancel()
            try await running.value

            let reads = harness.requests(to: .getApplicationSecret).count
            #expect(reads >= apps, "every app was fetched through the slow mock")
            // A first start is one fetch step per app; each finishing step wakes the loop once,
            // and a few more turns come from start-up and the pass's output checks.
            #expect(counted <= 4 * apps, "scheduler loop turns: \(counted) for \(apps) apps, \(reads) slow reads")
            #expect(pinged <= 4 * apps, "watchdog pings: \(pinged)")
            for (index, app) in config.apps.enumerated() {
                #expect(fixture.outputSecret(index) == harness.state.currentSecret(appId: app.id), "\(app.name)")
            }
        }
    }
}

/// A count that closures on any thread add to.
private final class Tally: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}
