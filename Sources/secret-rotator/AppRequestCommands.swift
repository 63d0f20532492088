import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// `rotate` and `fetch`: safe whether or not the daemon runs. With a running daemon the
/// request goes to it (request file + SIGUSR1), so there is never a second writer and the
/// calling shell needs no access key secret (the daemon calls GenAuth); otherwise this
/// process takes the state-directory lock and does the work itself, with the key.
struct AppRequest {
    let options: DaemonOptions
    let names: [String]
    let all: Bool
    let kind: ControlRequests.Kind
    let timeout: Duration?

    func perform(confirm: () throws -> Void) async throws {
        // One line per app on stdout and stderr: to one pipe or file, a block-buffered stdout
        // was flushed mid-line between stderr's lines.
        StandardOutput.lineBuffered()
        // Without the key first: a request to the daemon must not need it.
        let config = try options.configOption.loadConfig(with: ConfigLoader.withoutAccessKeySecret(), printWarnings: false)
        let targets = try selectTargets(config)
        if targets.isEmpty {
            StandardError.write("secret-rotator: no app to \(kind.rawValue)")
            return
        }
        if all { try confirm() }
        let stateDirectory = options.stateDirectory(for: config)
        let daemon = StateDirectoryLock.holder(stateDirectory: stateDirectory)
        if config.cluster != nil, kind == .rotate {
            // Only the elected leader rotates (Architecture, Fleet): a rotation from any other host,
            // or from outside the daemon, would kill the secret the leader's fleet holds.
            let cluster = daemon == nil ? nil : ClusterStatus.read(stateDirectory: stateDirectory)
            if cluster?.role != .leader && cluster?.resuming != true {
                let leader = cluster?.leader.map { "; the leader is \($0), run it there" } ?? ""
                let why = daemon == nil ? "no daemon is running here, and only the daemon that leads the [cluster] election rotates" : "this host does not lead the [cluster] election\(leader)"
                StandardError.write("secret-rotator: not rotated: \(why) (`fetch` reads the current secret from any host)")
                throw ExitCode(69)
            }
        }
        if let daemon {
            try await viaDaemon(daemon, targets: targets, config: config, stateDirectory: stateDirectory)
        } else {
            // Standalone: this process calls GenAuth, so now the key must be readable.
            let keyed = try options.loadConfig()
            let lookup = AppLookup(keyed.apps)
            try await standalone(keyed, targets: targets.compactMap { lookup.app(named: $0.id) }, stateDirectory: stateDirectory)
        }
    }

    private func selectTargets(_ config: RotatorConfig) throws -> [AppConfig] {
        if all {
            guard kind == .rotate else { return config.apps }
            let followers = config.apps.filter { $0.action == .follow }
            if !followers.isEmpty {
                StandardError.write(
                    "secret-rotator: skipping \(Plural.count(followers.count, "app")) with action = \"follow\" (rotated on their rotating host): \(followers.prefix(5).map(\.name).joined(separator: ", "))\(followers.count > 5 ? ", ..." : "")")
            }
            return config.apps.filter { $0.action == .rotate }
        }
        switch AppSelection.resolve(names, in: config) {
        case .failure(let message):
            StandardError.write("secret-rotator: \(message.text)")
            throw ExitCode(64)
        case .success(let apps):
            for app in apps where kind == .rotate && app.action == .follow {
                // Exactly one host may rotate an app: a follower rotating would kill the secret
                // its rotating host and every other follower hold.
                StandardError.write(
                    "secret-rotator: \(app.name) has action = \"follow\": this host never rotates it; rotate it on its rotating host, or use `fetch`")
                throw ExitCode(64)
            }
            return apps
        }
    }

    /// How long to wait for the daemon: --timeout, else 60 s plus twice the time the request
    /// budget (`requests_per_second`) needs for the apps, so `rotate --all` is not cut short.
    private func waitLimit(_ config: RotatorConfig, apps: Int) -> Duration {
        if let timeout { return timeout }
        return .seconds(60) + .seconds(2 * Double(apps) / config.genauth.requestsPerSecond)
    }

    private func viaDaemon(_ pid: pid_t, targets: [AppConfig], config: RotatorConfig, stateDirectory: String) async throws {
        let store = StateDirectory(path: stateDirectory)
        let requests = ControlRequests(stateDirectory: store)
        let ids = targets.map(\.id)
        let initial = store.inspect(appIDs: ids).apps
        do {
            try requests.submit(appIDs: ids, kind: kind)
        } catch {
            StandardError.write("secret-rotator: cannot hand the request to the daemon: \(error)")
            throw ExitCode(73)
        }
        guard kill(pid, SIGUSR1) == 0 else {
            StandardError.write("secret-rotator: cannot signal the daemon (PID \(pid)): \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        print("asked the running daemon (PID \(pid)) to \(kind.rawValue) \(Self.list(targets))")
        // The daemon journals every step; wait until each app's record changes in a way that
        // answers the request: a new version, a fresh "unchanged" check, or a new failure.
        let progress = Progress(total: targets.count, verb: kind == .rotate ? "rotated" : "fetched")
        let deadline = ContinuousClock.now.advanced(by: waitLimit(config, apps: targets.count))
        var remaining = targets
        var failed: [String] = []
        var daemonGone = false
        // Each look reads every remaining app's record: over thousands of apps the pause grows
        // with what the last look cost, so waiting takes at most a fifth of a core from the daemon.
        var lookCost = Duration.zero
        while !remaining.isEmpty && ContinuousClock.now < deadline {
            try await QuietSleep.sleep(for: max(.milliseconds(200), lookCost * 4))
            let lookStarted = ContinuousClock.now
            defer { lookCost = ContinuousClock.now - lookStarted }
            // A daemon that died (SIGKILL, OOM) answers nothing: do not wait out the timeout.
            // Checked before the records, so what it finished before dying still counts.
            daemonGone = ProcessLiveness.of(pid) == .gone
            let now = store.inspect(appIDs: remaining.map(\.id)).apps
            remaining = remaining.filter { app in
                guard let inspected = now[app.id], let state = inspected.state else { return true }
                let old = initial[app.id]?.state ?? AppState(appID: app.id)
                switch RequestOutcome.judge(kind == .rotate ? .rotate : .fetch, before: old, after: state, heldVersion: inspected.secretVersion) {
                case .pending:
                    return true
                case .written(let version):
                    progress.finished("\(app.name): version \(version) written")
                case .checked(let version, failing: false):
                    progress.finished("\(app.name): unchanged (version \(version)); every output checked")
                case .checked(let version, failing: true):
                    progress.failed(
                        "\(app.name): read from GenAuth (version \(version)), but a step still fails (the daemon keeps retrying): \(state.lastError ?? "unknown error")")
                    failed.append(app.name)
                case .obtainedButFailing(let version):
                    progress.failed(
                        "\(app.name): GenAuth answered version \(version), but a step still fails (the daemon keeps retrying): \(state.lastError ?? "unknown error")")
                    failed.append(app.name)
                case .failed:
                    progress.failed(
                        "\(app.name): attempt failed (the daemon keeps retrying with backoff): \(state.lastError ?? "unknown error")")
                    failed.append(app.name)
                }
                return false
            }
            if daemonGone { break }
        }
        progress.done(timedOut: remaining.map(\.name))
        if daemonGone && !remaining.isEmpty {
            StandardError.write(
                "secret-rotator: the daemon (PID \(pid)) exited before answering for \(Self.list(remaining)); the request stays in \(requests.directory) for its next start")
        } else if !remaining.isEmpty {
            StandardError.write(
                "secret-rotator: timed out waiting for \(Self.list(remaining)); the daemon still has the request (see `secret-rotator status`)")
        }
        if !failed.isEmpty || !remaining.isEmpty { throw ExitCode.failure }
    }

    private func standalone(_ config: RotatorConfig, targets: [AppConfig], stateDirectory: String) async throws {
        // Holding the lock, this process is what another `rotate` would signal.
        ControlSignals.ignoreUntilTrapped()
        options.bootstrapLogging()
        let lock = try DaemonOptions.lock(stateDirectory)
        // The engine below runs over the whole config, so every app is locked, not only the
        // targets: with --state-dir OTHER beside a running daemon this is what refuses.
        let appLocks = try DaemonOptions.lockApps(config, stateDirectory: stateDirectory)
        let client = try DaemonOptions.makeClient(config)
        let engine = RotationEngine(config: config, api: client, stateDirectory: StateDirectory(path: stateDirectory))
        if config.cluster != nil {
            // Outside the election: every app is only followed, never rotated.
            await engine.joinCluster(OutsideElection())
        }
        let progress = Progress(total: targets.count, verb: kind == .rotate ? "rotated" : "fetched")
        var ok = true
        do {
            try await engine.start()
            for app in targets {
                let before = await engine.state(of: app.id)?.version ?? 0
                _ = await engine.request(kind == .rotate ? .refresh : .fetch, forApp: app.id)
                let succeeded = await engine.settle(appID: app.id)
                let state = await engine.state(of: app.id)
                let version = state?.version ?? 0
                if succeeded && version > before {
                    progress.finished("\(app.name): version \(version) written")
                } else if succeeded && kind == .fetch {
                    progress.finished("\(app.name): unchanged (version \(version)); every output checked")
                } else if succeeded {
                    progress.failed("\(app.name): not rotated (still version \(version))")
                    ok = false
                } else if state?.intent == .refresh, state?.consecutiveFailures == 0 {
                    progress.failed(
                        "\(app.name): the refresh's outcome is unknown; the next run reconciles it with GenAuth (it is not sent again)")
                    ok = false
                } else {
                    progress.failed("\(app.name): failed: \(state?.lastError ?? "unknown error")")
                    ok = false
                }
            }
        } catch {
            // Only the state directory can fail here (the database cannot be opened or
            // prepared): 73, like the lock's own failures (sysexits EX_CANTCREAT).
            StandardError.write("secret-rotator: cannot use the state directory: \(error)")
            try? await client.shutdown()
            withExtendedLifetime((lock, appLocks)) {}
            throw ExitCode(73)
        }
        progress.done(timedOut: [])
        try? await client.shutdown()
        withExtendedLifetime((lock, appLocks)) {}
        if !ok { throw ExitCode.failure }
    }

    static func list(_ apps: [AppConfig]) -> String {
        apps.count <= 5 ? apps.map(\.name).joined(separator: ", ") : "\(apps.count) apps"
    }
}

/// Per-app results of `rotate`/`fetch`: a line each (stdout for done, stderr for failed), and
/// for more than one app a progress line redrawn on stderr while it is a terminal, then a
/// summary ("200 apps: 198 rotated, 2 failed").
final class Progress {
    private let total: Int
    private let verb: String
    private let live: Bool
    private var succeeded = 0
    private var failures = 0

    init(total: Int, verb: String) {
        self.total = total
        self.verb = verb
        live = total > 1 && isatty(2) == 1
    }

    func finished(_ line: String) {
        succeeded += 1
        clear()
        print(line)
        redraw()
    }

    func failed(_ line: String) {
        failures += 1
        clear()
        StandardError.write(line)
        redraw()
    }

    func done(timedOut: [String]) {
        clear()
        guard total > 1 else { return }
        var parts = ["\(succeeded) \(verb)"]
        if failures > 0 { parts.append("\(failures) failed") }
        if !timedOut.isEmpty { parts.append("\(timedOut.count) still pending") }
        print("\(Plural.count(total, "app")): \(parts.joined(separator: ", "))")
    }

    private func redraw() {
        guard live else { return }
        StandardError.write(raw: "[\(succeeded + failures)/\(total)] \(succeeded) \(verb), \(failures) failed")
    }

    private func clear() {
        guard live else { return }
        StandardError.write(raw: "\r\u{1B}[K")
    }
}

/// What `rotate` and `fetch` share on the command line.
struct AppRequestOptions: ParsableArguments {
    @OptionGroup var options: DaemonOptions

    @Argument(
        help: ArgumentHelp("App names or ids.", valueName: "app"),
        completion: .custom(AppNameCompletion.complete))
    var apps: [String] = []

    @Flag(help: "Every app in the config (rotate: every app with action = \"rotate\").")
    var all = false

    @Option(help: ArgumentHelp(
        "How long to wait for a running daemon, e.g. 60s.",
        discussion: "Default: 60s plus twice the time requests_per_second needs for the apps.", valueName: "duration"))
    var timeout: String?

    func validate() throws {
        if all && !apps.isEmpty { throw ValidationError("give app names or --all, not both") }
        if !all && apps.isEmpty { throw ValidationError("name at least one app (or use --all)") }
        if let timeout, try parsedDuration(timeout, option: "--timeout") <= .zero {
            throw ValidationError("--timeout: must be more than 0s")
        }
    }

    func request(_ kind: ControlRequests.Kind) throws -> AppRequest {
        AppRequest(
            options: options, names: apps, all: all, kind: kind,
            timeout: try timeout.map { try parsedDuration($0, option: "--timeout") })
    }
}

struct RotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Rotate the named apps now (through the running daemon if there is one).",
        discussion: """
            GenAuth invalidates an app's old secret the moment it rotates; every output is \
            rewritten right after. With a running daemon the request goes to it and this shell \
            needs no access key secret; otherwise this process does the work itself and needs it.

            --all rotates every app with action = "rotate" (for an incident: a leaked key, a \
            compromised host). It asks for confirmation on a terminal; without one, pass --yes.

            Exit status: 0 rotated, 1 failed or timed out, 64 bad arguments, an unknown app or \
            an app with action = "follow", 69 this host does not lead the [cluster] election \
            (EX_UNAVAILABLE), 73 the state directory cannot be used, 75 another process holds \
            the state directory, 78 invalid config.
            """)

    @OptionGroup var request: AppRequestOptions

    @Flag(help: "With --all: do not ask for confirmation (needed when stdin is not a terminal).")
    var yes = false

    func validate() throws {
        if yes && !request.all { throw ValidationError("--yes only applies to --all") }
    }

    func run() async throws {
        try await request.request(.rotate).perform {
            if yes { return }
            guard isatty(0) == 1 else {
                StandardError.write("secret-rotator: rotate --all needs --yes when stdin is not a terminal")
                throw ExitCode(64)
            }
            StandardError.write(raw: "Rotate every app with action = \"rotate\" now? GenAuth invalidates each old secret at once. [y/N] ")
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                StandardError.write("secret-rotator: nothing rotated")
                throw ExitCode.failure
            }
        }
    }
}

struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Write the named apps' current secrets without rotating them.",
        discussion: """
            Reads each app's current secret from GenAuth and rewrites any output that differs. \
            Through a running daemon this shell needs no access key secret.

            Exit status: 0 written or unchanged, 1 failed or timed out, 64 bad arguments or an \
            unknown app, 73 the state directory cannot be used, 75 another process holds the \
            state directory, 78 invalid config.
            """)

    @OptionGroup var request: AppRequestOptions

    func run() async throws { try await request.request(.fetch).perform {} }
}

/// The fence of a standalone `fetch` on a `[cluster]` host: it takes no part in the election,
/// so it never refreshes; `rotate` apps are only read, like `follow` apps.
struct OutsideElection: RotationFence {
    func authorizeRefresh(appID: String) async -> RefreshAuthorization {
        .refused("a standalone command takes no part in the [cluster] election")
    }

    func announce(appID: String, version: Int, rotatedAt: Date) {}
}
