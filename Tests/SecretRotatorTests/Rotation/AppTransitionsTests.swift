import Foundation
import Testing

@testable import SecretRotator

/// Every (state, event) pair the engine can produce, with the state change and the actions the
/// transition answers; plus properties that must hold for every pair.
@Suite(.tags(.addressSanitizer)) struct AppTransitionsTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let policy = EnginePolicy(
        retry: RetryPolicy(initial: .seconds(2), max: .seconds(600), multiplier: 2), settlePeriod: .seconds(15),
        verifyInterval: .seconds(3_600))

    /// The states an app can be in between steps.
    static let states: [(String, AppState)] = {
        var fresh = AppState(appID: "a")
        fresh.secretFingerprint = nil
        var healthy = AppState(appID: "a")
        healthy.version = 2
        healthy.hookDoneVersion = 2
        healthy.consumersDoneVersion = 2
        healthy.secretFingerprint = "F2"
        healthy.secretObtainedAt = t0.addingTimeInterval(-100)
        healthy.announcedVersion = 2
        var inFlight = healthy
        inFlight.rotationOwed = true
        inFlight.intent = .refresh
        inFlight.intentStartedAt = t0.addingTimeInterval(-20)
        var confirming = inFlight
        confirming.unchangedReads = 1
        var failing = healthy
        failing.consecutiveFailures = 2
        failing.nextAttempt = t0.addingTimeInterval(300)
        failing.lastError = "earlier failure"
        failing.lastFailureKind = .transient
        var hookOwed = healthy
        hookOwed.version = 3
        hookOwed.secretFingerprint = "F3"
        hookOwed.announcedVersion = 3
        // Version 3 is on every output; one consumer took it, the other was refused.
        var consumersOwed = hookOwed
        consumersOwed.consumersDoneVersion = 2
        consumersOwed.consecutiveFailures = 1
        consumersOwed.nextAttempt = t0
        consumersOwed.lastFailureKind = .local
        consumersOwed.consumers = [
            ConsumerRecord(unit: "billing.service", version: 3, state: .confirmed, lastNotified: t0.addingTimeInterval(-5), lastConfirmed: t0.addingTimeInterval(-5), detail: "reloaded"),
            ConsumerRecord(
                unit: "worker.service", version: 3, state: .failed, lastNotified: t0.addingTimeInterval(-5), lastConfirmed: nil, detail: "refused",
                failingSince: t0.addingTimeInterval(-5)),
        ]
        // A leader's rotation to version 3 is on every output; etcd has not accepted its notice.
        var announceOwed = hookOwed
        announceOwed.hookDoneVersion = 3
        announceOwed.consumersDoneVersion = 3
        announceOwed.announcedVersion = 2
        return [
            ("fresh", fresh), ("healthy", healthy), ("inFlight", inFlight), ("confirming", confirming),
            ("failing", failing), ("hookOwed", hookOwed), ("consumersOwed", consumersOwed), ("announceOwed", announceOwed),
        ]
    }()

    static let events: [(String, AppTransitions.Event)] = [
        ("refreshStarting", .refreshStarting),
        ("refreshAnswered", .refreshAnswered(fingerprint: "NEW")),
        ("refreshFailed.transient", .refreshFailed(.init(.transient, "503"))),
        ("refreshFailed.unknown", .refreshFailed(.init(.outcomeUnknown, "timeout"))),
        ("refreshFailed.permanent", .refreshFailed(.init(.permanent, "404"))),
        ("read.reconcile.same", .secretRead(fingerprint: "F2", purpose: .reconcile)),
        ("read.reconcile.new", .secretRead(fingerprint: "NEW", purpose: .reconcile)),
        ("read.verify.same", .secretRead(fingerprint: "F2", purpose: .verify)),
        ("read.verify.new", .secretRead(fingerprint: "NEW", purpose: .verify)),
        ("read.fetch.same", .secretRead(fingerprint: "F2", purpose: .fetch)),
        ("read.fetch.new", .secretRead(fingerprint: "NEW", purpose: .fetch)),
        ("readFailed.429", .readFailed(.init(.transient, "429", retryAfter: .seconds(30)), purpose: .reconcile)),
        ("readFailed.forbidden", .readFailed(.init(.forbidden, "403"), purpose: .reconcile)),
        ("readFailed.verify", .readFailed(.init(.transient, "503"), purpose: .verify)),
        ("written.rotated", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .rotated)),
        ("written.fetched", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .fetched)),
        ("outputsFailed", .outputsFailed(.init(.local, "EROFS"))),
        ("drifted.content.unconfirmed", .outputsDrifted(contentChanged: true, recordConfirmed: false)),
        ("drifted.content.confirmed", .outputsDrifted(contentChanged: true, recordConfirmed: true)),
        ("drifted.mode.unconfirmed", .outputsDrifted(contentChanged: false, recordConfirmed: false)),
        ("repaired.content", .driftRepaired(causes: ["missing"], contentChanged: true)),
        ("repaired.mode", .driftRepaired(causes: ["mode"], contentChanged: false)),
        ("hook.ok", .hookFinished(version: 3, succeeded: true, detail: "")),
        ("hook.failed", .hookFinished(version: 3, succeeded: false, detail: "exited(1)")),
        ("journalFailed", .journalFailed(.init(.local, "ENOSPC"))),
        ("heldDue.confirmed", .heldSecretDue(recordConfirmed: true, obtainedAfterIntent: false)),
        ("heldDue.refreshAnswer", .heldSecretDue(recordConfirmed: false, obtainedAfterIntent: true)),
        ("heldDue.unconfirmed", .heldSecretDue(recordConfirmed: false, obtainedAfterIntent: false)),
        ("heldRead.same", .heldSecretRead(matchesHeld: true)),
        ("heldRead.dead", .heldSecretRead(matchesHeld: false)),
        ("apiRecovered", .apiRecovered(retryAt: t0.addingTimeInterval(5))),
        ("written.rotated@leader", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .rotated)),
        ("written.rotated@notLeading", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .rotated)),
        ("written.changedUpstream@leader", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .changedUpstream)),
        ("written.changedUpstream@notLeading", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .changedUpstream)),
        ("written.fetched@leader", .outputsWritten(version: 4, obtainedAt: t0, fingerprint: "NEW", origin: .fetched)),
        ("announced", .announced(version: 3)),
        (
            "consumers.ok",
            .consumersNotified(
                version: 3,
                outcomes: [.init(unit: "billing.service", state: .confirmed, detail: "reloaded"), .init(unit: "worker.service", state: .notRunning)])
        ),
        (
            "consumers.failed",
            .consumersNotified(
                version: 3,
                outcomes: [.init(unit: "billing.service", state: .confirmed), .init(unit: "worker.service", state: .failed, detail: "refused")])
        ),
    ]

    /// The fleet role an event is applied with (`@leader`, `@notLeading` in its name); none otherwise.
    static func fleet(_ eventName: String) -> AppTransitions.FleetRole {
        eventName.hasSuffix("@leader") ? .leader : eventName.hasSuffix("@notLeading") ? .notLeading : .none
    }

    /// One line per pair: what changed in the state, then the actions (reports by kind only).
    static func summary(_ before: AppState, _ result: AppTransitions.Transition) -> String {
        let after = result.state
        var changes: [String] = []
        func note<T: Equatable>(_ name: String, _ old: T, _ new: T, _ show: String) {
            if old != new { changes.append("\(name)=\(show)") }
        }
        func time(_ date: Date?) -> String { date.map { "t\(Int($0.timeIntervalSince(t0)))" } ?? "-" }
        note("v", before.version, after.version, "\(after.version)")
        note("intent", before.intent, after.intent, after.intent?.rawValue ?? "-")
        note("sent", before.intentStartedAt, after.intentStartedAt, time(after.intentStartedAt))
        note("reads", before.unchangedReads, after.unchangedReads, "\(after.unchangedReads)")
        note("fails", before.consecutiveFailures, after.consecutiveFailures, "\(after.consecutiveFailures)")
        note("next", before.nextAttempt, after.nextAttempt, time(after.nextAttempt))
        note("kind", before.lastFailureKind, after.lastFailureKind, after.lastFailureKind?.rawValue ?? "-")
        note("obtained", before.secretObtainedAt, after.secretObtainedAt, time(after.secretObtainedAt))
        note("checked", before.lastChecked, after.lastChecked, time(after.lastChecked))
        note("verified", before.lastVerified, after.lastVerified, time(after.lastVerified))
        note("settle", before.settleCheckDue, after.settleCheckDue, time(after.settleCheckDue))
        note("owed", before.rotationOwed, after.rotationOwed, "\(after.rotationOwed)")
        note("hook", before.hookDoneVersion, after.hookDoneVersion, "\(after.hookDoneVersion)")
        note("consumersDone", before.consumersDoneVersion, after.consumersDoneVersion, "\(after.consumersDoneVersion)")
        note(
            "consumers", before.consumers, after.consumers,
            after.consumers.map {
                "\($0.unit.prefix(while: { $0 != "." })):\($0.state.rawValue.replacingOccurrences(of: " ", with: "_"))@\($0.version)"
                    + ($0.failingSince.map { "~\(time($0))" } ?? "")
            }
                .joined(separator: "+"))
        note("fp", before.secretFingerprint, after.secretFingerprint, after.secretFingerprint ?? "-")
        note("repair", before.lastRepair, after.lastRepair, after.lastRepair?.causes.joined(separator: "+") ?? "-")
        note("announced", before.announcedVersion, after.announcedVersion, "\(after.announcedVersion)")
        let actions = result.actions.map { action -> String in
            switch action {
            case .sendRefresh: "send"
            case .adoptSecret(let version, let origin): "adopt(\(version),\(origin.rawValue))"
            case .keepConfirmedSecret: "keep"
            case .runHook(let version): "hook(\(version))"
            case .notifyConsumers(let version): "notify(\(version))"
            case .repairOutputs: "repair"
            case .confirmRecord: "confirm"
            case .writeHeldSecret: "writeHeld"
            case .confirmHeldSecret: "confirmHeld"
            case .announce(let version): "announce(\(version))"
            case .report(let report):
                switch report {
                case .failed(let failure, _, let delay, let permanent):
                    "failed(\(DurationSyntax.format(delay))\(permanent ? ",permanent" : "")\(failure.fields["event"].map { ",\($0)" } ?? ""))"
                default: "report(\(String(describing: report).prefix(while: { $0 != "(" })))"
                }
            }
        }
        return "\(changes.isEmpty ? "=" : changes.joined(separator: " ")) | \(actions.joined(separator: " "))"
    }

    static func apply(
        _ event: AppTransitions.Event, _ state: AppState, hook: Bool = true, consumers: Bool = true, fleet: AppTransitions.FleetRole = .none
    ) -> AppTransitions.Transition {
        AppTransitions.apply(
            event, to: state, context: .init(now: t0, policy: policy, hasHook: hook, hasConsumers: consumers, draw: 42, fleet: fleet))
    }

    /// A refresh applied but unanswered, its intent then cleared by a failed
    /// pre-flight, left a rotation owed; the secret read later is "changed upstream" (our own
    /// lost rotation), and the owed rotation killed it right after it was written.
    @Test func aSecretChangedUpstreamSettlesAnOwedRotation() {
        var state = AppState(appID: "a")
        state.version = 3
        state.rotationOwed = true
        let result = AppTransitions.apply(
            .outputsWritten(version: 4, obtainedAt: Self.t0, fingerprint: "NEW", origin: .changedUpstream), to: state,
            context: .init(now: Self.t0, policy: Self.policy, hasHook: false, draw: 42))
        #expect(result.state.rotationOwed == false)
        #expect(result.state.version == 4)
    }

    /// GenAuth answering again cuts short only a transient failure's backoff, never to a later
    /// time, and keeps the failure count (a retry that fails again takes the next step).
    @Test func apiRecoveryCutsOnlyATransientBackoff() {
        let retryAt = Self.t0.addingTimeInterval(5)
        for kind in [AppState.FailureKind.transient, .throttled, .permanent, .forbidden, .local] {
            var state = AppState(appID: "a")
            state.version = 2
            state.consecutiveFailures = 6
            state.nextAttempt = Self.t0.addingTimeInterval(369)
            state.lastFailureKind = kind
            let result = Self.apply(.apiRecovered(retryAt: retryAt), state)
            #expect(result.state.nextAttempt == (kind == .transient ? retryAt : state.nextAttempt), "\(kind)")
            #expect(result.state.consecutiveFailures == 6, "\(kind)")
            // Never later than the backoff it had.
            state.nextAttempt = Self.t0.addingTimeInterval(1)
            #expect(Self.apply(.apiRecovered(retryAt: retryAt), state).state == state, "\(kind)")
            // Nor a wait no longer than the first step (retry.initial, 2 s): a single blip.
            state.nextAttempt = Self.t0.addingTimeInterval(2)
            #expect(Self.apply(.apiRecovered(retryAt: Self.t0.addingTimeInterval(0.001)), state).state == state, "\(kind)")
            // A failure after the pulled-forward retry takes the next step of the backoff.
            var pulled = result.state
            pulled.nextAttempt = retryAt
            let again = AppTransitions.apply(
                .readFailed(.init(.transient, "503"), purpose: .fetch), to: pulled,
                context: .init(now: retryAt, policy: Self.policy, hasHook: false, draw: 42))
            #expect(again.state.consecutiveFailures == 7)
        }
        // A record from before the kind was kept keeps its backoff.
        var legacy = AppState(appID: "a")
        legacy.consecutiveFailures = 3
        legacy.nextAttempt = Self.t0.addingTimeInterval(100)
        #expect(Self.apply(.apiRecovered(retryAt: retryAt), legacy).state == legacy)
    }

    /// A failure's durable kind: what decides whether GenAuth's recovery cuts its backoff short.
    @Test func failureKindsAreKept() {
        let cases: [(AppTransitions.Failure, AppState.FailureKind)] = [
            (.init(.transient, "503"), .transient),
            (.init(.outcomeUnknown, "read timed out"), .transient),
            (.init(.transient, "429", retryAfter: .seconds(30)), .throttled),
            (.init(.permanent, "app not found"), .permanent),
            (.init(.forbidden, "403"), .forbidden),
            (.init(.local, "ENOSPC"), .local),
        ]
        for (failure, kind) in cases {
            let result = Self.apply(.readFailed(failure, purpose: .fetch), Self.states[1].1)
            #expect(result.state.lastFailureKind == kind, "\(failure.message)")
        }
    }

    @Test func everyPairMatchesTheTable() throws {
        let table = try Self.loadTable()
        var missing: [String] = []
        for (stateName, state) in Self.states {
            for (eventName, event) in Self.events {
                let key = "\(stateName) + \(eventName)"
                let got = Self.summary(state, Self.apply(event, state, fleet: Self.fleet(eventName)))
                if let expected = table[key] {
                    #expect(got == expected, "\(key)")
                } else {
                    missing.append("\(key) -> \(got)")
                }
            }
        }
        #expect(missing.isEmpty, "pairs missing from the table:\n\(missing.joined(separator: "\n"))")
        #expect(table.count == Self.states.count * Self.events.count, "stale rows in the table")
    }

    /// Properties over every pair, whatever the table says.
    @Test func invariantsHoldForEveryPair() {
        for (stateName, state) in Self.states {
            for (eventName, event) in Self.events {
                for (hook, consumers) in [(true, true), (false, false), (true, false), (false, true)] {
                    let fleet = Self.fleet(eventName)
                    let result = Self.apply(event, state, hook: hook, consumers: consumers, fleet: fleet)
                    let key = "\(stateName) + \(eventName)"
                    // A refresh is only sent with its intent in the very state committed before it.
                    if result.actions.contains(.sendRefresh) {
                        #expect(result.state.intent == .refresh && result.state.intentStartedAt == Self.t0, "\(key)")
                    }
                    // Every failure leaves a backoff in the future; nothing ever retries at once.
                    if result.state.consecutiveFailures > state.consecutiveFailures {
                        #expect((result.state.nextAttempt ?? .distantPast) > Self.t0, "\(key)")
                    }
                    // Versions never go back, and a new secret is always the next version.
                    #expect(result.state.version >= state.version, "\(key)")
                    for case .adoptSecret(let version, _) in result.actions {
                        #expect(version == state.version + 1, "\(key)")
                    }
                    // A decision on a read is never a second refresh, except the forbidden fallback.
                    if case .secretRead = event { #expect(!result.actions.contains(.sendRefresh), "\(key)") }
                    // Without a hook configured no hook is ever owed or run.
                    if !hook {
                        #expect(!result.actions.contains { if case .runHook = $0 { true } else { false } }, "\(key)")
                    }
                    // Without consumers none is ever told; with them, every new version is.
                    let notifies = result.actions.contains { if case .notifyConsumers = $0 { true } else { false } }
                    if !consumers { #expect(!notifies, "\(key)") }
                    if consumers, result.state.version > state.version { #expect(notifies, "\(key)") }
                    // A new version is either owed to the fleet (announced by an action) or needs
                    // no notice (recorded as announced), never both; without a fleet, never owed.
                    let announces = result.actions.contains { if case .announce = $0 { true } else { false } }
                    if result.state.version > state.version {
                        #expect(announces != (result.state.announcedVersion == result.state.version), "\(key)")
                        if fleet == .none { #expect(!announces, "\(key)") }
                    } else {
                        #expect(!announces, "\(key)")
                    }
                    // A notice never covers a version the outputs do not hold.
                    #expect(result.state.announcedVersion <= max(result.state.version, state.announcedVersion), "\(key)")
                    // A consumer notification never rotates, nor writes anything.
                    if case .consumersNotified = event {
                        #expect(result.actions.allSatisfy { if case .report = $0 { true } else { false } }, "\(key)")
                        #expect(result.state.version == state.version && result.state.intent == state.intent, "\(key)")
                    }
                }
            }
        }
    }

    static func loadTable() throws -> [String: String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("AppTransitionsTable.txt")
        var table: [String: String] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where !line.hasPrefix("#") {
            guard let arrow = line.range(of: " -> ") else { continue }
            table[String(line[..<arrow.lowerBound])] = String(line[arrow.upperBound...])
        }
        return table
    }
}
