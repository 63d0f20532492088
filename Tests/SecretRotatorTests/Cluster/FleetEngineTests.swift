import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Synchronization
import Testing

@testable import SecretRotator

/// A fence the test decides: grants or refuses each refresh, and records announcements.
final class RecordingFence: RotationFence {
    private let answer: Mutex<RefreshAuthorization>
    private let asked = Mutex<[String]>([])
    private let announced = Mutex<[(String, Date)]>([])

    /// Runs inside `authorizeRefresh`, before it answers (e.g. the leadership is lost then).
    let duringAuthorization = Mutex<(@Sendable () async -> Void)?>(nil)

    init(_ answer: RefreshAuthorization = .granted) { self.answer = Mutex(answer) }

    func set(_ answer: RefreshAuthorization) { self.answer.withLock { $0 = answer } }
    var authorizations: [String] { asked.withLock { $0 } }
    var announcements: [(appID: String, rotatedAt: Date)] { announced.withLock { $0.map { ($0.0, $0.1) } } }

    func authorizeRefresh(appID: String) async -> RefreshAuthorization {
        asked.withLock { $0.append(appID) }
        if let hook = duringAuthorization.withLock({ $0 }) { await hook() }
        return answer.withLock { $0 }
    }

    func announce(appID: String, version: Int, rotatedAt: Date) {
        announced.withLock { $0.append((appID, rotatedAt)) }
    }
}

/// The engine's side of a fleet: only the leader rotates, every refresh asks the
/// fence first, a refused fence sends nothing, the leader announces each new secret, and a
/// notice or a hand-over makes the engine read GenAuth instead of rotating.
@Suite struct FleetEngineTests {
    let id = GenAuthHarness.appId

    /// An engine joined to `fence`, leading or not, started, with its first pass run (the
    /// first start's fetch): where every test here begins.
    static func started(
        _ fixture: EngineFixture, fence: RecordingFence = RecordingFence(), leading: Bool = false
    ) async throws -> RotationEngine {
        let engine = try fixture.engine()
        await engine.joinCluster(fence)
        if leading { await engine.leadershipChanged(leading: true) }
        try await engine.start()
        await engine.runDue()
        return engine
    }


    /// Fencing: a refresh the fence refuses is never sent (the mock sees no refresh), it is
    /// logged with `cluster_fenced`, no intent is left, no backoff is set (once: the
    /// backoff delayed acting on the new leader's notice), and the outputs keep the secret.
    @Test func refusedFenceSendsNoRefresh() async throws {
        try await withEngineFixture { harness, fixture in
            let fence = RecordingFence(.refused("fenced: test"))
            // First start: a fetch (no fence needed for a read).
            let engine = try await Self.started(fixture, fence: fence, leading: true)
            #expect(fence.authorizations.isEmpty)
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue(maxStepsPerApp: 1)
            #expect(fence.authorizations.contains(id))
            #expect(fixture.refreshRequests(id) == 0)
            #expect(harness.state.rotationCount(appId: id) == 0)
            let state = try #require(await engine.state(of: id))
            #expect(state.intent == nil)
            // Not a failure of the app (no backoff holding back the next notice): the leader rotates it.
            #expect(state.consecutiveFailures == 0 && state.nextAttempt == nil)
            #expect(state.rotationOwed == false)
            #expect(harness.capture.contains(event: "cluster_fenced"))
            fixture.expectInvariant()
            #expect(fence.announcements.isEmpty)
        }
    }

    /// The leader rotates on schedule after the fence grants, and announces the new secret
    /// with the time it obtained it (what followers' schedules count from).
    @Test func leaderRotatesAndAnnounces() async throws {
        try await withEngineFixture { harness, fixture in
            let fence = RecordingFence()
            let engine = try await Self.started(fixture, fence: fence, leading: true)
            #expect(fence.announcements.isEmpty, "a first fetch is not a rotation to announce")
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 1)
            fixture.expectInvariant()
            let announced = fence.announcements.filter { $0.appID == id }
            #expect(announced.count == 1)
            #expect(announced.first?.rotatedAt == (await engine.state(of: id))?.secretObtainedAt)
        }
    }

    /// A candidate that does not lead never refreshes: at its due time it reads instead, and
    /// an operator's rotate is answered with a read.
    @Test func nonLeaderFollowsInsteadOfRotating() async throws {
        try await withEngineFixture { harness, fixture in
            let fence = RecordingFence()
            let engine = try await Self.started(fixture, fence: fence)
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(await engine.request(.refresh, forApp: id))
            await engine.runDue()
            #expect(fixture.refreshRequests(id) == 0)
            #expect(fence.authorizations.isEmpty)
            #expect(harness.capture.contains(event: "cluster_not_leader"))
            fixture.expectInvariant()
            // Its schedule is a poll's now: the next step is an interval after the last read.
            let state = try #require(await engine.state(of: id))
            #expect(state.lastChecked == fixture.clock.now())
        }
    }

    /// A notice from the leader: the follower fetches at once, adopts the new secret and
    /// counts its age from the leader's rotation (so that, leading later, it rotates on the
    /// fleet's schedule).
    @Test func noticeFetchesAtOnceAndKeepsTheLeadersTime() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await Self.started(fixture)
            // Another host rotates at T; this host hears of it 0.2 s later.
            let rotatedAt = fixture.clock.now().addingTimeInterval(100)
            _ = try await harness.client.refreshApplicationSecret(appId: id)
            fixture.clock.set(rotatedAt.addingTimeInterval(0.2))
            #expect(await engine.notified(appID: id, rotatedAt: rotatedAt, live: true))
            await engine.runDue()
            fixture.expectInvariant()
            #expect(await engine.state(of: id)?.secretObtainedAt == rotatedAt)
            #expect(harness.capture.contains(event: "followed"))
            // A snapshot notice no newer than the held secret is not acted on.
            #expect(!(await engine.notified(appID: id, rotatedAt: rotatedAt, live: false)))
        }
    }

    /// The hand-over: a new leader that finds another leader's unfinished intent reads
    /// GenAuth's current secret a settle period after that intent, and does not rotate a
    /// secret the old leader already rotated (0 double rotations).
    @Test func handOverReadsInsteadOfRotatingTwice() async throws {
        try await withEngineFixture { harness, fixture in
            let fence = RecordingFence()
            let engine = try await Self.started(fixture, fence: fence)
            // The old leader's rotation happened right when it was due; its notice never came.
            fixture.clock.advance(by: .seconds(3_600))
            _ = try await harness.client.refreshApplicationSecret(appId: id)
            await engine.leadershipChanged(leading: true, intents: [id: fixture.clock.now()])
            // At once: this host held the newest secret, so the change its first read finds is
            // the old leader's refresh, and there is nothing left to wait for.
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 1, "the hand-over read the secret, it did not rotate again")
            fixture.expectInvariant()
            // What it found changed is announced, so followers that missed it fetch too.
            #expect(fence.announcements.contains { $0.appID == id })
            // The next rotation is an interval after the one it found.
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 2)
            fixture.expectInvariant()
        }
    }

    /// The old leader was killed while its refresh was in flight; the
    /// new leader read GenAuth at once, saw the old secret, rotated (the app was due), and the
    /// old request landed afterwards: two rotations, and the fleet held a dead secret. Now
    /// nothing is decided before a settle period after the intent, and the late refresh is found.
    @Test func handOverWaitsASettlePeriodForAnInFlightRefresh() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await Self.started(fixture)
            fixture.clock.advance(by: .seconds(3_600))  // due now
            let intentAt = fixture.clock.now()
            await engine.leadershipChanged(leading: true, intents: [id: intentAt])
            fixture.clock.advance(by: .seconds(1))
            await engine.runDue()
            let calls = harness.state.requestLog().filter { $0.appId == id && !$0.path.hasSuffix("get-management-token") }
            #expect(calls.count == 2 && calls.allSatisfy { $0.path.hasSuffix("get-application-secret") },
                "the first start's read and the hand-over's first read; no refresh within the settle period")
            #expect(harness.state.rotationCount(appId: id) == 0)
            // The old leader's request lands now, late.
            _ = try await harness.client.refreshApplicationSecret(appId: id)
            fixture.clock.set(intentAt.addingTimeInterval(RotationPlanner.seconds(EnginePolicy.settlePeriod(requestTimeout: .seconds(5))) + 1))
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 1, "the late refresh was found, not followed by a second")
            fixture.expectInvariant()
            // Its age counts from the old leader's intent, so the next rotation is on schedule.
            #expect(await engine.state(of: id)?.secretObtainedAt == intentAt)
        }
    }

    /// Losing the leadership between the plan and the refresh: the refresh asks the fence,
    /// which refuses, so nothing is sent; becoming a follower again, the app is only read.
    @Test func leadershipLostMidwayStopsBeforeTheRefresh() async throws {
        try await withEngineFixture { harness, fixture in
            let fence = RecordingFence()
            let engine = try await Self.started(fixture, fence: fence, leading: true)
            fence.set(.refused("the election key is gone"))
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue(maxStepsPerApp: 1)
            await engine.leadershipChanged(leading: false)
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(fixture.refreshRequests(id) == 0)
            fixture.expectInvariant()
        }
    }

    /// The residual window: the leadership is lost after the fencing transaction granted the
    /// refresh and before GenAuth answered. The refresh happened, so it is announced anyway:
    /// the fleet must fetch the secret that is now the only valid one.
    @Test func refreshGrantedThenLeadershipLostIsStillAnnounced() async throws {
        try await withEngineFixture { harness, fixture in
            let fence = RecordingFence()
            let engine = try await Self.started(fixture, fence: fence, leading: true)
            fence.duringAuthorization.withLock { $0 = { await engine.leadershipChanged(leading: false) } }
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue(maxStepsPerApp: 2)
            #expect(harness.state.rotationCount(appId: id) == 1)
            fixture.expectInvariant()
            #expect(fence.announcements.contains { $0.appID == id })
            #expect(await engine.rotatesLocally == false)
        }
    }

    /// A leader whose lease etcd has not confirmed for a moment (a raft election after a
    /// member died) rotates nothing; an operator's rotate waits and runs once the lease is
    /// confirmed, instead of being answered with a fetch.
    @Test func suspendedLeaderKeepsARotateRequestUntilConfirmed() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await Self.started(fixture, leading: true)
            await engine.leadershipChanged(leading: false, suspended: true)
            #expect(await engine.request(.refresh, forApp: id))
            await engine.runDue()
            #expect(fixture.refreshRequests(id) == 0)
            #expect(harness.capture.contains(event: "cluster_rotate_waits"))
            await engine.leadershipChanged(leading: true)
            await engine.runDue()
            #expect(harness.state.rotationCount(appId: id) == 1)
            fixture.expectInvariant()
        }
    }

    /// The hand-over's reads wait for the backoff like every step: with GenAuth failing, a
    /// new leader makes one read per backoff step, not a loop of reads.
    @Test func handOverReadsRespectTheBackoff() async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await Self.started(fixture)
            fixture.clock.advance(by: .seconds(3_600))
            harness.state.inject(MockFaultRule(endpoint: .getApplicationSecret, appId: id, count: 1_000, fault: .httpStatus(503, jsonBody: true)))
            await engine.leadershipChanged(leading: true, intents: [id: fixture.clock.now().addingTimeInterval(-60)])
            let before = harness.state.requestLog().count
            await engine.runDue(maxStepsPerApp: 50)
            let reads = harness.state.requestLog().count - before
            #expect(reads <= 2, "\(reads) calls while GenAuth fails: the backoff holds them")
            #expect(harness.state.rotationCount(appId: id) == 0)
            harness.state.clearFaults()
        }
    }
}
