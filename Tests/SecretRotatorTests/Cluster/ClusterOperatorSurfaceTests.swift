import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// A fleet as an operator meets it: notice records, `run --once` beside `[cluster]`, a stopped
/// daemon's cluster state, nobody leading, a client key others can read. Each case once failed.
@Suite struct ClusterOperatorSurfaceTests {
    /// `run --once` on a `[cluster]` host: refused with 78 and a sentence, not a trap on a
    /// client built first and never shut down (exit 132 on the debug build).
    /// The answer fuzzer's reproducer: a notice's `rotated_at` with milliseconds survives a
    /// round trip exactly (it came back a millisecond early).
    @Test func aNoticeDateSurvivesARoundTrip() throws {
        let body = Array(#"{"host":"web-1","rotated_at":"2027-01-15T08:00:00.135Z","version":3}"#.utf8)
        let notice = try #require(ClusterRecordCoding.decode(RotationNotice.self, from: body))
        let again = try #require(ClusterRecordCoding.decode(RotationNotice.self, from: ClusterRecordCoding.encode(notice)))
        #expect(again.rotatedAt == notice.rotatedAt)
        #expect(String(decoding: ClusterRecordCoding.encode(notice), as: UTF8.self).contains("2027-01-15T08:00:00.135Z"))
        #expect(ClusterRecordCoding.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(ClusterRecordCoding.format(Date(timeIntervalSince1970: 1.9996)) == "1970-01-01T00:00:02.000Z")
    }

    @Test func runOnceWithClusterIsRefusedCleanly() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("rotator.toml").path
        try ConfigFixtures.write(
            """
            [genauth]
            host = "http://127.0.0.1:9"
            access_key_id = "ak"
            access_key_secret = "secret-value-1"
            [defaults]
            state_directory = "\(directory.appendingPathComponent("state").path)"
            directory = "\(directory.appendingPathComponent("out").path)"
            [cluster]
            endpoints = ["http://127.0.0.1:9"]
            [[app]]
            id = "app-1"
            name = "one"
            """, to: URL(fileURLWithPath: path))
        let result = try CLI.run(["run", "--once", "--config", path])
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("run --once cannot take part in the [cluster] election"))
    }

    /// `status` on a frozen leader (SIGSTOP) said "leader, lease held", exit 0: the file a
    /// stopped daemon wrote last is not trusted.
    @Test func aStoppedDaemonsClusterStateIsNotTrusted() async throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["60"]
        try sleeper.run()
        defer {
            kill(sleeper.processIdentifier, SIGKILL)
            sleeper.waitUntilExit()
        }
        let written = ClusterStatus(
            host: "web-1", group: "default", role: .leader, leader: "web-1", unrotated: [], leaseHeld: true, watch: .watching,
            problem: nil, lastNotices: [:], updatedAt: Date(), pid: sleeper.processIdentifier)
        try Data(written.encoded()).write(to: directory.appendingPathComponent(ClusterStatus.fileName))
        #expect(ClusterStatus.read(stateDirectory: directory.path)?.role == .leader)
        kill(sleeper.processIdentifier, SIGSTOP)
        try await waitUntil("the sleeper never showed as stopped") { ProcessLiveness.of(sleeper.processIdentifier) == .stopped }
        let read = try #require(ClusterStatus.read(stateDirectory: directory.path))
        #expect(read.role == .noLease && !read.leaseHeld && read.watch == .polling)
        #expect(read.problem?.contains("stopped (SIGSTOP") == true)
    }

    /// A key that is not a candidate's at the head of the election (written by anyone with
    /// access to the prefix) stopped every rotation while status said OK: now a WARNING.
    @Test func nobodyLeadingIsAWarning() throws {
        let loaded = try ConfigFixtures.load(
            "[genauth]\naccess_key_id = \"ak\"\n[cluster]\nendpoints = [\"http://a:1\"]\n[[app]]\nid = \"app-1\"\nname = \"one\"\n")
        let app = StatusReport.App(
            app: loaded.config.apps[0], state: AppState(appID: "app-1"), pendingVersion: nil, nextDue: nil, hasSecret: true)
        let cluster = ClusterStatus(
            host: "web-2", group: "default", role: .candidate, leader: nil, unrotated: [], leaseHeld: true, watch: .watching,
            problem: nil, lastNotices: [:], updatedAt: Date(), pid: getpid())
        let health = AppHealth.judge(app, outputFindings: [], now: Date(), grace: .seconds(600), cluster: cluster)
        #expect(health.verdict == .failing)
        #expect(health.findings.contains { "\($0)".contains("no host leads the election") })
    }

    /// A client key readable by every user is refused (it was accepted at 0604).
    @Test func worldReadableClientKeyIsRefused() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("client.pem")
        let key = directory.appendingPathComponent("client-key.pem")
        try ConfigFixtures.write("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", to: cert)
        try ConfigFixtures.write("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", to: key, mode: 0o604)
        let table = "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"app-1\"\nname = \"one\"\n[cluster]\nendpoints = [\"https://a:1\"]\ncert_file = \"\(cert.path)\"\nkey_file = \"\(key.path)\"\n"
        #expect(ConfigFixtures.diagnostics(table).contains { $0.description.contains("is readable by every user") })
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: key.path)
        #expect(!ConfigFixtures.diagnostics(table).contains { $0.severity == .error })
        #expect(ConfigFixtures.diagnostics("[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"app-1\"\nname = \"one\"\n[cluster]\nendpoints = [\"http://a:99999\"]\n")
            .contains { $0.description.contains("has no valid port (1 to 65535)") })
    }
}
