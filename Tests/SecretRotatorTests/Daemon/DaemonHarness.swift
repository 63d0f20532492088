import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Runs the built `secret-rotator` as a real process against an in-process mock, with a
/// config the test writes. Every started process is killed by PID in `cleanUp()`.
final class DaemonHarness: @unchecked Sendable {
    let directory: URL
    let mock: GenAuthMockServer
    let seed: MockSeed
    let accessKeySecret = "daemon-test-access-key-\(UUID().uuidString)"
    private var processes: [Process] = []
    private var logCounter = 0

    var state: GenAuthMockState { mock.state }
    var configPath: String { directory.appendingPathComponent("rotator.toml").path }
    var stateDirectory: String { directory.appendingPathComponent("state").path }
    var dropDirectory: String { directory.appendingPathComponent("drop").path }
    var hookDirectory: String { directory.appendingPathComponent("hooks").path }

    static func appID(_ index: Int) -> String { String(format: "64d0c0ffee00000000%06d", index) }

    init(apps: Int) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sr-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        try FileManager.default.createDirectory(atPath: directory.appendingPathComponent("hooks").path, withIntermediateDirectories: true)
        seed = MockSeed(
            userPoolId: "daemon-test-pool", accessKeys: [.init(accessKeyId: "daemon-test-ak", accessKeySecret: accessKeySecret)],
            apps: (0..<apps).map { .init(appId: Self.appID($0), appName: "app\($0)") })
        mock = try await GenAuthMockServer.start(state: GenAuthMockState(seed: seed))
    }

    /// Writes the config for apps `indices` with `interval`; hooks append the version to hooks/<name>.
    func writeConfig(
        apps indices: [Int], interval: String, extra: String = "", requestTimeout: String = "5s",
        requestsPerSecond: Int = 200, hooks: Bool = true, mode: String = "0600", action: String = "rotate",
        hookScript: String? = nil
    ) throws {
        var text = """
            [genauth]
            host = "\(mock.baseURL)"
            access_key_id = "daemon-test-ak"
            request_timeout = "\(requestTimeout)"
            requests_per_second = \(requestsPerSecond)

            [defaults]
            interval = "\(interval)"
            directory = "\(dropDirectory)"
            state_directory = "\(stateDirectory)"
            mode = "\(mode)"
            max_concurrent = 8
            retry = { initial = "200ms", max = "2s" }
            \(extra)

            """
        for index in indices {
            text += """
                [[app]]
                id = "\(Self.appID(index))"
                name = "app\(index)"
                action = "\(action)"

                """
            if let hookScript {
                text += """
                    on_rotate = ["/bin/sh", "-c", "\(hookScript)"]

                    """
            } else if hooks {
                text += """
                    on_rotate = ["/bin/sh", "-c", "echo $ROTATOR_VERSION >> \(hookDirectory)/$ROTATOR_APP_NAME"]

                    """
            }
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: configPath))
    }

    func environment(secret: String? = nil) -> [String: String] {
        [
            "PATH": "/usr/bin:/bin", ConfigSchema.minimumIntervalVariable: "1s",
            ConfigSchema.accessKeySecretVariable: secret ?? accessKeySecret,
            // Per-app locks of this test only: other tests use the same app ids at once.
            "RUNTIME_DIRECTORY": directory.appendingPathComponent("run").path,
        ]
    }

    /// Starts `secret-rotator <arguments> --config <config>`; output goes to a numbered log file.
    @discardableResult
    func start(_ arguments: [String] = ["run"], secret: String? = nil, extraEnvironment: [String: String] = [:]) throws -> (Process, URL) {
        logCounter += 1
        let log = directory.appendingPathComponent("process-\(logCounter).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = arguments + ["--config", configPath]
        process.environment = environment(secret: secret).merging(extraEnvironment) { $1 }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes.append(process)
        return (process, log)
    }

    func run(_ arguments: [String], secret: String? = nil, timeout: Duration = .seconds(60)) async throws -> (Int32, String) {
        let (process, log) = try start(arguments, secret: secret)
        let exited = (try? await waitUntil(deadline: timeout) { !process.isRunning }) != nil
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    func output(_ index: Int) -> String? {
        (try? String(contentsOfFile: "\(dropDirectory)/app\(index)", encoding: .utf8)).map {
            $0.hasSuffix("\n") ? String($0.dropLast()) : $0
        }
    }

    func savedState(_ index: Int) -> AppState? {
        StateDirectory(path: stateDirectory).loadState(appID: Self.appID(index), now: Date()).state
    }

    func hookVersions(_ index: Int) -> Set<Int> {
        let text = (try? String(contentsOfFile: "\(hookDirectory)/app\(index)", encoding: .utf8)) ?? ""
        return Set(text.split(separator: "\n").compactMap { Int($0) })
    }

    /// Apps whose held secret is not yet on every output, or whose refresh is unsettled: what
    /// a kill between the refresh and the last write leaves behind.
    func unfinishedRollouts(_ indices: [Int]) -> [String] {
        let directory = StateDirectory(path: stateDirectory)
        return indices.compactMap { index in
            let found = directory.inspect(appID: Self.appID(index))
            let version = found.state?.version ?? 0
            if let held = found.secretVersion, held > version { return "app\(index): version \(held) held, \(version) written" }
            if found.state?.intent == .refresh { return "app\(index): refresh outcome unsettled" }
            return nil
        }
    }

    /// Invariant 1 for every app in `indices`: the file holds the secret the mock accepts now,
    /// with the configured mode (0600).
    func violations(_ indices: [Int]) -> [String] {
        indices.compactMap { index in
            if output(index) != state.currentSecret(appId: Self.appID(index)) {
                return "app\(index): output differs from the mock's current secret"
            }
            var status = stat()
            if stat("\(dropDirectory)/app\(index)", &status) != 0 || status.st_mode & 0o7777 != 0o600 {
                return "app\(index): mode \(String(status.st_mode & 0o7777, radix: 8)), configured 0600"
            }
            return nil
        }
    }

    func cleanUp() async {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? await mock.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

