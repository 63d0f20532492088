import Foundation
import Testing

@testable import SecretRotator

/// The planner holds only a `rotate` app's scheduled rotation to its window.
@Suite struct WindowPlannerTests {
    let policy = EnginePolicy(
        retry: RetryPolicy(initial: .seconds(2), max: .seconds(600), multiplier: 2), settlePeriod: .seconds(15),
        verifyInterval: .zero)
    /// Friday 2026-12-04 10:00 UTC: the secret's age starts here.
    let obtained = Date(timeIntervalSince1970: 1_796_378_400)

    func app(
        window: String? = "Mon..Fri 02:00-04:00 UTC", jitter: Duration = .zero, interval: Duration = .seconds(3_600),
        action: AppAction = .rotate, firstStart: FirstStart = .fetch
    ) throws -> AppConfig {
        var app = AppConfig(
            id: "app-window", name: "win", action: action, interval: interval, jitter: jitter, firstStart: firstStart,
            onRotate: nil, hookTimeout: .seconds(60), outputs: [])
        app.window = try window.flatMap { try RotationWindow.parse($0) }
        return app
    }

    func healthy() -> AppState {
        var state = AppState(appID: "app-window")
        state.version = 3
        state.hookDoneVersion = 3
        state.secretObtainedAt = obtained
        state.lastChecked = obtained
        state.lastVerified = obtained
        return state
    }

    func step(_ app: AppConfig, _ state: AppState, at now: Date, held: Int? = 3) -> RotationPlanner.Step {
        RotationPlanner.nextStep(app: app, state: state, facts: .init(heldVersion: held), policy: policy, now: now)
    }

    @Test func obtainedIsAFriday() throws {
        #expect(obtained == (try utc("2026-12-04T10:00:00Z")))
    }

    @Test func aRotationDueOutsideItsWindowWaitsForTheNextOpening() throws {
        let due = try utc("2026-12-04T11:00:00Z")
        let monday = try utc("2026-12-07T02:00:00Z")
        // Without a window it rotates at once; with one it waits over the weekend, and says why.
        #expect(step(try app(window: nil), healthy(), at: due) == .refresh)
        #expect(step(try app(), healthy(), at: due) == .waitForWindow(until: monday))
        #expect(step(try app(), healthy(), at: due).name == "wait_window")
        #expect(step(try app(), healthy(), at: obtained) == .waitForWindow(until: monday), "held by the window before it is due, too")
        #expect(step(try app(), healthy(), at: monday) == .refresh)
        #expect(RotationPlanner.scheduledDate(app: try app(), state: healthy()) == monday)
        // Due inside an opening: no wait beyond the interval.
        var early = healthy()
        early.secretObtainedAt = try utc("2026-12-04T01:30:00Z")
        #expect(step(try app(), early, at: try utc("2026-12-04T02:00:00Z")) == .wait(until: try utc("2026-12-04T02:30:00Z")))
        #expect(step(try app(), early, at: try utc("2026-12-04T02:30:00Z")) == .refresh)
    }

    @Test func waitingAppsAreSpreadInsideTheWindowByTheirJitter() throws {
        let monday = try utc("2026-12-07T02:00:00Z")
        let jittered = try app(jitter: .seconds(1_800))
        let offset = TimeInterval(DurationSyntax.milliseconds(of: ScheduleJitter.offset(appID: "app-window", jitter: .seconds(1_800)))) / 1000
        #expect(offset > 0)
        #expect(RotationPlanner.scheduledDate(app: jittered, state: healthy()) == monday.addingTimeInterval(offset))
        // A jitter longer than the window is scaled to it: the start stays inside.
        let long = try app(window: "Mon..Fri 02:00-02:10 UTC", jitter: .seconds(36_000), interval: .seconds(86_400))
        let longOffset = TimeInterval(DurationSyntax.milliseconds(of: ScheduleJitter.offset(appID: "app-window", jitter: .seconds(36_000)))) / 1000
        let start = RotationPlanner.scheduledDate(app: long, state: healthy())
        #expect(start == monday.addingTimeInterval(longOffset * 600 / 36_000))
        #expect(start >= monday && start < monday.addingTimeInterval(600))
        // Other ids land elsewhere in the same opening.
        var other = jittered
        other.id = "app-other"
        #expect(RotationPlanner.scheduledDate(app: other, state: healthy()) != RotationPlanner.scheduledDate(app: jittered, state: healthy()))
    }

    /// The daemon was stopped through the whole opening: the rotation waits for the next one
    /// instead of starting outside it; inside a later opening it goes at once.
    @Test func aMissedWindowWaitsForTheNextOpening() throws {
        let afterMonday = try utc("2026-12-07T05:00:00Z")
        #expect(step(try app(), healthy(), at: afterMonday) == .waitForWindow(until: try utc("2026-12-08T02:00:00Z")))
        #expect(step(try app(), healthy(), at: try utc("2026-12-08T03:59:00Z")) == .refresh)
    }

    @Test func retriesRecoveryFirstStartsAndPollsDoNotWait() throws {
        let saturday = try utc("2026-12-05T12:00:00Z")
        // A started rotation that failed is retried after its backoff, window or not.
        var owed = healthy()
        owed.rotationOwed = true
        owed.consecutiveFailures = 1
        owed.nextAttempt = saturday.addingTimeInterval(-1)
        #expect(step(try app(), owed, at: saturday) == .refresh)
        // A held secret is written, an unknown refresh reconciled.
        #expect(step(try app(), healthy(), at: saturday, held: 4) == .writeOutputs(version: 4))
        var unknown = healthy()
        unknown.intent = .refresh
        unknown.intentStartedAt = saturday.addingTimeInterval(-60)
        #expect(step(try app(), unknown, at: saturday) == .reconcile)
        // A first start must produce a secret, whatever the hour.
        #expect(step(try app(firstStart: .rotate), AppState(appID: "app-window"), at: saturday, held: nil) == .refresh)
        #expect(step(try app(), AppState(appID: "app-window"), at: saturday, held: nil) == .fetch)
        // A follow app polls when due.
        #expect(step(try app(action: .follow), healthy(), at: saturday) == .fetch)
        #expect(RotationPlanner.scheduledDate(app: try app(action: .follow), state: healthy()) == (try utc("2026-12-04T11:00:00Z")))
    }
}
