import Foundation
import Testing

@testable import SecretRotator

@Suite struct RotationPlannerTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    /// Settle 15 s (request timeout 5 s), verification every 2 h.
    let policy = EnginePolicy(
        retry: RetryPolicy(initial: .seconds(2), max: .seconds(600), multiplier: 2), settlePeriod: .seconds(15),
        verifyInterval: .seconds(7_200))

    func app(action: AppAction = .rotate, firstStart: FirstStart = .fetch, hook: [String]? = nil, jitter: Duration = .zero)
        -> AppConfig
    {
        AppConfig(
            id: "app-1", name: "one", action: action, interval: .seconds(3_600), jitter: jitter, firstStart: firstStart,
            onRotate: hook, hookTimeout: .seconds(60), outputs: [])
    }

    func step(
        _ app: AppConfig, _ state: AppState, held: Int? = nil, check: Bool = false, at now: Date? = nil,
        policy: EnginePolicy? = nil
    ) -> RotationPlanner.Step {
        RotationPlanner.nextStep(
            app: app, state: state, facts: RotationPlanner.Facts(heldVersion: held, outputsCheckDue: check),
            policy: policy ?? self.policy, now: now ?? start)
    }

    /// A healthy app at `version`, its secret obtained and verified at `start`.
    func healthy(version: Int = 1) -> AppState {
        var state = AppState(appID: "app-1")
        state.version = version
        state.hookDoneVersion = version
        state.secretObtainedAt = start
        state.lastChecked = start
        state.lastVerified = start
        return state
    }

    @Test func newAppFetchesOrRotatesAtOnceByFirstStart() {
        let fresh = AppState(appID: "app-1")
        #expect(step(app(), fresh) == .fetch)
        #expect(step(app(firstStart: .rotate), fresh) == .refresh)
        #expect(step(app(action: .follow), fresh) == .fetch)
    }

    @Test func heldSecretIsWrittenBeforeAnythingElse() {
        var state = healthy(version: 3)
        state.intent = .refresh
        state.hookDoneVersion = 1
        #expect(step(app(hook: ["true"]), state, held: 4, check: true) == .writeOutputs(version: 4))
    }

    /// Fault 7: no decision on a read taken while the refresh may still be in flight.
    @Test func unknownRefreshIsReconciledOnlyAfterTheSettlePeriodAndConfirmedOnce() {
        var state = healthy(version: 2)
        state.intent = .refresh
        state.intentStartedAt = start
        #expect(step(app(), state, held: 2) == .wait(until: start.addingTimeInterval(15)))
        #expect(step(app(), state, held: 2, at: start.addingTimeInterval(15)) == .reconcile)
        state.unchangedReads = 1
        #expect(step(app(), state, held: 2, at: start.addingTimeInterval(15)) == .wait(until: start.addingTimeInterval(30)))
        #expect(step(app(), state, held: 2, at: start.addingTimeInterval(30)) == .reconcile)
    }

    @Test func owedHookRunsBeforeTheSchedule() {
        var state = healthy(version: 5)
        state.hookDoneVersion = 4
        #expect(step(app(hook: ["true"]), state, held: 5) == .runHook(version: 5))
        // Without a hook configured nothing is owed.
        #expect(step(app(), state, held: 5) == .wait(until: start.addingTimeInterval(3_600)))
    }

    /// Killed between recording a version and running its hook, with a rotation due at
    /// restart: the hook runs first (the crash loop once found a version whose hook never
    /// ran); a hook that failed does not hold a due rotation back.
    @Test func neverTriedHookRunsBeforeADueRotationAFailedOneDoesNot() {
        var state = healthy(version: 5)
        state.hookDoneVersion = 4
        state.secretObtainedAt = start.addingTimeInterval(-7_200)
        #expect(step(app(hook: ["true"]), state, held: 5) == .runHook(version: 5))
        state.consecutiveFailures = 1
        state.nextAttempt = start.addingTimeInterval(-1)
        #expect(step(app(hook: ["true"]), state, held: 5) == .refresh)
    }

    /// Fault 2: one backoff decides every retry, whatever the step.
    @Test(arguments: ["write", "reconcile", "hook", "inspect", "verify", "fetch", "refresh"])
    func everyStepWaitsForThePendingBackoff(_ kind: String) {
        var state = healthy(version: 2)
        var held: Int? = 2
        var check = false
        var config = app()
        switch kind {
        case "write": held = 3
        case "reconcile":
            state.intent = .refresh
            state.intentStartedAt = start.addingTimeInterval(-60)
        case "hook":
            config = app(hook: ["true"])
            state.hookDoneVersion = 1
        case "inspect": check = true
        case "verify": held = nil
        case "fetch":
            config = app(action: .follow)
            state.lastChecked = start.addingTimeInterval(-7_200)
        default: state.secretObtainedAt = start.addingTimeInterval(-7_200)
        }
        #expect(step(config, state, held: held, check: check) != .wait(until: start.addingTimeInterval(3_600)))
        state.consecutiveFailures = 4
        state.nextAttempt = start.addingTimeInterval(120)
        #expect(step(config, state, held: held, check: check) == .wait(until: start.addingTimeInterval(120)), "\(kind)")
    }

    @Test func outputsAreInspectedWhenAPassAsksAndASecretIsHeld() {
        #expect(step(app(), healthy(), held: 1, check: true) == .inspectOutputs)
        // Without a held secret (a state from before Engine v2) GenAuth is asked first.
        #expect(step(app(), healthy(), held: nil, check: true) == .verify)
    }

    /// Fault 4: only a new secret moves the rotation schedule; a fetch (lastChecked) does not.
    @Test func rotationIsDueBySecretAgeNotByTheLastCheck() {
        var state = healthy()
        state.lastChecked = start.addingTimeInterval(3_000)
        #expect(step(app(), state, held: 1, at: start.addingTimeInterval(3_600)) == .refresh)
        // A follower polls on its interval from the last check instead.
        #expect(step(app(action: .follow), state, held: 1, at: start.addingTimeInterval(3_600)) == .wait(until: start.addingTimeInterval(6_600)))
    }

    @Test func scheduleIsSecretAgePlusIntervalPlusStableJitter() {
        let jittered = app(jitter: .seconds(600))
        let offset = RotationPlanner.seconds(ScheduleJitter.offset(appID: "app-1", jitter: .seconds(600)))
        let due = start.addingTimeInterval(3_600 + offset)
        #expect(step(jittered, healthy(), held: 1) == .wait(until: due))
        #expect(step(jittered, healthy(), held: 1, at: due) == .refresh)
        #expect(step(app(action: .follow, jitter: .seconds(600)), healthy(), held: 1, at: due) == .fetch)
    }

    @Test func verificationFollowsTheSettleCheckAndTheInterval() {
        var state = healthy()
        let hourly = EnginePolicy(retry: policy.retry, settlePeriod: .seconds(15), verifyInterval: .seconds(1_800))
        #expect(step(app(), state, held: 1, policy: hourly) == .wait(until: start.addingTimeInterval(1_800)))
        #expect(step(app(), state, held: 1, at: start.addingTimeInterval(1_800), policy: hourly) == .verify)
        state.settleCheckDue = start.addingTimeInterval(15)
        #expect(step(app(), state, held: 1, policy: hourly) == .wait(until: start.addingTimeInterval(15)))
        #expect(step(app(), state, held: 1, at: start.addingTimeInterval(15), policy: hourly) == .verify)
        // "0s" turns the periodic check off; followers never verify (they poll).
        let off = EnginePolicy(retry: policy.retry, settlePeriod: .seconds(15), verifyInterval: .zero)
        #expect(step(app(), healthy(), held: 1, policy: off) == .wait(until: start.addingTimeInterval(3_600)))
        #expect(step(app(action: .follow), state, held: 1, policy: hourly) == .wait(until: start.addingTimeInterval(3_600)))
    }

    /// A started rotation that failed (or did not take effect) is retried after the backoff,
    /// not left to the next scheduled one.
    @Test func owedRotationIsRetriedAfterTheBackoff() {
        var state = healthy()
        state.rotationOwed = true
        state.consecutiveFailures = 1
        state.nextAttempt = start.addingTimeInterval(4)
        #expect(step(app(), state, held: 1) == .wait(until: start.addingTimeInterval(4)))
        #expect(step(app(), state, held: 1, at: start.addingTimeInterval(4)) == .refresh)
        // Outputs are repaired first (no API call), and a follower never refreshes.
        #expect(step(app(), state, held: 1, check: true, at: start.addingTimeInterval(4)) == .inspectOutputs)
        #expect(step(app(action: .follow), state, held: 1, at: start.addingTimeInterval(4)) == .wait(until: start.addingTimeInterval(3_600)))
    }

    @Test func persistedBackoffWinsOverTheSchedule() {
        var state = healthy()
        state.secretObtainedAt = start.addingTimeInterval(-10 * 3_600)
        state.consecutiveFailures = 3
        state.nextAttempt = start.addingTimeInterval(120)
        // Overdue by the schedule, but a restart must not retry before the persisted time.
        #expect(step(app(), state, held: 1) == .wait(until: start.addingTimeInterval(120)))
        #expect(step(app(), state, held: 1, at: start.addingTimeInterval(120)) == .refresh)
    }
}
