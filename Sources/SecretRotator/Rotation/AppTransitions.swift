#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Per-app state transitions, pure: `(state, event, context) -> (state, [action])`, in the style
/// of async-http-client's `HTTP1ConnectionStateMachine`. The engine performs the actions (API
/// calls, writes, hooks, logs) and feeds what happened back in as events. Nothing here does
/// I/O, reads a clock or draws a random number, so every pair is checked by a table test.
///
/// The engine commits a transition's state to disk before it adopts it or performs any of its
/// actions ("durable first"): a refresh is sent only once its intent is durable.
public enum AppTransitions {
    public static func apply(_ event: Event, to state: AppState, context: Context) -> Transition {
        var next = state
        let now = context.now
        switch event {
        case .refreshStarting:
            next.rotationOwed = true
            next.intent = .refresh
            next.intentStartedAt = now
            next.unchangedReads = 0
            return Transition(state: next, actions: [.sendRefresh])

        case .refreshAnswered:
            // The intent stays until every output holds the new secret: a crash before then
            // resumes from the held record, or (if even that was lost) reconciles.
            return Transition(state: next, actions: [.adoptSecret(version: state.version + 1, origin: .rotated)])

        case .refreshFailed(let failure):
            if failure.kind == .outcomeUnknown {
                next.lastError = failure.message
                let at = RotationPlanner.reconcileNotBefore(state: next, policy: context.policy)
                return Transition(state: next, actions: [.report(.refreshOutcomeUnknown(failure, reconcileAt: at))])
            }
            next.intent = nil
            next.intentStartedAt = nil
            if failure.kind == .notLeader {
                // The leader rotates now; an owed rotation here would only kill its secret if
                // this host led again before following it.
                next.rotationOwed = false
                return Transition(state: next, actions: [.report(.refreshNotSent(failure))])
            }
            return fail(next, failure, context)

        case .secretRead(let fingerprint, let purpose):
            let same = state.version > 0 && fingerprint == state.secretFingerprint
            switch purpose {
            case .reconcile:
                if state.secretFingerprint == nil {
                    // Nothing to compare with (a first-start rotation cut off before its answer,
                    // or a record that never kept a fingerprint): whether the refresh happened
                    // cannot be told. The outputs get what GenAuth holds now, and the rotation
                    // stays owed (`fetched` keeps `rotationOwed`): at worst one extra rotation,
                    // never one logged as done that GenAuth never made.
                    next.unchangedReads = 0
                    return Transition(state: next, actions: [.adoptSecret(version: state.version + 1, origin: .fetched)])
                }
                if !same {
                    next.unchangedReads = 0
                    return Transition(state: next, actions: [.adoptSecret(version: state.version + 1, origin: .reconciled)])
                }
                next.lastChecked = now
                next.unchangedReads = state.unchangedReads + 1
                if next.unchangedReads < 2 {
                    let at = RotationPlanner.reconcileNotBefore(state: next, policy: context.policy)
                    return Transition(state: next, actions: [.report(.oldSecretStillCurrent(confirmAt: at))])
                }
                // Two reads a settle period apart: the refresh did not happen. Retry it later
                // (also for an intent recorded by a version that did not keep `rotationOwed`).
                next.rotationOwed = true
                next.intent = nil
                next.intentStartedAt = nil
                next.unchangedReads = 0
                var failed = fail(next, Failure(.transient, "refresh did not take effect"), context)
                failed.actions.insert(.report(.refreshNotApplied), at: 0)
                return failed
            case .verify, .fetch:
                if state.version == 0 {
                    return Transition(state: next, actions: [.adoptSecret(version: 1, origin: .fetched)])
                }
                if !same {
                    next.settleCheckDue = nil
                    return Transition(
                        state: next,
                        actions: [
                            .report(.changedUpstream(purpose: purpose)),
                            .adoptSecret(version: state.version + 1, origin: .changedUpstream),
                        ])
                }
                next.lastChecked = now
                if purpose == .verify {
                    next.lastVerified = now
                    next.settleCheckDue = nil
                }
                clearFailure(&next)
                return Transition(state: next, actions: [.keepConfirmedSecret, .report(.confirmed(purpose: purpose))])
            }

        case .readFailed(let failure, let purpose):
            if purpose == .reconcile && failure.kind == .forbidden {
                // Without read access the truth cannot be known; a fresh refresh at least ends
                // with a secret we hold. Only reached a settle period after the lost refresh.
                next.intent = .refresh
                next.intentStartedAt = now
                next.unchangedReads = 0
                return Transition(state: next, actions: [.report(.forbiddenRead(failure)), .sendRefresh])
            }
            return fail(next, failure, context)

        case .outputsWritten(let version, let obtainedAt, let fingerprint, let origin):
            let isNew = version > state.version
            next.version = max(version, state.version)
            next.secretFingerprint = fingerprint
            next.intent = nil
            next.intentStartedAt = nil
            next.unchangedReads = 0
            clearFailure(&next)
            var actions: [Action] = [.report(.secretWritten(version: version, origin: origin))]
            if isNew {
                next.secretObtainedAt = obtainedAt
                next.lastChecked = now
                switch origin {
                case .rotated, .reconciled:
                    next.rotationOwed = false
                    // GenAuth might still apply a lost earlier refresh: look again once that cannot be.
                    next.settleCheckDue = now.addingTimeInterval(RotationPlanner.seconds(context.policy.settlePeriod))
                    next.lastVerified = obtainedAt
                case .fetched:
                    next.lastVerified = now
                case .changedUpstream:
                    next.lastVerified = now
                    // GenAuth holds a secret newer than ours: a rotation happened (often our own
                    // whose answer was lost), so one still owed would only kill this fresh
                    // secret. A `fetch` after such a loss rotated a second time.
                    next.rotationOwed = false
                }
                // Consumers first: GenAuth has killed the secret they hold, and a unit told over
                // D-Bus is the shortest way back; a hook may be slow or fail on its own.
                if context.hasConsumers {
                    actions.append(.notifyConsumers(version: version))
                } else {
                    next.consumersDoneVersion = version
                }
                if context.hasHook {
                    actions.append(.runHook(version: version))
                } else {
                    next.hookDoneVersion = version
                }
                if announces(origin, context.fleet) {
                    actions.append(.announce(version: version))
                } else {
                    next.announcedVersion = max(state.announcedVersion, version)
                }
            }
            return Transition(state: next, actions: actions)

        case .outputsFailed(let failure), .journalFailed(let failure):
            return fail(next, failure, context)

        case .outputsDrifted(let contentChanged, let recordConfirmed):
            // Never write what GenAuth may no longer hold: a repair that replaces content
            // (a restored state directory, a record older than the outputs) waits for a read.
            // A mode, owner or group repair writes no secret, so it needs none.
            if contentChanged && !recordConfirmed && state.version > 0 {
                // While a refresh's outcome is unknown no read decides anything (invariant 10):
                // its reconcile reads GenAuth once that is safe, and the outputs wait for it.
                if state.intent == .refresh { return Transition(state: next, actions: [.report(.repairAwaitsConfirmation)]) }
                return Transition(state: next, actions: [.report(.repairAwaitsConfirmation), .confirmRecord])
            }
            return Transition(state: next, actions: [.repairOutputs])

        case .driftRepaired(let causes, let contentChanged):
            next.lastRepair = AppState.Repair(at: now, causes: causes)
            clearFailure(&next)
            var actions: [Action] = [.report(.repaired(causes: causes))]
            // A consumer may have read the wrong content (or none): reload it as after a rotation.
            // A mode, owner or group repair changes nothing a consumer has read.
            if contentChanged && context.hasConsumers && state.version > 0 {
                actions.append(.notifyConsumers(version: state.version))
            }
            if contentChanged && context.hasHook && state.version > 0 {
                actions.append(.runHook(version: state.version))
            }
            return Transition(state: next, actions: actions)

        case .heldSecretDue(let recordConfirmed, let obtainedAfterIntent):
            // Invariant 10 for recovery: a held secret replaces what the outputs hold only when
            // it is provably GenAuth's newest, i.e. GenAuth answered it in this process, or it is
            // the answer to the refresh this record says was in flight (a crash right after
            // the answer was kept). Anything else (a restored backup, a secret adopted before a
            // crash) may have been killed since: GenAuth is read first.
            if recordConfirmed || (state.intent == .refresh && obtainedAfterIntent) {
                return Transition(state: next, actions: [.writeHeldSecret])
            }
            return Transition(state: next, actions: [.report(.heldWriteAwaitsConfirmation), .confirmHeldSecret])

        case .heldSecretRead(let matchesHeld):
            if matchesHeld {
                return Transition(state: next, actions: [.writeHeldSecret])
            }
            // The held secret is dead: GenAuth's answer takes its place (the same next
            // version, as the dead one never reached an output); an app's first secret is a
            // fetch, as a first verify read's would be.
            next.settleCheckDue = nil
            return Transition(
                state: next,
                actions: [
                    .report(.heldSecretSuperseded),
                    .adoptSecret(version: state.version + 1, origin: state.version == 0 ? .fetched : .changedUpstream),
                ])

        case .apiRecovered(let retryAt):
            // Only a transient failure's backoff is cut short: the outage it waited out is over.
            // A permanent or forbidden failure will not heal because GenAuth answers others, a
            // Retry-After is the server's own time, a local failure is not GenAuth's. The failure
            // count stays, so a retry that fails again takes the next step of the one backoff.
            // A wait no longer than the backoff's first step (`retry.initial`) is already as
            // short as any retry gets: a single blip (one 503 while other calls succeed) keeps it.
            let firstStep = RotationPlanner.seconds(context.policy.retry.initial)
            guard state.consecutiveFailures > 0, state.lastFailureKind == .transient, let pending = state.nextAttempt,
                pending > retryAt, pending.timeIntervalSince(context.now) > firstStep
            else { return Transition(state: next, actions: []) }
            next.nextAttempt = retryAt
            return Transition(state: next, actions: [.report(.retryPulledForward(to: retryAt))])

        case .announced(let version):
            // Never past what the outputs hold: a notice cannot cover a version not yet written.
            next.announcedVersion = max(state.announcedVersion, min(version, state.version))
            return Transition(state: next, actions: [])

        case .hookFinished(let version, let succeeded, let detail):
            if succeeded {
                next.hookDoneVersion = max(state.hookDoneVersion, version)
                clearFailure(&next)
                return Transition(state: next, actions: [.report(.hookDone(version: version, detail: detail))])
            }
            // Its own event (and journal MESSAGE_ID): a consumer left on a dead secret is found
            // by "hook failed", not among the rotation failures.
            let failure = Failure(
                .local, "on_rotate hook failed (\(detail)); it will be retried without rotating again",
                fields: ["event": JournalEvent.hookFailed.rawValue, "version": "\(version)"])
            return fail(next, failure, context)

        case .consumersNotified(let version, let outcomes):
            for outcome in outcomes {
                let old = next.consumers.first { $0.unit == outcome.unit }
                let confirmed = outcome.state == .confirmed || outcome.state == .signalled
                let failing = outcome.state == .failed ? (old?.state == .failed ? old?.failingSince ?? now : now) : nil
                let record = ConsumerRecord(
                    unit: outcome.unit, version: version, state: outcome.state, lastNotified: now,
                    lastConfirmed: confirmed ? now : old?.lastConfirmed, detail: outcome.detail, failingSince: failing)
                if let index = next.consumers.firstIndex(where: { $0.unit == outcome.unit }) {
                    next.consumers[index] = record
                } else {
                    next.consumers.append(record)
                }
            }
            let settled = outcomes.filter { $0.state != .failed }
            var actions: [Action] = settled.isEmpty ? [] : [.report(.consumersSettled(version: version, outcomes: settled))]
            guard let failed = outcomes.first(where: { $0.state == .failed }) else {
                next.consumersDoneVersion = max(state.consumersDoneVersion, min(version, state.version))
                clearFailure(&next)
                return Transition(state: next, actions: actions)
            }
            // Its own event (and MESSAGE_ID): a consumer left on a dead secret. Retried with the
            // one backoff, never by rotating again (that would kill the secret it lacks).
            let count = outcomes.count - settled.count
            let failure = Failure(
                .local,
                "consumer \(failed.unit)\(count > 1 ? " and \(count - 1) more" : "") not on version \(version): \(failed.detail ?? "no reason given"); it will be told again without rotating",
                fields: ["event": JournalEvent.consumerFailed.rawValue, "version": "\(version)", "unit": failed.unit])
            let failing = fail(next, failure, context)
            actions += failing.actions
            return Transition(state: failing.state, actions: actions)
        }
    }

    /// Whether a new secret written here is announced to the fleet. Every refresh of ours is,
    /// also one that completes after this host lost the leadership (a pause between the
    /// fencing transaction and the request: the residual window), so the fleet fetches the
    /// secret that is now the only valid one. The leader also announces a change it found
    /// (a hand-over's read, another host's late refresh), so every follower fetches at once
    /// instead of at its next poll. Anything else is another host's to announce.
    static func announces(_ origin: SecretOrigin, _ fleet: FleetRole) -> Bool {
        switch (origin, fleet) {
        case (_, .none): false
        case (.rotated, _), (.reconciled, _): true
        case (.changedUpstream, .leader): true
        case (.changedUpstream, .notLeading), (.fetched, _): false
        }
    }

    /// A rotation notice is owed: a version on the outputs that the fleet was not told of yet.
    public static func announcementOwed(_ state: AppState) -> Bool {
        state.announcedVersion < state.version
    }

    private static func clearFailure(_ state: inout AppState) {
        state.consecutiveFailures = 0
        state.nextAttempt = nil
        state.lastError = nil
        state.lastFailureKind = nil
    }

    /// The durable kind of a failure's backoff (`AppState.FailureKind`). A lost answer of a
    /// read is transient (a read changes nothing); a refresh's lost answer never backs off.
    static func failureKind(_ failure: Failure) -> AppState.FailureKind {
        switch failure.kind {
        case .transient, .outcomeUnknown: failure.retryAfter == nil ? .transient : .throttled
        case .permanent: .permanent
        case .forbidden: .forbidden
        case .local, .notLeader: .local
        }
    }

    /// The one backoff (Architecture, invariant 11): every failing step of an app waits here.
    private static func fail(_ state: AppState, _ failure: Failure, _ context: Context) -> Transition {
        var next = state
        next.consecutiveFailures += 1
        let backoff = RetryBackoff(policy: context.policy.retry)
        let permanent = failure.kind == .permanent || failure.kind == .forbidden
        var random = SplitMix64(seed: context.draw)
        let delay =
            permanent
            ? max(backoff.permanentFailureDelay, min(failure.retryAfter ?? .zero, RetryBackoff.retryAfterLimit))
            : backoff.delay(afterFailures: next.consecutiveFailures, retryAfter: failure.retryAfter, using: &random)
        next.nextAttempt = context.now.addingTimeInterval(RotationPlanner.seconds(delay))
        next.lastError = failure.message
        next.lastFailureKind = failureKind(failure)
        return Transition(
            state: next,
            actions: [.report(.failed(failure, attempt: next.consecutiveFailures, retryIn: delay, permanent: permanent))])
    }
}

/// A tiny deterministic generator (SplitMix64, Steele et al. 2014) seeded from the context's
/// draw, so a transition's backoff jitter is a function of its inputs.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
