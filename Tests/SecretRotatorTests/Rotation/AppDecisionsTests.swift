import Foundation
import Testing

@testable import SecretRotator

/// Tables for the runtime decisions (`AppDecisions`), the request-answered rule
/// (`RequestOutcome`), the backoff rule (`AppState.retryAt`) and the settled rule
/// (`AppHealth.isSettled`): each row names its case, its inputs and the one expected output.
@Suite struct AppDecisionsTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    /// Settle 15 s, verification every 2 h.
    static let policy = EnginePolicy(
        retry: RetryPolicy(initial: .seconds(2), max: .seconds(600), multiplier: 2), settlePeriod: .seconds(15),
        verifyInterval: .seconds(7_200))
    static let single = FleetView.singleHost
    static let follower = FleetView(inFleet: true, leading: false, suspended: false)
    static let suspended = FleetView(inFleet: true, leading: false, suspended: true)
    static let leader = FleetView(inFleet: true, leading: true, suspended: false)

    static func app(_ action: AppAction = .rotate) -> AppConfig {
        AppConfig(
            id: "app-1", name: "one", action: action, interval: .seconds(3_600), jitter: .zero, firstStart: .fetch,
            onRotate: nil, hookTimeout: .seconds(60), outputs: [])
    }

    static func at(_ seconds: TimeInterval) -> Date { start.addingTimeInterval(seconds) }

    /// At `version`, its secret obtained and checked at `start`, nothing owed.
    static func healthy(version: Int = 1) -> AppState {
        var state = AppState(appID: "app-1")
        state.version = version
        state.secretObtainedAt = start
        state.lastChecked = start
        state.lastVerified = start
        return state
    }

    /// Healthy, but its last attempt failed and the retry is due at `start + 60 s`.
    static func inBackoff() -> AppState {
        var state = healthy()
        state.consecutiveFailures = 1
        state.nextAttempt = Self.at(60)
        return state
    }

    static func runtime(
        held: Int? = 1, request: RotationPlanner.Step? = nil, override: Bool = false, check: Bool = false, handOverUntil: Date? = nil
    ) -> AppRuntime {
        var runtime = AppRuntime(heldVersion: held)
        runtime.request = request
        runtime.backoffOverride = override
        runtime.outputsCheckDue = check
        runtime.handOverUntil = handOverUntil
        return runtime
    }

    // MARK: - plan

    struct PlanRow: Sendable, CustomTestStringConvertible {
        let name: String
        let state: AppState
        let runtime: AppRuntime
        var fleet = AppDecisionsTests.single
        var action = AppAction.rotate
        let expected: AppDecisions.Plan
        var testDescription: String { name }
    }

    static let planRows: [PlanRow] = {
        var intent = healthy()
        intent.intent = .refresh
        intent.intentStartedAt = start
        let fresh = AppState(appID: "app-1")
        return [
            PlanRow(name: "idle: waits for its interval", state: healthy(), runtime: runtime(), expected: .init(.wait(until: Self.at(3_600)))),
            PlanRow(name: "rotate asked", state: healthy(), runtime: runtime(request: .refresh), expected: .init(.refresh, isRequest: true)),
            PlanRow(name: "fetch asked", state: healthy(), runtime: runtime(request: .fetch), expected: .init(.fetch, isRequest: true)),
            PlanRow(
                name: "fetch asked: outputs checked first", state: healthy(), runtime: runtime(request: .fetch, check: true),
                expected: .init(.inspectOutputs)),
            PlanRow(
                name: "rotate asked in a backoff: waits for it", state: inBackoff(), runtime: runtime(request: .refresh),
                expected: .init(.wait(until: Self.at(60)))),
            PlanRow(
                name: "rotate asked in a backoff, overridden once", state: inBackoff(), runtime: runtime(request: .refresh, override: true),
                expected: .init(.refresh, isRequest: true)),
            PlanRow(
                name: "rotate asked while a refresh is unsettled: reconcile first", state: intent, runtime: runtime(request: .refresh),
                expected: .init(.wait(until: Self.at(15)))),
            PlanRow(
                name: "rotate asked while a held secret waits: written first", state: healthy(), runtime: runtime(held: 2, request: .refresh),
                expected: .init(.writeOutputs(version: 2))),
            PlanRow(
                name: "rotate asked before any secret: the first start goes first", state: fresh, runtime: runtime(held: nil, request: .refresh),
                expected: .init(.fetch)),
            PlanRow(
                name: "rotate asked on a follower: answered with a fetch", state: healthy(), runtime: runtime(request: .refresh),
                fleet: follower, expected: .init(.fetch, isRequest: true)),
            PlanRow(
                name: "rotate asked while leadership is suspended: kept", state: healthy(), runtime: runtime(request: .refresh),
                fleet: suspended, expected: .init(.wait(until: Self.at(3_600)))),
            PlanRow(
                name: "rotate asked on the leader", state: healthy(), runtime: runtime(request: .refresh), fleet: leader,
                expected: .init(.refresh, isRequest: true)),
            PlanRow(
                name: "hand-over: nothing before its end", state: healthy(), runtime: runtime(handOverUntil: Self.at(15)), fleet: leader,
                expected: .init(.wait(until: Self.at(15)))),
            PlanRow(
                name: "hand-over: its first read at once", state: healthy(), runtime: runtime(request: .fetch, handOverUntil: Self.at(15)),
                fleet: leader, expected: .init(.fetch, isRequest: true)),
            PlanRow(
                name: "hand-over: its first read waits for a backoff", state: inBackoff(),
                runtime: runtime(request: .fetch, handOverUntil: Self.at(15)), fleet: leader, expected: .init(.wait(until: Self.at(15)))),
            PlanRow(
                name: "hand-over over: the confirming read", state: healthy(), runtime: runtime(handOverUntil: Self.at(-1)), fleet: leader,
                expected: .init(.fetch)),
            PlanRow(
                name: "hand-over over, in a backoff: waits for it", state: inBackoff(), runtime: runtime(handOverUntil: Self.at(-1)),
                fleet: leader, expected: .init(.wait(until: Self.at(60)))),
            PlanRow(
                name: "follow app: polls on its interval", state: healthy(), runtime: runtime(), action: .follow,
                expected: .init(.wait(until: Self.at(3_600)))),
        ]
    }()

    @Test(arguments: planRows) func plan(_ row: PlanRow) {
        let plan = AppDecisions.plan(
            app: Self.app(row.action), state: row.state, runtime: row.runtime, fleet: row.fleet, policy: Self.policy, now: Self.start)
        #expect(plan == row.expected)
    }

    // MARK: - request

    struct RequestRow: Sendable, CustomTestStringConvertible {
        let name: String
        let step: RotationPlanner.Step
        var state = AppDecisionsTests.healthy()
        var before = AppDecisionsTests.runtime()
        var fleet = AppDecisionsTests.single
        var action = AppAction.rotate
        let request: RotationPlanner.Step
        var override = false
        var check = false
        let notices: [AppDecisions.RequestNotice]
        var testDescription: String { name }
    }

    static let requestRows: [RequestRow] = [
        RequestRow(name: "rotate", step: .refresh, request: .refresh, notices: []),
        RequestRow(name: "fetch compares the outputs", step: .fetch, request: .fetch, check: true, notices: []),
        RequestRow(
            name: "a fetch does not replace an asked rotation", step: .fetch, before: runtime(request: .refresh), request: .refresh,
            check: true, notices: []),
        RequestRow(name: "rotate on a follower", step: .refresh, fleet: follower, request: .refresh, notices: [.notLeader]),
        RequestRow(name: "rotate while suspended", step: .refresh, fleet: suspended, request: .refresh, notices: [.waitsForLease]),
        RequestRow(name: "rotate of a follow app on a follower", step: .refresh, fleet: follower, action: .follow, request: .refresh, notices: []),
        RequestRow(
            name: "rotate in a backoff overrides it once", step: .refresh, state: inBackoff(), request: .refresh, override: true,
            notices: [.backoffOverridden(retryAt: Self.at(60))]),
    ]

    @Test(arguments: requestRows) func request(_ row: RequestRow) {
        var runtime = row.before
        let notices = AppDecisions.request(
            row.step, app: Self.app(row.action), state: row.state, runtime: &runtime, fleet: row.fleet, now: Self.start)
        #expect(notices == row.notices)
        #expect(runtime.request == row.request)
        #expect(runtime.backoffOverride == row.override)
        #expect(runtime.outputsCheckDue == row.check)
    }

    // MARK: - leadership, notices

    struct LeadershipRow: Sendable, CustomTestStringConvertible {
        let name: String
        var leading = true
        var intent: Date? = nil
        var notice: Date? = nil
        var catchUpAll = false
        var before = AppDecisionsTests.runtime()
        let request: RotationPlanner.Step?
        var handOverUntil: Date? = nil
        var handOverCurrent = false
        var upstream: Date? = nil
        var testDescription: String { name }
    }

    static let leadershipRows: [LeadershipRow] = [
        LeadershipRow(name: "won, nothing left behind", request: nil),
        LeadershipRow(
            name: "won over an interrupted rotation", intent: Self.at(-5), request: .fetch, handOverUntil: Self.at(10), handOverCurrent: true,
            upstream: Self.at(-5)),
        LeadershipRow(
            name: "won over an interrupted rotation, behind a notice", intent: Self.at(-5), notice: Self.at(30), request: .fetch,
            handOverUntil: Self.at(10), upstream: Self.at(30)),
        LeadershipRow(name: "won, a notice newer than the held secret", notice: Self.at(30), request: .fetch, upstream: Self.at(30)),
        LeadershipRow(name: "won, a notice older than the held secret", notice: Self.at(-30), request: nil),
        LeadershipRow(name: "won, etcd unreadable: read every app", catchUpAll: true, request: .fetch),
        LeadershipRow(
            name: "lost: the hand-over ends", leading: false, before: runtime(handOverUntil: Self.at(10)), request: nil, handOverUntil: nil),
    ]

    @Test(arguments: leadershipRows) func leadershipChanged(_ row: LeadershipRow) {
        var runtime = row.before
        AppDecisions.leadershipChanged(
            state: Self.healthy(), runtime: &runtime, leading: row.leading, intentStarted: row.intent, noticeAt: row.notice,
            catchUpAll: row.catchUpAll, settlePeriod: Self.policy.settlePeriod)
        #expect(runtime.request == row.request)
        #expect(runtime.handOverUntil == row.handOverUntil)
        #expect(runtime.handOverCurrent == row.handOverCurrent)
        #expect(runtime.upstreamRotatedAt == row.upstream)
    }

    @Test func notices() {
        // (live, rotated at, request before) -> (queued, request after)
        let rows: [(Bool, Date, RotationPlanner.Step?, Bool, RotationPlanner.Step?)] = [
            (true, Self.at(-30), nil, true, .fetch),
            (false, Self.at(-30), nil, false, nil),
            (false, Self.at(30), nil, true, .fetch),
            (true, Self.at(30), .refresh, true, .refresh),
        ]
        for (live, rotatedAt, before, queued, after) in rows {
            var runtime = Self.runtime(request: before)
            #expect(AppDecisions.notified(state: Self.healthy(), runtime: &runtime, rotatedAt: rotatedAt, live: live) == queued)
            #expect(runtime.request == after)
        }
    }

    // MARK: - a step starts and finishes

    @Test func stepStartingUsesUpTheRequestAndTheOverride() {
        var runtime = Self.runtime(request: .refresh, override: true)
        AppDecisions.stepStarting(.init(.refresh, isRequest: true), runtime: &runtime)
        #expect(runtime.request == nil && !runtime.backoffOverride)
        var unasked = Self.runtime(request: .refresh, override: true)
        AppDecisions.stepStarting(.init(.writeOutputs(version: 2)), runtime: &unasked)
        #expect(unasked.request == .refresh && !unasked.backoffOverride, "recovery ran; the request waits for its turn")
    }

    struct FinishRow: Sendable, CustomTestStringConvertible {
        let name: String
        let plan: AppDecisions.Plan
        let after: AppState
        var held: Int? = 1
        var handOverUntil: Date? = nil
        let request: RotationPlanner.Step?
        var handOverAfter: Date? = nil
        var testDescription: String { name }
    }

    static let finishRows: [FinishRow] = {
        var failed = healthy()
        failed.consecutiveFailures = 1
        failed.rotationOwed = true
        var rotated = healthy(version: 2)
        rotated.secretObtainedAt = Self.at(1)
        var fetched = healthy()
        fetched.lastChecked = Self.at(1)
        var outputsFailing = failed
        outputsFailing.intent = .refresh
        // The refresh's intent could not be recorded while the current version's hook is owed:
        // the old state with one more failure, `rotationOwed` never set.
        var intentRefused = healthy()
        intentRefused.consecutiveFailures = 1
        let asked = AppDecisions.Plan(.refresh, isRequest: true)
        let fetch = AppDecisions.Plan(.fetch, isRequest: true)
        return [
            FinishRow(name: "a rotate whose intent was refused while a hook is owed stays asked for", plan: asked, after: intentRefused, request: .refresh),
            FinishRow(name: "a failed rotate stays asked for", plan: asked, after: failed, request: .refresh),
            FinishRow(name: "an answered rotate is done", plan: asked, after: rotated, request: nil),
            FinishRow(
                name: "a rotate GenAuth answered whose outputs fail is done", plan: asked, after: outputsFailing, held: 2, request: nil),
            FinishRow(name: "a failed fetch stays asked for", plan: fetch, after: failed, request: .fetch),
            FinishRow(name: "a scheduled step that failed asks nothing", plan: .init(.refresh), after: failed, request: nil),
            FinishRow(
                name: "the hand-over's last read answered: over", plan: .init(.fetch), after: fetched, handOverUntil: Self.at(-1), request: nil),
            FinishRow(
                name: "the hand-over's last read failed: kept", plan: .init(.fetch), after: failed, handOverUntil: Self.at(-1), request: nil,
                handOverAfter: Self.at(-1)),
            FinishRow(
                name: "a read before the hand-over's end does not end it", plan: fetch, after: fetched, handOverUntil: Self.at(10),
                request: nil, handOverAfter: Self.at(10)),
        ]
    }()

    @Test(arguments: finishRows) func stepFinished(_ row: FinishRow) {
        var runtime = Self.runtime(held: row.held, handOverUntil: row.handOverUntil)
        AppDecisions.stepFinished(row.plan, startedAt: Self.start, before: Self.healthy(), after: row.after, runtime: &runtime)
        #expect(runtime.request == row.request)
        #expect(runtime.handOverUntil == row.handOverAfter)
    }

    @Test func secretWrittenEndsAHandOverOnlyForTheOldLeadersRefresh() {
        // (origin, hand-over current) -> hand-over left
        let rows: [(AppTransitions.SecretOrigin, Bool, Date?)] = [
            (.changedUpstream, true, nil),
            (.changedUpstream, false, Self.at(10)),
            (.fetched, true, Self.at(10)),
            (.rotated, true, Self.at(10)),
        ]
        for (origin, current, left) in rows {
            var runtime = Self.runtime(check: true, handOverUntil: Self.at(10))
            runtime.handOverCurrent = current
            AppDecisions.secretWritten(origin: origin, runtime: &runtime)
            #expect(runtime.handOverUntil == left, "\(origin)")
            #expect(!runtime.outputsCheckDue)
        }
    }

    @Test func obtainedAtCountsFromTheAnnouncedRotation() {
        // (origin, announced at) -> (obtained at, announcement left)
        let rows: [(AppTransitions.SecretOrigin, Date?, Date, Date?)] = [
            (.fetched, Self.at(-30), Self.at(-30), nil),
            (.changedUpstream, Self.at(-30), Self.at(-30), nil),
            (.fetched, Self.at(-3_600), Self.start, nil),
            (.fetched, Self.at(30), Self.start, nil),
            (.rotated, Self.at(-30), Self.start, Self.at(-30)),
            (.fetched, nil, Self.start, nil),
        ]
        for (origin, announced, obtained, left) in rows {
            var runtime = AppRuntime()
            runtime.upstreamRotatedAt = announced
            #expect(AppDecisions.obtainedAt(origin: origin, now: Self.start, interval: .seconds(3_600), runtime: &runtime) == obtained)
            #expect(runtime.upstreamRotatedAt == left)
        }
    }

    // MARK: - request answered

    struct OutcomeRow: Sendable, CustomTestStringConvertible {
        let name: String
        let kind: RequestOutcome.Kind
        let after: AppState
        var held: Int? = 1
        let expected: RequestOutcome
        var testDescription: String { name }
    }

    static let outcomeRows: [OutcomeRow] = {
        let before = healthy()
        var written = healthy(version: 2)
        written.secretObtainedAt = Self.at(1)
        var writtenIntent = written
        writtenIntent.intent = .refresh
        var checked = before
        checked.lastChecked = Self.at(1)
        var checkedFailing = checked
        checkedFailing.consecutiveFailures = 1
        var failed = before
        failed.consecutiveFailures = 1
        failed.rotationOwed = true
        var inFlight = failed
        inFlight.intent = .refresh
        var hookRetry = before
        hookRetry.consecutiveFailures = 1
        hookRetry.hookDoneVersion = 0
        return [
            OutcomeRow(name: "nothing yet", kind: .rotate, after: before, expected: .pending),
            OutcomeRow(name: "a new version written", kind: .rotate, after: written, expected: .written(version: 2)),
            OutcomeRow(name: "a new version not settled yet", kind: .rotate, after: writtenIntent, expected: .pending),
            OutcomeRow(name: "a fetch read GenAuth", kind: .fetch, after: checked, expected: .checked(version: 1, failing: false)),
            OutcomeRow(
                name: "a fetch read GenAuth, a later step fails", kind: .fetch, after: checkedFailing,
                expected: .checked(version: 1, failing: true)),
            OutcomeRow(name: "a rotate's refresh failed", kind: .rotate, after: failed, expected: .failed),
            OutcomeRow(name: "a fetch's read failed", kind: .fetch, after: failed, expected: .failed),
            OutcomeRow(name: "a failure while the refresh is in flight", kind: .rotate, after: inFlight, expected: .pending),
            OutcomeRow(
                name: "GenAuth answered, the outputs fail", kind: .rotate, after: inFlight, held: 2, expected: .obtainedButFailing(version: 2)),
            OutcomeRow(name: "the old version's hook failed again", kind: .rotate, after: hookRetry, expected: .pending),
            OutcomeRow(name: "a fetch's hook retry failed", kind: .fetch, after: hookRetry, expected: .failed),
        ]
    }()

    @Test(arguments: outcomeRows) func requestOutcome(_ row: OutcomeRow) {
        let outcome = RequestOutcome.judge(row.kind, before: Self.healthy(), after: row.after, heldVersion: row.held)
        #expect(outcome == row.expected)
        #expect(outcome.answered == ![.pending, .failed].contains(outcome))
    }

    /// Within the request's own step every failure is the step's: the CLI's exemptions (a
    /// hook retried before the refresh, a refresh in flight) do not apply.
    @Test func aFailureWithinTheRequestsOwnStepIsItsOwn() {
        var hookRetry = Self.healthy()
        hookRetry.consecutiveFailures = 1
        var inFlight = hookRetry
        inFlight.intent = .refresh
        for after in [hookRetry, inFlight] {
            #expect(RequestOutcome.judge(.rotate, before: Self.healthy(), after: after, heldVersion: 1) == .pending)
            #expect(RequestOutcome.judge(.rotate, before: Self.healthy(), after: after, heldVersion: 1, onlyItsStep: true) == .failed)
        }
    }

    // MARK: - backoff, settled

    @Test func backoffRule() {
        // (failures, next attempt) -> (retry at, in backoff at start)
        let rows: [(Int, Date?, Date?, Bool)] = [
            (0, nil, nil, false),
            (0, Self.at(60), nil, false),
            (1, Self.at(60), Self.at(60), true),
            (1, Self.at(-1), Self.at(-1), false),
            (1, Self.start, Self.start, false),
            (3, nil, nil, false),
        ]
        for (failures, next, retry, backoff) in rows {
            var state = Self.healthy()
            state.consecutiveFailures = failures
            state.nextAttempt = next
            #expect(state.retryAt == retry)
            #expect(state.isInBackoff(at: Self.start) == backoff)
        }
    }

    @Test func settledRule() {
        var failing = Self.healthy()
        failing.consecutiveFailures = 1
        var unsettled = Self.healthy()
        unsettled.intent = .refresh
        // (state, held version) -> settled
        let rows: [(AppState, Int?, Bool)] = [
            (Self.healthy(), 1, true),
            (Self.healthy(), nil, true),
            (Self.healthy(), 2, false),
            (AppState(appID: "app-1"), nil, false),
            (failing, 1, false),
            (unsettled, 1, false),
        ]
        for (state, held, settled) in rows {
            #expect(AppHealth.isSettled(state, heldVersion: held) == settled)
        }
    }

    @Test func hookOwedRule() {
        // (version, hook done, has hook) -> owed version
        let rows: [(Int, Int, Bool, Int?)] = [
            (0, 0, true, nil),
            (1, 0, true, 1),
            (1, 1, true, nil),
            (3, 1, true, 3),
            (3, 1, false, nil),
        ]
        for (version, done, hasHook, owed) in rows {
            var state = AppState(appID: "app-1")
            state.version = version
            state.hookDoneVersion = done
            #expect(state.hookOwed(hasHook: hasHook) == owed)
        }
    }

    /// `isSettled` (the engine's answer to a standalone rotate) and `judge` (the `status`
    /// verdict) agree: an app is settled exactly when `judge` finds none of the record's own
    /// problems (no secret, failing, a refresh unsettled, a held secret not on the outputs).
    @Test func settledAgreesWithTheStatusVerdict() {
        var failing = Self.healthy()
        failing.consecutiveFailures = 2
        failing.lastError = "boom"
        var unsettled = Self.healthy()
        unsettled.intent = .refresh
        unsettled.intentStartedAt = Self.start
        let states = [Self.healthy(), failing, unsettled, AppState(appID: "app-1")]
        for state in states {
            for held in [nil, max(state.version, 1), state.version + 1] {
                let app = StatusReport.App(
                    app: Self.app(), state: state, pendingVersion: held.flatMap { $0 > state.version ? $0 : nil }, nextDue: nil,
                    hasSecret: state.version > 0 || held != nil)
                let findings = AppHealth.judge(app, outputFindings: [], now: Self.start, grace: .seconds(3_600)).findings
                let recordProblem = findings.contains {
                    switch $0 {
                    case .neverObtained, .failing, .unresolvedRefresh: true
                    default: false
                    }
                } || app.pendingVersion != nil
                #expect(AppHealth.isSettled(state, heldVersion: held) == !recordProblem, "\(state) held \(String(describing: held))")
            }
        }
    }
}
