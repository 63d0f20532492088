/// Reads `[defaults]`: the values every app inherits unless it sets its own.
struct DefaultsSection {
    let minimumInterval: Duration
    let host: ConfigHost
    static let builtIn = DefaultSettings(
        interval: .seconds(30 * 86_400), jitter: .zero, maxConcurrent: 4,
        retry: RetryPolicy(initial: .seconds(2), max: .seconds(900), multiplier: 2),
        directory: "/var/lib/secret-rotator/secrets", mode: FileMode(rawValue: 0o640), owner: nil, group: nil,
        stateDirectory: "/var/lib/secret-rotator", hookTimeout: .seconds(60), firstStart: .fetch)

    func read(_ reader: TableReader?, sink: DiagnosticCollector) -> DefaultSettings {
        var settings = Self.builtIn
        guard let reader else { return settings }
        defer { reader.reportUnknownKeys(known: ConfigSchema.defaults) }

        if let interval = reader.duration("interval") {
            if let problem = IntervalRules.intervalProblem(interval, minimum: minimumInterval) {
                sink.error(reader.keyPath("interval"), problem)
            } else {
                settings.interval = interval
            }
        }
        if let jitter = reader.duration("jitter") {
            if let problem = IntervalRules.jitterProblem(jitter, interval: settings.interval, inherited: false) {
                sink.error(reader.keyPath("jitter"), problem)
            } else {
                settings.jitter = jitter
            }
        }
        if let maxConcurrent = reader.int("max_concurrent") {
            if maxConcurrent < 1 || maxConcurrent > 64 {
                sink.error(reader.keyPath("max_concurrent"), "\(maxConcurrent) is out of range; use 1 to 64 rotations at once")
            } else {
                settings.maxConcurrent = maxConcurrent
            }
        }
        if let retry = reader.subtable("retry") {
            settings.retry = readRetry(retry, sink: sink)
        }
        if let directory = reader.string("directory", example: "\"/var/lib/secret-rotator/secrets\"") {
            if let problem = ValueRules.absolutePathProblem(directory) {
                sink.error(reader.keyPath("directory"), problem)
            } else {
                settings.directory = directory
            }
        }
        if let stateDirectory = reader.string("state_directory", example: "\"/var/lib/secret-rotator\"") {
            if let problem = ValueRules.absolutePathProblem(stateDirectory) {
                sink.error(reader.keyPath("state_directory"), problem)
            } else {
                settings.stateDirectory = stateDirectory
            }
        }
        if let mode = reader.mode("mode") {
            if mode.hasWorldBits {
                sink.error(
                    reader.keyPath("mode"),
                    "\(mode) lets every user on the host access the secret; the default mode may not have world bits (allow them per output with allow_world_readable = true)"
                )
            } else {
                settings.mode = mode
            }
        }
        settings.owner = reader.account("owner", kind: .user, host: host)
        settings.group = reader.account("group", kind: .group, host: host)
        if let hookTimeout = reader.duration("hook_timeout") {
            if let problem = IntervalRules.hookTimeoutProblem(hookTimeout) {
                sink.error(reader.keyPath("hook_timeout"), problem)
            } else {
                settings.hookTimeout = hookTimeout
            }
        }
        if let firstStart = reader.choice("first_start", as: FirstStart.self) {
            settings.firstStart = firstStart
        }
        if let verifyInterval = reader.duration("verify_interval") {
            if let problem = IntervalRules.verifyIntervalProblem(verifyInterval, minimum: minimumInterval) {
                sink.error(reader.keyPath("verify_interval"), problem)
            } else {
                settings.verifyInterval = verifyInterval
            }
        }
        if let action = ConsumerSettings.action(reader, sink: sink) { settings.consumerAction = action }
        if let grace = ConsumerSettings.grace(reader, sink: sink) { settings.consumerGrace = grace }
        if let window = reader.window("window") {
            settings.window = window
        }
        return settings
    }

    private func readRetry(_ reader: TableReader, sink: DiagnosticCollector) -> RetryPolicy {
        defer { reader.reportUnknownKeys(known: ConfigSchema.retry) }
        var policy = Self.builtIn.retry
        if let initial = reader.duration("initial") {
            if initial < .milliseconds(100) {
                sink.error(reader.keyPath("initial"), "\(DurationSyntax.format(initial)) is too short; the first retry waits at least 100ms")
            } else {
                policy.initial = initial
            }
        }
        if let max = reader.duration("max") {
            policy.max = max
            if max < policy.initial {
                sink.error(
                    reader.keyPath("max"),
                    "\(DurationSyntax.format(max)) is smaller than retry.initial (\(DurationSyntax.format(policy.initial))); max must be at least initial"
                )
            } else if max > .seconds(7 * 86_400) {
                sink.error(reader.keyPath("max"), "\(DurationSyntax.format(max)) is longer than 7d; a failing app must be retried at least weekly")
            }
        }
        if let multiplier = reader.double("multiplier") {
            if !(multiplier >= 1 && multiplier <= 10) {
                sink.error(reader.keyPath("multiplier"), "\(multiplier) is out of range; use 1.0 (constant) to 10.0")
            } else {
                policy.multiplier = multiplier
            }
        }
        return policy
    }
}

/// Limits on schedule durations, shared by `[defaults]` and each `[[app]]`.
enum IntervalRules {
    static func intervalProblem(_ interval: Duration, minimum: Duration) -> String? {
        if interval < minimum {
            return "\(DurationSyntax.format(interval)) is shorter than the minimum interval of \(DurationSyntax.format(minimum)); GenAuth invalidates the old secret at every rotation, so consumers need time to pick up each one"
        }
        if interval > .seconds(3650 * 86_400) {
            return "\(DurationSyntax.format(interval)) is longer than 3650d"
        }
        return nil
    }

    static func jitterProblem(_ jitter: Duration, interval: Duration, inherited: Bool) -> String? {
        guard jitter >= interval else { return nil }
        let origin = inherited ? " (inherited from [defaults])" : ""
        return "jitter \(DurationSyntax.format(jitter))\(origin) is not smaller than the interval \(DurationSyntax.format(interval)); use a jitter below the interval, e.g. a tenth of it"
    }

    /// "0s" turns verification off; otherwise it reads GenAuth once per app per period, so it
    /// obeys the same floor as a rotation interval.
    static func verifyIntervalProblem(_ interval: Duration, minimum: Duration) -> String? {
        guard interval != .zero else { return nil }
        if interval < minimum {
            return "\(DurationSyntax.format(interval)) is shorter than the minimum of \(DurationSyntax.format(minimum)); use \"0s\" to turn verification off"
        }
        if interval > .seconds(365 * 86_400) {
            return "\(DurationSyntax.format(interval)) is longer than 365d; use \"0s\" to turn verification off"
        }
        return nil
    }

    static func hookTimeoutProblem(_ timeout: Duration) -> String? {
        if timeout < .seconds(1) || timeout > .seconds(3600) {
            return "\(DurationSyntax.format(timeout)) is out of range; use 1s to 1h"
        }
        return nil
    }
}
