import Foundation
import GenAuthMock
import NIOSSL
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// SIGHUP applies every setting the daemon uses, or refuses the reload naming what needs a
/// restart; never "reloaded" while the old value stays in force. Each `[genauth]` key is
/// changed under a running daemon (a real process against in-process mocks), and the next
/// GenAuth call is checked at the mock: it went to the new host, with the new flavour's
/// headers, the new key id, the new key secret, the new timeout, the new trust roots.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ReloadTests {
    enum Setting: String, CaseIterable, Sendable {
        case host, flavour, accessKeyID = "access_key_id", accessKeySecretFile = "access_key_secret_file"
        case requestTimeout = "request_timeout", caFile = "ca_file", metricsTextfile = "metrics_textfile"
    }

    /// The `[genauth]` keys a test writes; everything else as `DaemonHarness` writes it.
    struct GenAuthKeys {
        var host: String
        var flavour = "genauth"
        var accessKeyID = "daemon-test-ak"
        var requestTimeout = "2s"
        var caFile: String?
        var metricsTextfile: String?
    }

    static let secondKeyID = "reloaded-ak"

    @Test(arguments: Setting.allCases)
    func aReloadedSettingIsUsedByTheNextCall(_ setting: Setting) async throws {
        let harness = try await DaemonHarness(apps: 1)
        defer { Task { await harness.cleanUp() } }
        let app = DaemonHarness.appID(0)
        let secretFile = harness.directory.appendingPathComponent("access-key-secret").path
        try writePrivate(secretFile, harness.accessKeySecret)
        // A second key with the same secret: only the id differs.
        harness.state.addAccessKey(.init(accessKeyId: Self.secondKeyID, accessKeySecret: harness.accessKeySecret))

        var keys = GenAuthKeys(host: harness.mock.baseURL)
        var tls: TLSFixture?
        var other: GenAuthMockServer?
        defer { if let other { Task { try? await other.stop() } } }
        if setting == .caFile {
            // The daemon starts trusting a CA that did not sign the server's certificate.
            let fixture = try TLSFixture(directory: harness.directory)
            tls = fixture
            other = try await GenAuthMockServer.start(state: harness.state, tls: fixture.serverConfiguration)
            keys.host = try #require(other).baseURL
            keys.caFile = fixture.caFile
            try fixture.trust(fixture.unrelatedCA)
        }
        try write(harness, keys, secretFile: secretFile)
        let (daemon, log) = try harness.start()
        defer { kill(daemon.processIdentifier, SIGKILL) }

        if setting == .caFile {
            // Refused by the old trust roots: nothing fetched, the handshake fails and backs off.
            try await waitUntil(deadline: .seconds(30)) { text(log).contains("rotation_failed") }
            #expect(harness.output(0) == nil)
        } else {
            try await waitUntil(deadline: .seconds(30)) { harness.output(0) != nil }
        }
        let mark = harness.state.requestLog().map(\.sequence).max() ?? 0

        var second: GenAuthMockServer?
        defer { if let second { Task { try? await second.stop() } } }
        switch setting {
        case .host:
            let server = try await GenAuthMockServer.start(state: GenAuthMockState(seed: harness.seed))
            second = server
            keys.host = server.baseURL
        case .flavour:
            keys.flavour = "authing"
        case .accessKeyID:
            keys.accessKeyID = Self.secondKeyID
        case .accessKeySecretFile:
            // The operator rotates the daemon's own key: GenAuth refuses the old secret at once.
            harness.state.replaceAccessKeySecret("daemon-test-ak", with: "rotated-access-key-secret-0123456789")
            try writePrivate(secretFile, "rotated-access-key-secret-0123456789")
        case .requestTimeout:
            keys.requestTimeout = "6s"
        case .caFile:
            try #require(tls).trust(try #require(tls).serverCA)
        case .metricsTextfile:
            keys.metricsTextfile = harness.directory.appendingPathComponent("rotator.prom").path
        }
        try write(harness, keys, secretFile: secretFile)
        let reloads = text(log).components(separatedBy: "config reloaded").count
        kill(daemon.processIdentifier, SIGHUP)
        try await waitUntil(deadline: .seconds(30)) { text(log).components(separatedBy: "config reloaded").count > reloads }

        switch setting {
        case .host:
            let server = try #require(second)
            let (status, output) = try await harness.run(["rotate", "app0"])
            #expect(status == 0, "\(output)")
            #expect(server.state.rotationCount(appId: app) == 1, "the refresh went to the new host")
            #expect(harness.state.rotationCount(appId: app) == 0, "nothing went to the old host")
            #expect(harness.output(0) == server.state.currentSecret(appId: app))
        case .flavour:
            let (status, output) = try await harness.run(["rotate", "app0"])
            #expect(status == 0, "\(output)")
            let refresh = try #require(harness.state.requestLog().last { $0.sequence > mark && $0.path.hasSuffix("refresh-application-secret") })
            #expect(refresh.headerNames.contains("x-authing-userpool-id"))
            #expect(!refresh.headerNames.contains("x-genauth-userpool-id"))
        case .accessKeyID:
            harness.state.revokeAllTokens()
            let (status, output) = try await harness.run(["rotate", "app0"])
            #expect(status == 0, "\(output)")
            let tokens = harness.state.requestLog().filter { $0.sequence > mark && $0.accessKeyId != nil }
            #expect(!tokens.isEmpty && tokens.allSatisfy { $0.accessKeyId == Self.secondKeyID }, "\(tokens.map(\.accessKeyId))")
        case .accessKeySecretFile:
            let (status, output) = try await harness.run(["rotate", "app0"])
            #expect(status == 0, "\(output)")
            #expect(harness.output(0) == harness.state.currentSecret(appId: app))
        case .requestTimeout:
            // An answer 3 s late: past the old 2 s timeout, inside the new 6 s one.
            harness.state.inject(MockFaultRule(endpoint: .refreshApplicationSecret, appId: app, count: 1, fault: .delay(milliseconds: 3_000)))
            let (status, output) = try await harness.run(["rotate", "app0"])
            #expect(status == 0, "\(output)")
            let refreshes = harness.state.requestLog().filter { $0.sequence > mark && $0.path.hasSuffix("refresh-application-secret") }
            #expect(refreshes.count == 1, "one refresh, answered late and taken: \(refreshes.map(\.fault))")
            #expect(!text(log).contains("outcome_unknown"), "the old timeout cut the answer off")
            #expect(harness.output(0) == harness.state.currentSecret(appId: app))
        case .caFile:
            try await waitUntil(deadline: .seconds(30)) { harness.output(0) != nil }
            #expect(harness.output(0) == harness.state.currentSecret(appId: app))
            // A ca_file that is no longer PEM refuses the reload, naming the key; the daemon goes on.
            try writePrivate(try #require(keys.caFile), "not a certificate")
            let rejected = text(log).components(separatedBy: "config rejected").count
            kill(daemon.processIdentifier, SIGHUP)
            try await waitUntil(deadline: .seconds(30)) { text(log).components(separatedBy: "config rejected").count > rejected }
            #expect(text(log).contains("genauth.ca_file"))
            try #require(tls).trust(try #require(tls).serverCA)
            let (status, output) = try await harness.run(["rotate", "app0"])
            #expect(status == 0, "\(output)")
            #expect(harness.output(0) == harness.state.currentSecret(appId: app))
        case .metricsTextfile:
            let path = try #require(keys.metricsTextfile)
            try await waitUntil(deadline: .seconds(30)) { FileManager.default.fileExists(atPath: path) }
        }
        #expect(daemon.isRunning)
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    /// `requests_per_second` is the engine's budget: a reload changes the spacing of calls.
    @Test func aReloadedRequestRateIsTheEnginesNewBudget() async throws {
        try await withEngineFixture { _, fixture in
            var config = fixture.config()
            config.genauth.requestsPerSecond = 5
            let engine = fixture.engine(config: config)
            #expect(await engine.requestSpacing == .milliseconds(200))
            config.genauth.requestsPerSecond = 2
            await engine.apply(config)
            #expect(await engine.requestSpacing == .milliseconds(500))
        }
    }

    /// A call in flight when a reload replaces the client finishes on the old one (a refresh cut
    /// off would become an unknown outcome); the old client is shut down after it, and
    /// `shutdown()` waits for that.
    @Test func aReplacedClientFinishesItsCallThenShutsDown() async throws {
        try await withGenAuthHarness { harness in
            let settings = GenAuthSettings(
                host: harness.server.baseURL, flavour: .genauth, accessKeyID: harness.seed.accessKeys[0].accessKeyId,
                accessKeySecret: SecretValue(harness.seed.accessKeys[0].accessKeySecret), accessKeySecretSource: .inline,
                requestTimeout: .seconds(10), caFile: nil, requestsPerSecond: 100)
            let reloadable = ReloadableGenAuthClient(try GenAuthClient(configuration: GenAuthClientConfiguration(settings)))
            let app = GenAuthHarness.appId
            harness.state.inject(MockFaultRule(endpoint: .getApplicationSecret, appId: app, count: 1, fault: .delay(milliseconds: 500)))
            let inFlight = Task { try await reloadable.getApplicationSecret(appId: app) }
            try await waitUntil { harness.state.requestLog().contains { $0.path.hasSuffix("get-application-secret") } }
            let old = reloadable.client
            reloadable.replace(with: try reloadable.makeClient(settings))
            #expect(reloadable.client !== old)
            let secret = try await inFlight.value
            #expect(secret.exposed == harness.state.currentSecret(appId: app))
            let next = try await reloadable.getApplicationSecret(appId: app)
            #expect(next == secret, "the new client answers the next call")
            try await reloadable.shutdown()
            await #expect(throws: GenAuthError.self) { _ = try await old.getApplicationSecret(appId: app) }
        }
    }

    @Test func aNewRateMovesTheNextFreeSlot() {
        let start = ContinuousClock.now
        var schedule = SlotSchedule(requestsPerSecond: 10, start: start)
        #expect(schedule.reserve(now: start) == start)
        schedule.setRate(requestsPerSecond: 1, now: start)
        #expect(schedule.reserve(now: start) == start.advanced(by: .seconds(1)), "a lower rate holds the next caller back at once")
        // The slot at 1 s is not reached yet: given up (its caller takes a new one), so the next
        // free slot is one new spacing from now.
        schedule.setRate(requestsPerSecond: 4, now: start)
        #expect(schedule.reserve(now: start) == start.advanced(by: .milliseconds(250)))
        #expect(schedule.spacing == .milliseconds(250))
        // Slots far ahead (a slow rate handed them out) are given up when the rate goes up.
        var slow = SlotSchedule(requestsPerSecond: 0.01, start: start)
        for _ in 0..<5 { _ = slow.reserve(now: start) }
        slow.setRate(requestsPerSecond: 50, now: start)
        #expect(slow.reserve(now: start) == start.advanced(by: .milliseconds(20)))
    }

    /// A caller asleep until a slot of a slow rate wakes when a reload raises the rate.
    @Test func aRaisedRateReleasesCallersAlreadyWaiting() async {
        let limiter = RequestRateLimiter(requestsPerSecond: 0.001)
        await limiter.acquire()  // the first slot is now; the next is 1,000 s away
        let waiting = Task { await limiter.acquire() }
        // Whether the waiter has reserved yet or not, the raised rate lets it through.
        limiter.setRate(requestsPerSecond: 1_000)
        await waiting.value
        #expect(limiter.spacing == .milliseconds(1))
    }

    @Test func aRefusedClusterChangeNamesItsKeys() {
        let old = ClusterSettings(endpoints: ["http://127.0.0.1:2379"], prefix: "/p", host: "a")
        var new = old
        #expect(ClusterSettings.changedKeys(from: old, to: new).isEmpty)
        new.leaseTTL = .seconds(20)
        new.endpoints.append("http://127.0.0.1:2380")
        #expect(ClusterSettings.changedKeys(from: old, to: new) == ["endpoints", "lease_ttl"])
        #expect(ClusterSettings.changedKeys(from: old, to: nil) == ["[cluster]"])
        #expect(ClusterSettings.changedKeys(from: nil, to: nil).isEmpty)
    }

    // MARK: - Helpers

    private func write(_ harness: DaemonHarness, _ keys: GenAuthKeys, secretFile: String) throws {
        var text = """
            [genauth]
            host = "\(keys.host)"
            flavour = "\(keys.flavour)"
            access_key_id = "\(keys.accessKeyID)"
            access_key_secret_file = "\(secretFile)"
            request_timeout = "\(keys.requestTimeout)"
            requests_per_second = 200

            """
        if let caFile = keys.caFile { text += "ca_file = \"\(caFile)\"\n" }
        text += """

            [defaults]
            interval = "1h"
            directory = "\(harness.dropDirectory)"
            state_directory = "\(harness.stateDirectory)"
            mode = "0600"
            retry = { initial = "200ms", max = "1s" }

            [[app]]
            id = "\(DaemonHarness.appID(0))"
            name = "app0"

            """
        if let textfile = keys.metricsTextfile { text += "\n[metrics]\ntextfile = \"\(textfile)\"\n" }
        try writePrivate(harness.configPath, text)
    }

    private func writePrivate(_ path: String, _ text: String) throws {
        let temporary = path + ".new"
        _ = FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        #expect(rename(temporary, path) == 0)
    }

    private func text(_ log: URL) -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
}

/// Two CAs and a server certificate for 127.0.0.1 signed by one of them, made with Debian's
/// openssl(1) in a test's directory. `trust` writes a CA to the file the config names.
struct TLSFixture {
    let directory: URL
    var caFile: String { directory.appendingPathComponent("ca.pem").path }
    var serverCA: String { directory.appendingPathComponent("server-ca.pem").path }
    var unrelatedCA: String { directory.appendingPathComponent("unrelated-ca.pem").path }
    let serverConfiguration: TLSConfiguration

    init(directory parent: URL) throws {
        directory = parent.appendingPathComponent("tls")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory.path)'
            for ca in server-ca unrelated-ca; do
              openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key -out $ca.pem -days 2 -subj /CN=$ca
            done
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
            printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > server.ext
            openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            """
        let status = try runQuietly(script)
        guard status == 0 else { throw TLSFixtureError.opensslFailed(status) }
        let certificates = try NIOSSLCertificate.fromPEMFile(directory.appendingPathComponent("server.pem").path)
        let key = try NIOSSLPrivateKey(file: directory.appendingPathComponent("server.key").path, format: .pem)
        serverConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificates.map { .certificate($0) }, privateKey: .privateKey(key))
    }

    /// Replaces the content of `caFile` (same path, as an operator would) with `pem`'s.
    func trust(_ pem: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: pem))
        let temporary = caFile + ".new"
        _ = FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o644])
        guard rename(temporary, caFile) == 0 else { throw TLSFixtureError.cannotWrite(caFile) }
    }
}

enum TLSFixtureError: Error {
    case opensslFailed(Int32)
    case cannotWrite(String)
}
