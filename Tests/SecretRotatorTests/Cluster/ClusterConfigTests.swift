import Foundation
import Testing

@testable import SecretRotator

/// `[cluster]`: read with defaults, every bad value refused with a specific error.
@Suite struct ClusterConfigTests {
    private static let head = """
        [genauth]
        access_key_id = "62a1b2c3d4e5f60718293a4b"
        [[app]]
        id = "app-1"
        name = "one"

        """

    @Test func defaultsAndCheckConfig() throws {
        let loaded = try ConfigFixtures.load(Self.head + "[cluster]\nendpoints = [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nhost = \"web-1\"\n")
        let cluster = try #require(loaded.config.cluster)
        #expect(cluster.prefix == "/secret-rotator/62a1b2c3d4e5f60718293a4b")
        #expect(cluster.leaseTTL == .seconds(10))
        #expect(cluster.group == "default")
        #expect(cluster.electionName == "/secret-rotator/62a1b2c3d4e5f60718293a4b/election/default")
        #expect(cluster.noticeKey(appID: "app-1") == "/secret-rotator/62a1b2c3d4e5f60718293a4b/apps/app-1")
        let table = ConfigPlan(loaded).renderTable()
        #expect(table.contains("Cluster       etcd http://10.0.0.1:2379, http://10.0.0.2:2379"))
        #expect(table.contains("1 rotate app is a candidate"))
        #expect(try ConfigFixtures.load(Self.head).config.cluster == nil)
    }

    static let bad: [(String, String, String)] = [
        ("no endpoints", "[cluster]\nhost = \"a\"\n", "needs endpoints"),
        ("empty endpoints", "[cluster]\nendpoints = []\n", "needs endpoints"),
        ("not a URL", "[cluster]\nendpoints = [\"10.0.0.1:2379\"]\n", "not an http:// or https:// URL"),
        ("a path", "[cluster]\nendpoints = [\"http://10.0.0.1:2379/v3\"]\n", "no path"),
        ("no port", "[cluster]\nendpoints = [\"http://etcd\"]\n", "has no port"),
        ("mixed", "[cluster]\nendpoints = [\"http://a:1\", \"https://b:2\"]\n", "mixes http and https"),
        ("twice", "[cluster]\nendpoints = [\"http://a:1\", \"http://a:1\"]\n", "twice"),
        ("ttl too short", "[cluster]\nendpoints = [\"http://a:1\"]\nlease_ttl = \"1s\"\n", "not whole seconds from 2s to 5m"),
        ("ttl fraction", "[cluster]\nendpoints = [\"http://a:1\"]\nlease_ttl = \"2500ms\"\n", "not whole seconds"),
        ("ttl bare number", "[cluster]\nendpoints = [\"http://a:1\"]\nlease_ttl = 10\n", "bare number"),
        ("prefix relative", "[cluster]\nendpoints = [\"http://a:1\"]\nprefix = \"fleet\"\n", "must start with /"),
        ("prefix slash", "[cluster]\nendpoints = [\"http://a:1\"]\nprefix = \"/fleet/\"\n", "must not end with /"),
        ("host with space", "[cluster]\nendpoints = [\"http://a:1\"]\nhost = \"web 1\"\n", "not a valid host name"),
        ("group unicode", "[cluster]\nendpoints = [\"http://a:1\"]\ngroup = \"gr\u{202E}oup\"\n", "not a valid group name"),
        ("unknown key", "[cluster]\nendpoints = [\"http://a:1\"]\nttl = \"5s\"\n", "ttl"),
        ("tls on http", "[cluster]\nendpoints = [\"http://a:1\"]\nca_file = \"/nonexistent/ca.pem\"\n", "ca_file"),
    ]

    @Test(arguments: bad)
    func badValuesAreRefused(name: String, table: String, message: String) {
        let diagnostics = ConfigFixtures.diagnostics(Self.head + table)
        let errors = diagnostics.filter { $0.severity == .error }
        #expect(!errors.isEmpty, "\(name)")
        #expect(errors.contains { $0.description.contains(message) }, "\(name): \(errors.map(\.description))")
    }

    /// A client certificate without its key, and TLS files that are not PEM, are refused.
    @Test func tlsFilesAreChecked() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("client.pem")
        let notPEM = directory.appendingPathComponent("ca.pem")
        try ConfigFixtures.write("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", to: cert)
        try ConfigFixtures.write("hello", to: notPEM)
        let withoutKey = ConfigFixtures.diagnostics(
            Self.head + "[cluster]\nendpoints = [\"https://a:1\"]\ncert_file = \"\(cert.path)\"\n")
        #expect(withoutKey.contains { $0.description.contains("cert_file and key_file go together") })
        let garbage = ConfigFixtures.diagnostics(Self.head + "[cluster]\nendpoints = [\"https://a:1\"]\nca_file = \"\(notPEM.path)\"\n")
        #expect(garbage.contains { $0.description.contains("holds no PEM certificate block") })
    }

    /// An etcd user comes with a password source and the other way round; the password is read
    /// from the credential inside the unit, from a private file outside it, and never shown.
    @Test func etcdUserAndPassword() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try ConfigFixtures.write("file-pw\n", to: directory.appendingPathComponent("etcd-password"))
        try ConfigFixtures.write("credential-pw\n", to: directory.appendingPathComponent("etcd-password-credential"))
        try ConfigFixtures.write("open-pw\n", to: directory.appendingPathComponent("open"), mode: 0o644)
        let table = Self.head + "[cluster]\nendpoints = [\"http://a:1\"]\nprefix = \"/fleet\"\n"
        let both = table + "user = \"rotator\"\npassword_credential = \"etcd-password-credential\"\npassword_file = \"\(directory.path)/etcd-password\"\n"

        let fromFile = try #require(try ConfigFixtures.load(both).config.cluster)
        #expect(fromFile.user == "rotator" && fromFile.password?.exposed == "file-pw")
        #expect(fromFile.passwordSource == .file(path: "\(directory.path)/etcd-password"))
        let inUnit = ConfigFixtures.environment.merging(["CREDENTIALS_DIRECTORY": directory.path]) { $1 }
        let fromCredential = try #require(try ConfigFixtures.load(both, environment: inUnit).config.cluster)
        #expect(fromCredential.password?.exposed == "credential-pw")

        let plan = ConfigPlan(try ConfigFixtures.load(both)).renderTable()
        #expect(plan.contains("etcd user rotator, password from file \(directory.path)/etcd-password"))
        #expect(plan.contains("--prefix=true readwrite /fleet/") && !plan.contains("file-pw"))

        // check-config from a shell: a credential-only password is not checked, with a warning.
        let credentialOnly = table + "user = \"rotator\"\npassword_credential = \"etcd-password\"\n"
        let looking = try ConfigLoader(environment: ConfigFixtures.environment, accessKeySecretNeeded: false)
            .load(text: credentialOnly, path: "rotator.toml", fileMode: nil)
        #expect(looking.warnings.contains { $0.keyPath == "cluster.password_credential" && $0.message.contains("not checked") })
        #expect(ConfigFixtures.diagnostics(credentialOnly).contains { $0.message.contains("$CREDENTIALS_DIRECTORY is not set") })

        let refused: [(String, String, String)] = [
            ("user = \"rotator\"\n", "cluster.user", "etcd user \"rotator\" has no password source"),
            ("password_file = \"\(directory.path)/etcd-password\"\n", "cluster.password_file", "a password is set but no user"),
            ("user = \"rotator\"\npassword_file = \"\(directory.path)/open\"\n", "cluster.password_file", "readable by every user"),
            ("user = \"ro tator\"\npassword_file = \"\(directory.path)/etcd-password\"\n", "cluster.user", "not an etcd user name"),
            ("user = \"rotator\"\npassword_credential = \"../x\"\n", "cluster.password_credential", "not a credential name"),
        ]
        for (lines, key, message) in refused {
            let errors = ConfigFixtures.diagnostics(table + lines).filter { $0.severity == .error }
            #expect(errors.contains { $0.keyPath == key && $0.message.contains(message) }, "\(lines): \(errors.map(\.description))")
            #expect(!errors.contains { $0.message.contains("-pw") })
        }

        // A running daemon keeps the password it started with: a new one needs a restart.
        var changed = fromFile
        changed.password = SecretValue("other")
        #expect(ClusterSettings.changedKeys(from: fromFile, to: changed) == ["password"])
    }

    /// Notices from other hosts are untrusted input: anything but the exact shape is refused.
    @Test func noticesDecodeStrictly() {
        let notice = RotationNotice(version: 3, rotatedAt: Date(timeIntervalSince1970: 1_800_000_000.125), host: "web-1")
        let bytes = ClusterRecordCoding.encode(notice)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"host":"web-1","rotated_at":"2027-01-15T08:00:00.125Z","version":3}"#)
        #expect(ClusterRecordCoding.decode(RotationNotice.self, from: bytes) == notice)
        for junk in ["", "null", "[]", "{\"version\":\"3\",\"rotated_at\":\"x\",\"host\":\"a\"}", "{\"version\":1,\"host\":\"a\"}",
            "{\"version\":1,\"rotated_at\":\"yesterday\",\"host\":\"a\"}"]
        {
            #expect(ClusterRecordCoding.decode(RotationNotice.self, from: Array(junk.utf8)) == nil, "\(junk)")
        }
        #expect(ClusterRecordCoding.decode(RotationNotice.self, from: Array(repeating: 0x20, count: 5000)) == nil)
    }
}
