import Foundation
import Testing

@testable import SecretRotator

@Suite struct RotationPlannerTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func app(action: AppAction = .rotate, firstStart: FirstStart = .fetch, hook: [String]? = nil, jitter: Duration = .zero)
        -> AppConfig
    {
        AppConfig(
            id: "app-1", name: "one", action: action, interval: .seconds(3_600), jitter: jitter, firstStart: firstStart,
            onRotate: hook, hookTimeout: .seconds(60), outputs: [])
    }

    @Test func newAppFetchesOrRotatesAtOnceByFirstStart() {
        let fresh = AppState(appID: "app-1")
        #expect(RotationPlanner.nextStep(app: app(), state: fresh, pendingVersion: nil, now: start) == .fetch)
        #expect(RotationPlanner.nextStep(app: app(firstStart: .rotate), state: fresh, pendingVersion: nil, now: start) == .refresh)
        #expect(RotationPlanner.nextStep(app: app(action: .follow), state: fresh, pendingVersion: nil, now: start) == .fetch)
    }

    @Test func pendingSecretIsFinishedBeforeAnythingElse() {
        var state = AppState(appID: "app-1")
        state.intent = .refresh
        state.version = 3
        state.hookDoneVersion = 1
        #expect(RotationPlanner.nextStep(app: app(hook: ["true"]), state: state, pendingVersion: 4, now: start) == .finishPending(version: 4))
    }

    @Test func unknownRefreshIsReconciledNeverRepeated() {
        var state = AppState(appID: "app-1")
        state.version = 2
        state.lastSuccess = start
        state.intent = .refresh
        #expect(RotationPlanner.nextStep(app: app(), state: state, pendingVersion: nil, now: start) == .reconcile)
    }

    @Test func owedHookRunsBeforeTheScheduleAndRespectsBackoff() {
        var state = AppState(appID: "app-1")
        state.version = 5
        state.hookDoneVersion = 4
        state.lastSuccess = start
        #expect(RotationPlanner.nextStep(app: app(hook: ["true"]), state: state, pendingVersion: nil, now: start) == .runHook(version: 5))
        state.consecutiveFailures = 1
        state.nextAttempt = start.addingTimeInterval(30)
        #expect(RotationPlanner.nextStep(app: app(hook: ["true"]), state: state, pendingVersion: nil, now: start) == .wait(until: start.addingTimeInterval(30)))
        // Without a hook configured nothing is owed.
        state.consecutiveFailures = 0
        state.nextAttempt = nil
        #expect(RotationPlanner.nextStep(app: app(), state: state, pendingVersion: nil, now: start) == .wait(until: start.addingTimeInterval(3_600)))
    }

    @Test func scheduleIsLastSuccessPlusIntervalPlusStableJitter() {
        var state = AppState(appID: "app-1")
        state.version = 1
        state.hookDoneVersion = 1
        state.lastSuccess = start
        let jittered = app(jitter: .seconds(600))
        let offset = RotationPlanner.seconds(ScheduleJitter.offset(appID: "app-1", jitter: .seconds(600)))
        let due = start.addingTimeInterval(3_600 + offset)
        #expect(RotationPlanner.nextStep(app: jittered, state: state, pendingVersion: nil, now: start) == .wait(until: due))
        #expect(RotationPlanner.nextStep(app: jittered, state: state, pendingVersion: nil, now: due) == .refresh)
        #expect(RotationPlanner.nextStep(app: app(action: .follow, jitter: .seconds(600)), state: state, pendingVersion: nil, now: due) == .fetch)
    }

    @Test func persistedBackoffWinsOverTheSchedule() {
        var state = AppState(appID: "app-1")
        state.version = 1
        state.hookDoneVersion = 1
        state.lastSuccess = start.addingTimeInterval(-10 * 3_600)
        state.consecutiveFailures = 3
        state.nextAttempt = start.addingTimeInterval(120)
        // Overdue by the schedule, but a restart must not retry before the persisted time.
        #expect(RotationPlanner.nextStep(app: app(), state: state, pendingVersion: nil, now: start) == .wait(until: start.addingTimeInterval(120)))
        #expect(RotationPlanner.nextStep(app: app(), state: state, pendingVersion: nil, now: start.addingTimeInterval(120)) == .refresh)
    }
}
