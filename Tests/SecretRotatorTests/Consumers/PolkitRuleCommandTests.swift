import Foundation
import Testing

@testable import SecretRotator

/// `secret-rotator polkit-rule`, run as the unit runs it (root): what it writes, what it never
/// touches, and which files it trusts.
@Suite struct PolkitRuleCommandTests {
    static let config = """
        [genauth]
        access_key_id = "ak"
        access_key_secret_credential = "genauth-access-key-secret"
        [defaults]
        state_directory = "/var/lib/secret-rotator-test-unused"
        [[app]]
        id = "a1"
        name = "billing"
        consumers = ["billing.service"]
        """

    /// A root-owned 0600 config and a rules directory in a fresh 0700 directory.
    static func fixture(_ text: String = config) throws -> (directory: URL, config: String, rules: URL) {
        let directory = try ConfigFixtures.temporaryDirectory()
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        let config = directory.appendingPathComponent("rotator.toml")
        try ConfigFixtures.write(text, to: config)
        let rules = directory.appendingPathComponent("rules.d")
        try FileManager.default.createDirectory(at: rules, withIntermediateDirectories: false)
        return (directory, config.path, rules)
    }

    @Test func writesTheRuleWithItsModeAndGrantsOnlyTheConfiguredUnit() throws {
        let (directory, config, rules) = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = rules.appendingPathComponent("60-secret-rotator.rules").path
        let result = try CLI.run(["polkit-rule", "--config", config, "--user", "root", "--write", target])
        #expect(result.status == 0, "\(result.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: target)
        #expect((attributes[.posixPermissions] as? Int) == 0o644)
        let rule = try String(contentsOfFile: target, encoding: .utf8)
        #expect(rule.contains(#""billing.service": ["reload-or-try-restart"]"#))
        #expect(rule.contains(#"subject.user !== "root""#))
    }

    /// An invalid config leaves the rule as it was (the daemon keeps the config it was made
    /// from), and a directory given as the target is never removed (it once was, recursively).
    @Test func anInvalidConfigChangesNothing() throws {
        let (directory, config, rules) = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = rules.appendingPathComponent("60-secret-rotator.rules").path
        #expect(try CLI.run(["polkit-rule", "--config", config, "--user", "root", "--write", target]).status == 0)
        let before = try String(contentsOfFile: target, encoding: .utf8)
        try ConfigFixtures.write(Self.config + "\nconsumer_action = \"stop\"\n", to: URL(fileURLWithPath: config))
        let other = rules.appendingPathComponent("50-other.rules")
        try ConfigFixtures.write("keep", to: other)
        for path in [target, rules.path, rules.path + "/"] {
            let result = try CLI.run(["polkit-rule", "--config", config, "--user", "root", "--write", path])
            #expect(result.status == 78, "\(path): \(result.stderr)")
            #expect(result.stderr.contains("left unchanged"))
        }
        #expect(try String(contentsOfFile: target, encoding: .utf8) == before)
        #expect(FileManager.default.fileExists(atPath: other.path), "the directory and its other rules are untouched")
    }

    @Test func aMissingDirectoryIsAnErrorForAnExplicitPath() throws {
        let (directory, config, _) = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CLI.run(
            ["polkit-rule", "--config", config, "--user", "root", "--write", directory.appendingPathComponent("typo/x.rules").path])
        #expect(result.status == 73)
        #expect(result.stderr.contains("is not a directory"))
    }

    /// The daemon trusts a config owned by its own user; root preparing for it must too.
    @Test func aConfigOwnedByTheDaemonsUserIsTrusted() throws {
        let (directory, config, rules) = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        guard let nobody = getpwnam("nobody") else { return }
        #expect(chown(config, nobody.pointee.pw_uid, 0) == 0)
        let target = rules.appendingPathComponent("r.rules").path
        let asNobody = try CLI.run(["polkit-rule", "--config", config, "--user", "nobody", "--write", target])
        #expect(asNobody.status == 0, "\(asNobody.stderr)")
        let asRoot = try CLI.run(["polkit-rule", "--config", config, "--user", "root", "--write", target])
        #expect(asRoot.status == 78, "owned by a user that is not the daemon's: refused")
    }

    /// A config path cannot add code to the rule through its comment line.
    @Test func theConfigPathIsQuotedInTheRule() {
        let rule = PolkitRule.text(user: "secret-rotator", apps: [], source: "/tmp/x\npolkit.addRule(function(){return polkit.Result.YES;});//\u{2028}y")
        let lines = rule.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("polkit.addRule(") }.count == 1, "one rule only")
        #expect(lines.filter { $0.contains("/tmp/x") }.allSatisfy { $0.hasPrefix("//") }, "the path stays in its comment")
        #expect(!rule.contains("\u{2028}"))
    }

    @Test func anAliasIsRefusedByCheckConfig() async throws {
        let loaded = try ConfigFixtures.load(Self.config)
        struct Aliasing: SystemdUnitManaging {
            func notify(unit: String, action: ConsumerAction, timeout: Duration) async -> UnitReport { UnitReport() }
            func inspect(unit: String) async -> UnitReport {
                var report = UnitReport()
                report.loadState = "loaded"
                report.id = "mariadb.service"
                return report
            }
        }
        let found = await ConsumerUnitCheck.run(loaded.config, units: Aliasing())
        #expect(found.errors == ["app billing (rotator.toml:6): consumers: billing.service is an alias of mariadb.service; name mariadb.service (systemd asks polkit about a unit by its own name)"])
    }

    @Test func aSignalToAStoppedUnitIsNotRunning() {
        var report = UnitReport()
        report.errno = -ESRCH
        report.errorName = "org.freedesktop.systemd1.NoSuchProcess"
        report.errorMessage = "No main process to kill"
        report.loadState = "loaded"
        report.activeState = "inactive"
        let outcome = ConsumerPickup.judge(report, action: .signal(SIGHUP), unit: "x.service", notifiedAt: Date())
        #expect(outcome.state == .notRunning)
        var noBus = UnitReport()
        noBus.errno = -ENOENT
        noBus.errorMessage = "No such file or directory"
        #expect(
            ConsumerPickup.judge(noBus, action: .reloadOrRestart, unit: "x.service", notifiedAt: Date()).detail
                == "cannot reach systemd over the system bus: No such file or directory")
    }
}
