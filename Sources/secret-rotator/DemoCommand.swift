import ArgumentParser
import AsyncHTTPClient
import NIOCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GenAuthMock
import Logging
import SecretRotator
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Watch the real daemon rotate three apps against an embedded mock GenAuth API.",
        discussion: """
            Starts the mock GenAuth V3 API on 127.0.0.1 with three apps, writes a temporary \
            state and drop directory, and runs the real rotation engine with intervals of a few \
            seconds, printing each rotation and where the files are. Stops at Ctrl-C or after \
            --duration, then checks that every output file holds the mock's current secret \
            with its configured mode, presents the secret in each raw file to the mock's token \
            endpoint as the app's backend would (POST /oidc/token, client credentials), and \
            removes the temporary directory (unless --keep). Nothing outside the temporary \
            directory is touched.

            Exit status: 0 every file in sync and accepted, 1 a file differs or is refused, 64 \
            bad arguments.
            """)

    @Option(help: ArgumentHelp("Stop after this long, e.g. 20s (default: run until Ctrl-C).", valueName: "duration"))
    var duration: String?

    @Flag(help: "Keep the temporary directory (config, state, files) at exit, to look at it.")
    var keep = false

    func validate() throws {
        if let duration { _ = try parsedDuration(duration, option: "--duration") }
    }

    func run() async throws {
        EarlyStopSignal.install()
        StandardOutput.lineBuffered()
        let stopAfter = try duration.map { try parsedDuration($0, option: "--duration") }
        var template = Array("/tmp/secret-rotator-demo.XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw ValidationError("cannot create a temporary directory")
        }
        let root = String(cString: created)
        let drop = "\(root)/secrets"
        let seed = MockSeed(
            userPoolId: "demo-user-pool",
            accessKeys: [.init(accessKeyId: "demo-access-key-id", accessKeySecret: "demo-access-key-secret")],
            apps: [
                .init(appId: "64d0c0ffee0000000000b111", appName: "billing"),
                .init(appId: "64d0c0ffee0000000000c222", appName: "search"),
                .init(appId: "64d0c0ffee0000000000d333", appName: "reports"),
            ])
        let mock = try await GenAuthMockServer.start(state: GenAuthMockState(seed: seed))
        let (config, configPath) = try Self.config(mockURL: mock.baseURL, root: root, drop: drop, seed: seed)

        LoggingSystem.bootstrap { label in DemoLogHandler(label: label) }
        print("""
            secret-rotator demo
              mock GenAuth API : \(mock.baseURL) (in this process, loopback only)
              config           : \(configPath)
              state directory  : \(root)/state
              drop directory   : \(drop)
              apps             : billing every 5s (raw), search every 7s (env), reports every 11s (json)
            Each line below is the real engine at work. Stop with Ctrl-C\(stopAfter.map { " (or wait \(DurationSyntax.format($0)))" } ?? "").

            """)
        let logger = Logger(label: "demo")
        let client = try DaemonOptions.makeClient(config)
        let store = StateDirectory(path: "\(root)/state")
        let engine = RotationEngine(config: config, api: client, stateDirectory: store, logger: logger)
        try await engine.start()
        let service = RotationService(
            engine: engine, configPath: configPath, loader: ConfigLoader(), stateDirectory: store, logger: logger)
        let group = service.serviceGroup(logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            if let stopAfter {
                tasks.addTask {
                    try await Task.sleep(for: stopAfter)
                    await group.triggerGracefulShutdown()
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }

        print("\nfiles:")
        var differences: [String] = []
        for app in config.apps {
            let state = await engine.state(of: app.id)
            for output in app.outputs {
                print("  \(output.path)  (\(output.format.rawValue), version \(state?.version ?? 0))")
            }
            // Every output, not only the raw one: the held secret must be the one the mock
            // accepts now, and each file must be exactly what a write of it leaves (content in
            // its format, mode), as `status` checks it.
            guard let held = store.loadSecret(appID: app.id, now: Date()).secret else {
                differences.append("\(app.name): no secret was written before the demo stopped")
                continue
            }
            guard held.secretValue.exposed == mock.state.currentSecret(appId: app.id) else {
                differences.append("\(app.name): the secret held is not the mock's current one")
                continue
            }
            differences += StatusReport.inspectOutputs(app, secret: held).map { "\(app.name): \($0)" }
            // The consumer's own check: the app's backend authenticates to GenAuth with the
            // secret it read from its file (client credentials at the mock's token endpoint).
            if let raw = app.outputs.first(where: { $0.format == .raw }) {
                let text = (try? String(contentsOfFile: raw.path, encoding: .utf8)) ?? ""
                let secret = text.hasSuffix("\n") ? String(text.dropLast()) : text
                if await !Self.tokenEndpointAccepts(baseURL: mock.baseURL, appID: app.id, secret: secret) {
                    differences.append("\(app.name): the mock's token endpoint refused the secret in \(raw.path)")
                }
            }
        }
        if differences.isEmpty {
            print("every file holds the secret the mock accepts now, with its configured mode;")
            print("a consumer reading each raw file was accepted by the mock's token endpoint (POST /oidc/token).")
        } else {
            for difference in differences { print("WARNING: \(difference)") }
        }
        try? await client.shutdown()
        try? await mock.stop()
        if keep {
            print("kept \(root) (remove it when done: it holds the mock's secrets)")
        } else {
            try? FileManager.default.removeItem(atPath: root)
        }
        if !differences.isEmpty { throw ExitCode.failure }
    }

    /// POSTs client credentials (RFC 6749 §4.4, `client_secret_post`) to the mock's
    /// `/oidc/token`, as a GenAuth application's backend does with its secret. Loopback only.
    /// - Returns: whether the mock answered 200 (the secret is the app's current one).
    static func tokenEndpointAccepts(baseURL: String, appID: String, secret: String) async -> Bool {
        func form(_ value: String) -> String {
            value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        }
        var request = HTTPClientRequest(url: baseURL + "/oidc/token")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: "grant_type=client_credentials&client_id=\(form(appID))&client_secret=\(form(secret))"))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(5)) else { return false }
        _ = try? await response.body.collect(upTo: 64 * 1024)
        return response.status == .ok
    }

    /// A real TOML config, loaded by the real loader; only the minimum interval is lowered
    /// (SECRET_ROTATOR_MINIMUM_INTERVAL) so the demo rotates every few seconds.
    static func config(mockURL: String, root: String, drop: String, seed: MockSeed) throws -> (RotatorConfig, String) {
        let apps = seed.apps.map(\.appId)
        let text = """
            # Written by `secret-rotator demo`: the mock runs in the demo process.
            [genauth]
            host = "\(mockURL)"
            access_key_id = "\(seed.accessKeys[0].accessKeyId)"

            [defaults]
            interval = "5s"
            directory = "\(drop)"
            state_directory = "\(root)/state"
            mode = "0600"
            retry = { initial = "500ms", max = "5s" }

            [[app]]
            id = "\(apps[0])"
            name = "billing"
            on_rotate = ["/bin/true"]

            [[app]]
            id = "\(apps[1])"
            name = "search"
            interval = "7s"
              [[app.output]]
              path = "\(drop)/search"
              [[app.output]]
              format = "env"

            [[app]]
            id = "\(apps[2])"
            name = "reports"
            interval = "11s"
              [[app.output]]
              path = "\(drop)/reports"
              [[app.output]]
              format = "json"

            """
        let path = "\(root)/rotator.toml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let loader = ConfigLoader(environment: [
            ConfigSchema.minimumIntervalVariable: "1s",
            ConfigSchema.accessKeySecretVariable: seed.accessKeys[0].accessKeySecret,
        ])
        do {
            return (try loader.load(path: path).config, path)
        } catch {
            throw ValidationError("demo config rejected:\n\(error)")
        }
    }
}

/// Prints the engine's notices as short lines for a person watching the demo.
struct DemoLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .notice

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard label != "secret-rotator.genauth" || event.level >= .warning else { return }
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let time = Date().formatted(Date.ISO8601FormatStyle(timeZone: .current).time(includingFractionalSeconds: false))
        let app = all["app_name"].map { "\($0): " } ?? ""
        let version = all["version"].map { " (version \($0))" } ?? ""
        print("\(time)  \(app)\(event.message)\(version)")
    }
}
