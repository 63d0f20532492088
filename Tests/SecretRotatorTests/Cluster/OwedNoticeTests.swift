import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Synchronization
import Testing

@testable import SecretRotator

/// Rotation notices are owed, not attempted (Architecture, Fleet): a notice etcd refuses for
/// longer than any retry budget stays owed durably, across a restart, and is published once
/// etcd accepts it, with its intent deleted; an intent etcd refuses sends no refresh, leaves
/// the app to its backoff (one try per step, not a spin) and is not an unknown outcome.
/// Each host here is a real engine and coordinator on a `FakeClusterStore`.
@Suite(.serialized) struct OwedNoticeTests {
    let id = GenAuthHarness.appId
    static let settings = ClusterSettings(endpoints: ["http://fake"], prefix: "/fleet", leaseTTL: .seconds(5), host: "a")
    /// Milliseconds instead of seconds: many more tries than the old budget (10) in a test's time.
    static let fastRetry = RetryPolicy(initial: .milliseconds(1), max: .milliseconds(4), multiplier: 2)

    struct Host {
        let engine: RotationEngine
        let coordinator: FleetCoordinator
        let run: Task<Void, Never>

        func stop() async {
            run.cancel()
            await run.value
        }
    }

    /// An engine on `fixture`'s state directory joined to a coordinator on `store`, started,
    /// its first pass run, the coordinator running; returns once it leads (at most 10 s).
    static func leader(_ fixture: EngineFixture, _ harness: GenAuthHarness, store: FakeClusterStore) async throws -> Host {
        var config = fixture.config()
        config.cluster = settings
        let engine = fixture.engine(config: config)
        let clock = fixture.clock
        let coordinator = FleetCoordinator(
            settings: settings, store: store, engine: engine, stateDirectory: config.defaults.stateDirectory,
            now: clock.now, retryPolicy: fastRetry, logger: harness.capture.logger(label: "secret-rotator.cluster"))
        await engine.joinCluster(coordinator)
        try await engine.start()
        await engine.runDue()
        let run = Task { await coordinator.run() }
        let host = Host(engine: engine, coordinator: coordinator, run: run)
        do {
            try await waitUntil(deadline: .seconds(10), "the coordinator did not lead a fake etcd") {
                await coordinator.snapshot().role == .leader
            }
        } catch {
            await host.stop()
            throw error
        }
        return host
    }

    /// etcd refuses the notice (its quota full) for 30 tries, three times the old budget of 10
    /// that ended in `cluster_publish_failed` and nothing more: the notice stays owed in the
    /// app's record, one warning says so (not one per try), the process stops, and the next
    /// start publishes it once etcd takes writes, deletes the intent, and settles the debt.
    @Test func refusedNoticeStaysOwedAcrossARestartAndIsPublishedWhenAccepted() async throws {
        try await withEngineFixture { harness, fixture in
            let store = FakeClusterStore()
            let first = try await Self.leader(fixture, harness, store: store)
            store.refuseWrites(under: "/fleet/apps/")
            fixture.clock.advance(by: .seconds(3_600))
            await first.engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 1)
            let noticeKey = Self.settings.noticeKey(appID: id)
            let refused = (try? await waitUntil(deadline: .seconds(10)) { store.writeAttempts(noticeKey) >= 30 }) != nil
            let state = try #require(await first.engine.state(of: id))
            await first.stop()
            #expect(refused, "\(store.writeAttempts(noticeKey)) tries at the notice")
            #expect(state.announcedVersion < state.version, "owed: \(state.announcedVersion) < \(state.version)")
            #expect(harness.capture.events("cluster_publish_failed").count == 1)
            #expect(store.value(noticeKey) == nil)
            #expect(store.value(Self.settings.intentKey(appID: id)) != nil, "the rotation's intent is still there")

            // A new process on the same state directory; etcd accepts writes again.
            store.refuseWrites(under: nil)
            let second = try await Self.leader(fixture, harness, store: store)
            // Both apps rotated at the same due time: every debt is paid, every intent gone.
            let published = (try? await waitUntil(deadline: .seconds(10)) {
                await second.engine.owedAnnouncements().isEmpty && store.value(Self.settings.intentKey(appID: id)) == nil
            }) != nil
            let notice = store.value(noticeKey).flatMap { ClusterRecordCoding.decode(RotationNotice.self, from: $0.value) }
            let after = await second.engine.state(of: id)
            await second.stop()
            #expect(published, "the owed notices were published and the intent deleted")
            #expect(after.map { $0.announcedVersion == $0.version } == true)
            #expect(notice?.version == 1 && notice?.host == "a")
            #expect(notice.map { abs($0.rotatedAt.timeIntervalSince(state.secretObtainedAt ?? .distantPast)) < 0.001 } == true)
            #expect(harness.state.rotationCount(appId: id) == 1, "announcing never rotates")
        }
    }

    /// etcd renews the lease but refuses the intent: no refresh is sent, each refresh makes
    /// at most `FleetCoordinator.intentTries` tries (then the app waits its own backoff: no
    /// try while it runs), one warning says etcd refuses intents, and `status` shows a failing
    /// app with the reason, never "a refresh's outcome is unknown" (none was sent).
    @Test func refusedIntentBacksOffInStepsAndIsNoUnknownOutcome() async throws {
        try await withEngineFixture { harness, fixture in
            let store = FakeClusterStore()
            let host = try await Self.leader(fixture, harness, store: store)
            store.refuseWrites(under: "/fleet/intent/")
            let intentKey = Self.settings.intentKey(appID: id)
            fixture.clock.advance(by: .seconds(3_600))
            let pass = Task { await host.engine.runDue(maxStepsPerApp: 1) }
            let returned = (try? await waitUntil(deadline: .seconds(10)) { store.writeAttempts(intentKey) >= FleetCoordinator.intentTries }) != nil
            // Bounded: with the spin, a pass never returned while etcd renewed the lease.
            let finished = (try? await waitUntil(deadline: .seconds(10)) { await host.engine.state(of: id)?.consecutiveFailures == 1 }) != nil
            if !finished { pass.cancel() }
            _ = await pass.value
            #expect(returned && finished, "\(store.writeAttempts(intentKey)) tries")
            #expect(store.writeAttempts(intentKey) == FleetCoordinator.intentTries)
            #expect(fixture.refreshRequests(id) == 0)
            let state = try #require(await host.engine.state(of: id))
            #expect(state.intent == nil && state.rotationOwed)
            let retryAt = try #require(state.nextAttempt)
            #expect(retryAt > fixture.clock.now())

            // Within the backoff: not one more try.
            await host.engine.runDue(maxStepsPerApp: 1)
            #expect(store.writeAttempts(intentKey) == FleetCoordinator.intentTries)
            // Past it: one more refresh, its few tries, and no second warning.
            fixture.clock.set(retryAt.addingTimeInterval(0.001))
            await host.engine.runDue(maxStepsPerApp: 1)
            #expect(store.writeAttempts(intentKey) == 2 * FleetCoordinator.intentTries)
            #expect(await host.engine.state(of: id)?.consecutiveFailures == 2)
            // The coordinator says so once; each app's refused step carries the same event, with its app_id.
            #expect(harness.capture.events("cluster_intent_failed").filter { $0.metadata["app_id"] == nil }.count == 1)

            var config = fixture.config()
            config.cluster = Self.settings
            let report = StatusReport.read(
                config: config, stateDirectory: StateDirectory(path: config.defaults.stateDirectory), now: fixture.clock.now(), checkOutputs: true)
            let text = report.render(now: fixture.clock.now())
            #expect(!text.contains("outcome is unknown"), "\(text)")
            #expect(text.contains("refresh not sent: etcd did not record the intent"), "\(text)")

            // etcd takes writes again: the next retry rotates, and one line says intents work.
            store.refuseWrites(under: nil)
            fixture.clock.set((await host.engine.state(of: id)?.nextAttempt ?? fixture.clock.now()).addingTimeInterval(0.001))
            await host.engine.runDue()
            await host.stop()
            #expect(harness.state.rotationCount(appId: id) == 1)
            #expect(harness.capture.contains(event: "cluster_intent_recorded"))
            fixture.expectInvariant()
        }
    }
}
