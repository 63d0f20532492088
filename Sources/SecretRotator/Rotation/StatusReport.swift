#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon is doing, for `status`, sd_notify STATUS= and logs. Built from state and
/// config only; errors in it are GenAuthError/OutputError descriptions, which hold no secrets.
public struct StatusReport: Sendable, Encodable {
    public struct App: Sendable, Encodable {
        public let id: String
        public let name: String
        public let action: String
        public let version: Int
        /// When the secret on disk was obtained (rotated, or found changed upstream): its age.
        public let secretObtainedAt: Date?
        /// When GenAuth last confirmed it (fetch, verification or reconcile read).
        public let lastChecked: Date?
        /// The last output repair, with its causes (`missing`, `content`, `mode`, ...).
        public let lastRepair: AppState.Repair?
        public let nextDue: Date?
        public let consecutiveFailures: Int
        public let lastError: String?
        /// A new secret received but not yet on every output (finished at the next step).
        public let pendingVersion: Int?
        /// The version whose on_rotate hook is still owed, if any.
        public let hookOwedVersion: Int?
        /// An interrupted call the next step reconciles: "refresh" or "fetch".
        public let unfinishedCall: String?
        /// When that call was started.
        public let unfinishedSince: Date?
        /// Records that could not be read (only `status` reports these; the daemon repairs them).
        public let problems: [String]
        /// Whether a secret is held for the app (in the state database), whatever its version.
        public let hasSecret: Bool
        /// When the app's scheduled rotation (or, for `follow`, its poll) falls due, however
        /// late: what "overdue" is measured from. Nil before the first secret.
        public let scheduledDue: Date?
        /// Each consumer unit as last seen (`consumers` in the config order; a unit never told
        /// yet has state "pending").
        public let consumers: [Consumer]
        /// Consumer units not settled on `version`, since when (the secret's write): what
        /// `AppHealth` reports once `consumerGrace` has passed.
        public let consumersBehind: [Behind]
        /// `consumer_grace` in seconds (JSON has no duration type).
        public let consumerGraceSeconds: Double
        public var consumerGrace: Duration { .milliseconds(Int64((consumerGraceSeconds * 1000).rounded())) }
        /// The app's rotation window in canonical form (`RotationWindow.description`), nil
        /// without one (or for a `follow` app, whose polls never wait).
        public let window: String?
        /// The window's next opening (or the one open now), nil without a window.
        public let nextWindowOpening: Date?
        /// When that opening closes.
        public let nextWindowClosing: Date?
        /// The scheduled rotation is due by its interval but waits for the window to open
        /// (`RotationPlanner.isHeldByWindow`).
        public let waitingForWindow: Bool
        /// The monitoring verdict (`AppHealth`); set by `StatusReport.read`, empty otherwise.
        public internal(set) var health = AppHealth(findings: [])

        /// - Parameters:
        ///   - now: the clock the next window opening is found from; nil leaves it out.
        ///   - waitingForWindow: `RotationPlanner.isHeldByWindow` for the app as scheduled.
        init(
            app: AppConfig, state: AppState, pendingVersion: Int?, nextDue: Date?, hasSecret: Bool, problems: [String] = [],
            scheduleAs effective: AppConfig? = nil, now: Date? = nil, waitingForWindow: Bool = false
        ) {
            id = app.id
            name = app.name
            action = app.action.rawValue
            version = state.version
            secretObtainedAt = state.secretObtainedAt
            lastChecked = state.lastChecked
            lastRepair = state.lastRepair
            self.nextDue = nextDue
            consecutiveFailures = state.consecutiveFailures
            lastError = state.lastError
            self.pendingVersion = pendingVersion
            hookOwedVersion = state.hookOwed(hasHook: app.onRotate != nil)
            unfinishedCall = state.intent?.rawValue
            unfinishedSince = state.intent == nil ? nil : state.intentStartedAt
            self.hasSecret = hasSecret
            // The window-aware date: an app waiting for its window is not overdue before it opens.
            scheduledDue = state.version > 0 ? RotationPlanner.scheduledDate(app: effective ?? app, state: state) : nil
            self.problems = problems
            consumers = app.consumers.map { unit in
                let record = state.consumers.first { $0.unit == unit }
                return Consumer(
                    unit: unit, state: record.map { $0.version < state.version ? "pending" : $0.state.rawValue } ?? "pending",
                    version: record?.version, lastNotified: record?.lastNotified, lastConfirmed: record?.lastConfirmed,
                    detail: record?.detail)
            }
            consumersBehind = state.version == 0 ? [] : app.consumers.compactMap { unit in
                let record = state.consumers.first { $0.unit == unit }
                if let record, record.isSettled(at: state.version) { return nil }
                // Settled for the app as a whole (a version before consumers were recorded).
                if record == nil && state.consumersDoneVersion >= state.version { return nil }
                // Behind since the secret it lacks was written, or since the first failure of a
                // streak: a consumer failing at every rotation is late however often it rotates.
                let written = state.secretObtainedAt ?? .distantPast
                return Behind(unit: unit, since: min(record?.failingSince ?? written, written), detail: record?.detail)
            }
            consumerGraceSeconds = RotationPlanner.seconds(app.consumerGrace)
            let window = app.action == .rotate ? app.window : nil
            self.window = window?.description
            let opening = now.flatMap { now in window?.nextOpening(atOrAfter: now) }
            nextWindowOpening = opening?.start
            nextWindowClosing = opening?.end
            self.waitingForWindow = waitingForWindow
        }

        /// One consumer unit in `status`.
        public struct Consumer: Sendable, Encodable, Equatable {
            public let unit: String
            /// "confirmed", "signalled", "not running", "failed", or "pending" (not yet told of
            /// the current version).
            public let state: String
            public let version: Int?
            public let lastNotified: Date?
            public let lastConfirmed: Date?
            public let detail: String?
        }

        public struct Behind: Sendable, Encodable, Equatable {
            public let unit: String
            public let since: Date
            public let detail: String?
        }

        public var needsAttention: Bool { consecutiveFailures > 0 || !problems.isEmpty || health.verdict != .ok }
    }

    public let apps: [App]
    /// Problems of the state directory itself (full, read-only): the daemon cannot record
    /// anything there, so every app's next step fails until it is fixed.
    public var stateDirectoryProblems: [String] = []
    /// The fleet as the daemon last saw it (`cluster.json`); nil without `[cluster]` or before
    /// the daemon first wrote it.
    public var cluster: ClusterStatus?

    public var failing: [App] { apps.filter { $0.consecutiveFailures > 0 } }

    /// Whether `status` should exit non-zero: an app failing, an unreadable record, or a state
    /// directory that cannot take a write.
    public var needsAttention: Bool { apps.contains(where: \.needsAttention) || !stateDirectoryProblems.isEmpty }

    /// The worst verdict over every app and the state directory: `status`'s exit status. A
    /// state directory that is full or read-only counts as failing (every next step fails
    /// until it is fixed); an unreadable database has already marked every app unknown.
    public var verdict: AppHealth.Verdict {
        let worst = apps.map(\.health.verdict).max() ?? .ok
        return stateDirectoryProblems.isEmpty ? worst : max(worst, .failing)
    }

    /// One line for systemd's STATUS=: "3 apps · 0 failing · next: billing in 6d 3h".
    public func summary(now: Date) -> String {
        var parts = ["\(apps.count) app\(apps.count == 1 ? "" : "s")", "\(failing.count) failing"]
        if let worst = failing.first {
            parts.append("\(worst.name): \(worst.lastError ?? "failing")")
        }
        if let next = apps.compactMap({ app in app.nextDue.map { (app.name, $0) } }).min(by: { $0.1 < $1.1 }) {
            parts.append("next: \(next.0) \(Self.due(next.1, now: now))")
        }
        return parts.joined(separator: " · ")
    }

    /// The report for `secret-rotator status`: from the config and the state directory alone,
    /// without the daemon and without changing anything on disk. Operator requests not yet
    /// taken up by the daemon are not shown.
    ///
    /// - Parameters:
    ///   - grace: how long past its due time a step may still be pending before the app counts
    ///     as overdue; nil for `AppHealth.defaultGrace` of each app's interval.
    ///   - outputWriter: the daemon's account, against which outputs without an explicit
    ///     owner or group are judged; nil skips the outputs' check altogether.
    public static func read(
        config: RotatorConfig, stateDirectory: StateDirectory, now: Date, grace: Duration? = nil,
        outputWriter: WriterIdentity? = nil, checkOutputs: Bool = false
    ) -> StatusReport {
        let policy = EnginePolicy(config: config)
        let inspected = stateDirectory.inspect(appIDs: config.apps.map(\.id))
        let writer = OutputWriter()
        let cluster = config.cluster == nil ? nil : ClusterStatus.read(stateDirectory: stateDirectory.path)
        let capacity = stateDirectory.capacityProblems()
        var report = StatusReport(
            apps: config.apps.map { app in
                let effective = scheduledApp(app, config: config, cluster: cluster)
                var found = inspected.apps[app.id] ?? StateDirectory.Inspection()
                if !inspected.problems.isEmpty {
                    // Not "version 0, never, ok": the records could not be read at all.
                    found.problems.append("state unknown: the state database could not be read")
                }
                let state = found.state ?? AppState(appID: app.id)
                let facts = RotationPlanner.Facts(heldVersion: found.secretVersion)
                let step = RotationPlanner.nextStep(app: effective, state: state, facts: facts, policy: policy, now: now)
                let pending = found.secretVersion.flatMap { $0 > state.version ? $0 : nil }
                var entry = App(
                    app: app, state: state, pendingVersion: pending, nextDue: step.due(now: now),
                    hasSecret: found.secret != nil, problems: found.problems, scheduleAs: effective, now: now,
                    waitingForWindow: RotationPlanner.isHeldByWindow(app: effective, state: state, now: now))
                var outputFindings: [AppHealth.Finding] = []
                if checkOutputs, let secret = found.secret {
                    // The record, not the output, is behind when the state directory cannot take
                    // a write, or when a refresh recorded as in flight left no newer held secret:
                    // the daemon writes GenAuth's answer to the outputs even when it cannot save
                    // it, and a crash before that save leaves the outputs untouched.
                    let recordBehind = !capacity.isEmpty || (state.intent == .refresh && pending == nil)
                    outputFindings = Self.inspectOutputs(
                        app, secret: secret, writer: writer, as: outputWriter, recordMayBeBehind: recordBehind)
                }
                entry.health = AppHealth.judge(
                    entry, outputFindings: outputFindings, now: now,
                    grace: grace ?? AppHealth.defaultGrace(interval: app.interval), cluster: cluster)
                return entry
            })
        report.cluster = cluster
        report.stateDirectoryProblems = inspected.problems + capacity
        return report
    }

    /// The app as this host schedules it: a fleet's candidate that does not lead follows
    /// (Architecture, Fleet), so its schedule is a poll's.
    ///
    /// - Parameter cluster: the daemon's last `cluster.json`; nil when unread or absent.
    public static func scheduledApp(_ app: AppConfig, config: RotatorConfig, cluster: ClusterStatus?) -> AppConfig {
        var effective = app
        if config.cluster != nil, app.action == .rotate, cluster?.role != .leader { effective.action = .follow }
        return effective
    }

    /// Each output against the held secret, as the daemon's level-triggered check compares
    /// them; read only. A held secret newer than the app's record (not yet on every output)
    /// makes the old outputs differ: that is reported, since a reader sees the old secret.
    /// `recordMayBeBehind`: the saved record may be older than what the daemon wrote (see
    /// `AppHealth.Finding.recordNotSaved`), so other content is reported as that.
    public static func inspectOutputs(
        _ app: AppConfig, secret: CurrentSecret, writer: OutputWriter = OutputWriter(), as identity: WriterIdentity? = nil,
        recordMayBeBehind: Bool = false
    ) -> [AppHealth.Finding] {
        let document = SecretDocument(
            secret: secret.secretValue, appId: app.id, appName: app.name, version: secret.version, rotatedAt: secret.obtainedAt)
        var findings: [AppHealth.Finding] = []
        for output in app.outputs {
            switch RotationEngine.spec(output) {
            case .failure(let error):
                findings.append(.outputBad(path: output.path, drift: error.description))
            case .success(let spec):
                switch writer.inspect(document, at: spec, writer: identity) {
                case nil: break
                case .unreadable(let errno)?:
                    findings.append(.outputUnchecked(path: output.path, reason: "\(errno)"))
                case .content? where recordMayBeBehind:
                    findings.append(.recordNotSaved(path: output.path))
                case let drift?:
                    findings.append(.outputBad(path: output.path, drift: drift.description))
                }
            }
        }
        return findings
    }

    /// A table with one row per app, then a line for everything that needs a look.
    public func render(now: Date) -> String {
        let rows = apps.map { app in
            [
                app.name, app.id, app.action, String(app.version),
                app.secretObtainedAt.map { "\(Self.age($0, now: now)) (\(Self.timestamp($0)))" } ?? "never",
                app.nextDue.map { Self.due($0, now: now) } ?? "-",
                Self.stateWord(app),
            ]
        }
        var lines = TextTable(header: ["APP", "ID", "ACTION", "VERSION", "SECRET AGE", "NEXT STEP", "STATE"], rows: rows)
            .renderLines()
        if let cluster {
            lines.insert(contentsOf: Self.clusterLines(cluster, apps: apps, now: now) + [""], at: 0)
        }
        for app in apps {
            for finding in app.health.findings {
                switch finding {
                case .outputBad, .outputUnchecked, .neverObtained, .overdue, .unresolvedRefresh(_, true), .recordNotSaved:
                    lines.append("\(app.name): \(finding)")
                case .cluster, .consumerBehind:
                    lines.append("\(app.name): \(finding)")
                case .stateUnreadable, .failing, .unresolvedRefresh(_, false):
                    break  // told below, with what the daemon does about it
                }
            }
            if app.consecutiveFailures > 0 {
                lines.append(
                    "\(app.name): \(app.consecutiveFailures) failed attempt\(app.consecutiveFailures == 1 ? "" : "s"); last error: \(app.lastError ?? "unknown")")
            }
            if let pending = app.pendingVersion {
                lines.append("\(app.name): version \(pending) was received but is not yet on every output; the daemon will write it at its next step")
            }
            let unsaved = app.health.findings.contains { if case .recordNotSaved = $0 { true } else { false } }
            if let call = app.unfinishedCall, !unsaved {
                lines.append("\(app.name): a \(call) call is not settled (under way, or interrupted); the daemon reconciles it with GenAuth")
            }
            let late = Set(app.health.findings.compactMap { finding -> String? in
                if case .consumerBehind(let unit, _, _, _) = finding { return unit }
                return nil
            })
            for consumer in app.consumers where consumer.state != "confirmed" && consumer.state != "signalled" {
                // "not running" is not a failure: nothing holds the old secret. A late one was
                // told above, with its finding.
                if late.contains(consumer.unit) { continue }
                if consumer.state == "pending" && app.consumersBehind.isEmpty { continue }
                lines.append(
                    "\(app.name): consumer \(consumer.unit) \(consumer.state)\(consumer.detail.map { " (\($0))" } ?? "")")
            }
            if let window = app.window, let opening = app.nextWindowOpening {
                let when = opening <= now ? "open now, until \(Self.timestamp(app.nextWindowClosing ?? opening))" : "next opens \(Self.relative(opening, now: now)) (\(Self.timestamp(opening)))"
                let waiting = app.waitingForWindow ? "; the due rotation waits for it" : ""
                lines.append("\(app.name): window \(window), \(when)\(waiting)")
            }
            if let owed = app.hookOwedVersion {
                lines.append("\(app.name): on_rotate hook for version \(owed) has not completed yet")
            }
            for problem in app.problems {
                lines.append("\(app.name): \(problem); the daemon will move it aside at its next start")
            }
            if let repair = app.lastRepair {
                // What the daemon did, and when: `status` itself never changes anything.
                let when = Self.relative(repair.at, now: now)
                lines.append(
                    "\(app.name): the daemon last repaired its outputs \(when == "now" ? "just now" : when) (\(repair.causes.joined(separator: ", ")))")
            }
        }
        lines.append(contentsOf: stateDirectoryProblems)
        return lines.joined(separator: "\n")
    }

    /// "cluster: host web-2 · role candidate · leader web-1 · lease held · watching etcd", then
    /// the last notice per app.
    static func clusterLines(_ cluster: ClusterStatus, apps: [App], now: Date) -> [String] {
        var head = [
            "cluster: host \(cluster.host)", "role \(cluster.role.rawValue)", "leader \(cluster.leader ?? "none known")",
            "lease \(cluster.leaseHeld ? "held" : "none")",
            cluster.watch == .watching ? "watching etcd" : "not watching etcd (polling)",
            "as of \(relative(cluster.updatedAt, now: now))",
        ].joined(separator: " · ")
        if let problem = cluster.problem { head += "\n  etcd: \(problem)" }
        var lines = [head]
        for app in apps {
            guard let notice = cluster.lastNotices[app.id] else { continue }
            lines.append(
                "  \(app.name): last notice version \(notice.version) from \(notice.host), rotated \(relative(notice.rotatedAt, now: now)), received \(relative(notice.receivedAt, now: now))")
        }
        return lines
    }

    /// The STATE column: the monitoring verdict; CHECK for an unreadable record.
    static func stateWord(_ app: App) -> String {
        switch app.health.verdict {
        case .ok: app.needsAttention ? (app.consecutiveFailures > 0 ? "FAILING" : "CHECK") : "ok"
        case .unknown: "CHECK"
        default: app.health.verdict.word.uppercased()
        }
    }

    /// "in 6d 3h", "2h ago", "now".
    static func relative(_ date: Date, now: Date) -> String {
        let seconds = date.timeIntervalSince(now)
        if abs(seconds) < 1 { return "now" }
        let text = DurationSyntax.format(.seconds(Int64(abs(seconds).rounded())))
        return seconds > 0 ? "in \(text)" : "\(text) ago"
    }

    /// "3d 4h", "now": how old a secret is.
    static func age(_ date: Date, now: Date) -> String {
        let seconds = now.timeIntervalSince(date)
        if seconds < 1 { return "now" }
        return DurationSyntax.format(.seconds(Int64(seconds.rounded())))
    }

    /// A due time: "now" once it has passed (it runs at the daemon's next step).
    public static func due(_ date: Date, now: Date) -> String {
        date <= now ? "now" : relative(date, now: now)
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
