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
/// request goes to it (request file + SIGUSR1), so there is never a second writer; otherwise
/// this process takes the state-directory lock and does the work itself.
struct AppRequest {
    let options: DaemonOptions
    let apps: [String]
    let kind: ControlRequests.Kind
    let timeout: Duration

    func perform() async throws {
        let config = try options.loadConfig()
        var targets: [AppConfig] = []
        for name in apps {
            guard let app = config.app(named: name) else {
                StandardError.write("secret-rotator: no app named or with id \"\(name)\" in \(config.sourcePath)")
                throw ExitCode(64)
            }
            if kind == .rotate && app.action == .follow {
                // Exactly one host may rotate an app: a follower rotating would kill the secret
                // its rotating host and every other follower hold.
                StandardError.write(
                    "secret-rotator: \(app.name) has action = \"follow\": this host never rotates it; rotate it on its rotating host, or use `fetch`")
                throw ExitCode(64)
            }
            targets.append(app)
        }
        let stateDirectory = options.stateDirectory(for: config)
        if let daemon = StateDirectoryLock.holder(stateDirectory: stateDirectory) {
            try await viaDaemon(daemon, targets: targets, stateDirectory: stateDirectory)
        } else {
            try await standalone(config, targets: targets, stateDirectory: stateDirectory)
        }
    }

    private func viaDaemon(_ pid: pid_t, targets: [AppConfig], stateDirectory: String) async throws {
        let store = StateDirectory(path: stateDirectory)
        let requests = ControlRequests(stateDirectory: store)
        var before: [String: AppState] = [:]
        for app in targets {
            before[app.id] = store.loadState(appID: app.id, now: Date()).state ?? AppState(appID: app.id)
            try requests.submit(appID: app.id, kind: kind)
        }
        guard kill(pid, SIGUSR1) == 0 else {
            StandardError.write("secret-rotator: cannot signal the daemon (PID \(pid)): \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        print("asked the running daemon (PID \(pid)) to \(kind.rawValue) \(targets.map(\.name).joined(separator: ", "))")
        // The daemon journals every step; wait until each app's journal changes in a way that
        // answers the request: a new version, a fresh "unchanged" check, or a new failure.
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var remaining = targets
        var failed = false
        while !remaining.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            remaining = remaining.filter { app in
                guard let state = store.loadState(appID: app.id, now: Date()).state, let old = before[app.id] else { return true }
                if state.version > old.version && state.intent == nil {
                    print("\(app.name): version \(state.version) written")
                    return false
                }
                if kind == .fetch, state.lastChecked != old.lastChecked, state.consecutiveFailures == 0 {
                    print("\(app.name): unchanged (version \(state.version)); every output checked")
                    return false
                }
                if state.consecutiveFailures > old.consecutiveFailures {
                    StandardError.write("\(app.name): failed: \(state.lastError ?? "unknown error")")
                    failed = true
                    return false
                }
                return true
            }
        }
        if failed { throw ExitCode.failure }
        if !remaining.isEmpty {
            StandardError.write("secret-rotator: timed out waiting for \(remaining.map(\.name).joined(separator: ", ")); the daemon keeps trying")
            throw ExitCode.failure
        }
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
                    print("\(app.name): version \(version) written")
                } else if succeeded && kind == .fetch {
                    print("\(app.name): unchanged (version \(version)); every output checked")
                } else if succeeded {
                    StandardError.write("\(app.name): not rotated (still version \(version))")
                    ok = false
                } else if state?.intent == .refresh, state?.consecutiveFailures == 0 {
                    StandardError.write(
                        "\(app.name): the refresh's outcome is unknown; the next run reconciles it with GenAuth (it is not sent again)")
                    ok = false
                } else {
                    StandardError.write("\(app.name): failed: \(state?.lastError ?? "unknown error")")
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
        try? await client.shutdown()
        withExtendedLifetime((lock, appLocks)) {}
        if !ok { throw ExitCode.failure }
    }
}

/// What `rotate` and `fetch` share on the command line.
struct AppRequestOptions: ParsableArguments {
    @OptionGroup var options: DaemonOptions
    @Argument(help: "App names or ids.") var apps: [String]
    @Option(help: "How long to wait for a running daemon to finish, e.g. 60s.") var timeout = "60s"

    func perform(_ kind: ControlRequests.Kind) async throws {
        try await AppRequest(options: options, apps: apps, kind: kind, timeout: try parsedTimeout(timeout)).perform()
    }
}

struct RotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Rotate the named apps now (through the running daemon if there is one).",
        discussion: "Exit status: 0 rotated, 1 failed or timed out, 64 unknown app or an app with action = \"follow\", 78 invalid config.")

    @OptionGroup var request: AppRequestOptions

    func run() async throws { try await request.perform(.rotate) }
}

struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Write the named apps' current secrets without rotating them.",
        discussion: "Exit status: 0 written or unchanged, 1 failed or timed out, 64 unknown app, 78 invalid config.")

    @OptionGroup var request: AppRequestOptions

    func run() async throws { try await request.perform(.fetch) }
}

func parsedTimeout(_ text: String) throws -> Duration {
    do {
        return try DurationSyntax.parse(text)
    } catch {
        throw ValidationError("--timeout: \(error.message)")
    }
}
