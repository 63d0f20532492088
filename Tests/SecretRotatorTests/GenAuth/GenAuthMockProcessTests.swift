import AsyncHTTPClient
import Foundation
import GenAuthMock
import NIOCore
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// The `genauth-mock` executable, as other processes (the SDK check, demos, the end-to-end
/// harness) use it: `--port 0` reports the port, and faults go in over the admin API.
@Suite("genauth-mock executable")
struct GenAuthMockProcessTests {
    /// SwiftPM puts executables next to the test bundle.
    static var binary: URL? {
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        ]
        return candidates.map { $0.appendingPathComponent("genauth-mock") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    @Test("--port 0 prints the port; admin faults reach our client out of process")
    func outOfProcess() async throws {
        let binary = try #require(Self.binary, "genauth-mock is not built next to the test bundle")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("genauth-mock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let portFile = dir.appendingPathComponent("port")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--port", "0", "--port-file", portFile.path, "--token-expires-in", "900"]
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
        }
        try await waitUntil("the mock never wrote its port file") { FileManager.default.fileExists(atPath: portFile.path) }
        let port = try #require(Int(String(contentsOf: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))

        let client = try GenAuthClient(
            configuration: .init(
                host: "http://127.0.0.1:\(port)", accessKeyId: MockSeed.demo.accessKeys[0].accessKeyId,
                accessKeySecret: SecretValue(MockSeed.demo.accessKeys[0].accessKeySecret)))
        do {
            let appId = MockSeed.demo.apps[0].appId
            let first = try await client.refreshApplicationSecret(appId: appId)
            let injected = try await Self.admin(
                port, "faults", post: #"{"fault":"drop-after-processing","endpoint":"refresh-application-secret"}"#)
            #expect(injected["ok"] as? Bool == true)
            do {
                _ = try await client.refreshApplicationSecret(appId: appId)
                Issue.record("expected the injected fault")
            } catch {
                #expect(error.classification == .outcomeUnknown)
            }
            let truth = try await client.getApplicationSecret(appId: appId)
            #expect(truth != first)
            let app = try await Self.admin(port, "apps/\(appId)")
            #expect(app["secret"] as? String == truth.exposed)
            #expect(app["rotationCount"] as? Int == 2)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        process.terminate()
        process.waitUntilExit()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(output.contains("port=\(port)\n"))
        #expect(output.contains("listening on http://127.0.0.1:\(port)"))
    }

    static func admin(_ port: Int, _ route: String, post body: String? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/__admin/\(route)")
        if let body {
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
    }
}
