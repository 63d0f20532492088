/// What an app's records say about an operator's request (`rotate` or `fetch`): the one rule
/// for "the request was answered", used by the engine (a request that failed before it was
/// answered stays asked for) and by the CLI that waits for the daemon's answer (pure; table
/// test in `RequestOutcomeTests`).
public enum RequestOutcome: Sendable, Equatable {
    /// Nothing answers yet: keep waiting.
    case pending
    /// A new version reached every output.
    case written(version: Int)
    /// GenAuth answered a new secret (`version`, held durably or in memory), but a later step
    /// (an output, the state directory) fails: answered, and the daemon keeps retrying that step.
    case obtainedButFailing(version: Int)
    /// A fetch read GenAuth: every output checked (`failing` false) or a later step still
    /// fails (`failing` true).
    case checked(version: Int, failing: Bool)
    /// The attempt failed before anything answered; the daemon retries it after its backoff.
    case failed

    public enum Kind: String, Sendable, Equatable {
        case rotate, fetch
    }

    /// Whether the request is answered (anything but `pending` and `failed`).
    public var answered: Bool {
        switch self {
        case .pending, .failed: false
        case .written, .obtainedButFailing, .checked: true
        }
    }

    /// - Parameters:
    ///   - before: the app's state when the request was made (or its step started).
    ///   - after: its state now.
    ///   - heldVersion: the version of the held secret now (the record, or one kept only in
    ///     memory), nil when unknown.
    ///   - onlyItsStep: `before` and `after` bracket exactly the request's own step (the engine),
    ///     so a failure counted between them is that step's. Without it (the CLI, which sees
    ///     every step the daemon runs), a failure while the refresh is in flight or of a hook
    ///     retried before it is not taken for the request's.
    public static func judge(
        _ kind: Kind, before: AppState, after: AppState, heldVersion: Int?, onlyItsStep: Bool = false
    ) -> RequestOutcome {
        if after.version > before.version && after.intent == nil {
            return .written(version: after.version)
        }
        if kind == .fetch, after.lastChecked != before.lastChecked {
            return .checked(version: after.version, failing: after.consecutiveFailures > 0)
        }
        if kind == .rotate, let held = heldVersion, held > before.version, held > after.version {
            return after.consecutiveFailures > before.consecutiveFailures ? .obtainedButFailing(version: held) : .pending
        }
        // A retry of the hook (or of consumer notifications) of the version already written is
        // not the rotation asked for (the request is kept until its refresh runs). A refresh
        // that started marks the rotation owed until it is done, so its failure still answers.
        let followUpRetry = after.version == before.version && after.intent == nil && !after.rotationOwed
            && (after.hookOwed(hasHook: true) != nil || after.consumersDoneVersion < after.version)
        // While a refresh is in flight (its intent recorded) nothing answers yet: a failure
        // counted then is an earlier step's, and the refresh's own failure clears the intent.
        let refreshInFlight = kind == .rotate && after.intent == .refresh
        let anotherStep = refreshInFlight || (kind == .rotate && followUpRetry)
        if after.consecutiveFailures > before.consecutiveFailures, onlyItsStep || !anotherStep {
            return .failed
        }
        return .pending
    }
}
