import Foundation
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// `consumers`, `consumer_action`, `consumer_grace`: accepted, inherited from [defaults], and
/// every bad value a clear error at its key.
@Suite struct ConsumerConfigTests {
    static let head = """
        [genauth]
        access_key_id = "ak"
        [defaults]
        consumer_action = "restart"
        consumer_grace = "30s"

        """

    @Test func consumersAreReadWithTheirActionAndGrace() throws {
        let loaded = try ConfigFixtures.load(
            Self.head + """
                [[app]]
                id = "a1"
                name = "billing"
                consumers = ["billing.service", "worker@eu-1.service"]
                [[app]]
                id = "a2"
                name = "search"
                consumers = ["search.service"]
                consumer_action = "signal:SIGHUP"
                consumer_grace = "5m"
                [[app]]
                id = "a3"
                name = "plain"
                """)
        let apps = loaded.config.apps
        #expect(apps[0].consumers == ["billing.service", "worker@eu-1.service"])
        #expect(apps[0].consumerAction == .restart && apps[0].consumerGrace == .seconds(30), "from [defaults]")
        #expect(apps[1].consumerAction == .signal(SIGHUP) && apps[1].consumerGrace == .seconds(300))
        #expect(apps[2].consumers.isEmpty)
        let plan = ConfigPlan(loaded).renderTable()
        #expect(plan.contains("consumers billing.service, worker@eu-1.service  (restart over D-Bus; reported after 30s)"))
    }

    @Test(arguments: [
        ("consumers = [\"billing\"]", "app[0].consumers[0]", "is not a service unit"),
        ("consumers = [\"billing.socket\"]", "app[0].consumers[0]", "is not a service unit"),
        ("consumers = [\"bill ing.service\"]", "app[0].consumers[0]", "contains \" \""),
        ("consumers = [\"../x.service\"]", "app[0].consumers[0]", "contains \"/\""),
        ("consumers = [\"worker@.service\"]", "app[0].consumers[0]", "is a template"),
        ("consumers = [\"-x.service\"]", "app[0].consumers[0]", "cannot start with"),
        ("consumers = [\"a.service\", \"a.service\"]", "app[0].consumers[1]", "listed twice"),
        ("consumers = [\"\"]", "app[0].consumers[0]", "empty"),
        ("consumers = \"billing.service\"", "app[0].consumers", "an array of strings"),
        ("consumer_action = \"stop\"", "app[0].consumer_action", "is not one of"),
        ("consumer_action = \"signal:SIGKILL\"", "app[0].consumer_action", "is not one of"),
        ("consumer_grace = \"0s\"", "app[0].consumer_grace", "out of range"),
        ("consumer_grace = 30", "app[0].consumer_grace", "bare number"),
    ])
    func badValuesAreErrorsAtTheirKey(_ line: String, _ key: String, _ words: String) {
        let diagnostics = ConfigFixtures.diagnostics(
            """
            [genauth]
            access_key_id = "ak"
            [[app]]
            id = "a1"
            \(line)
            """)
        let match = diagnostics.first { $0.keyPath == key && $0.severity == .error }
        #expect(match?.message.contains(words) == true, "\(diagnostics.map(\.description))")
    }

    @Test func aConsumerActionWithoutConsumersIsAWarning() {
        let diagnostics = ConfigFixtures.diagnostics(
            """
            [genauth]
            access_key_id = "ak"
            [[app]]
            id = "a1"
            consumer_action = "restart"
            """)
        #expect(diagnostics.contains { $0.severity == .warning && $0.keyPath == "app[0].consumer_action" && $0.message.contains("no effect") })
    }

    @Test func aLongUnitNameIsRefused() {
        let name = String(repeating: "x", count: 260) + ".service"
        #expect(ConsumerSettings.unitNameProblem(name)?.contains("255-byte") == true)
    }

    @Test func aMissingUnitFailsCheckConfigAndNoBusIsAWarning() async throws {
        let loaded = try ConfigFixtures.load(
            Self.head + """
                [[app]]
                id = "a1"
                name = "billing"
                consumers = ["billing.service", "missing.service"]
                """)
        let found = await ConsumerUnitCheck.run(loaded.config, units: FakeSystemdUnits())
        #expect(found.errors.count == 1 && found.errors[0].contains("systemd has no unit missing.service"))
        struct NoBus: SystemdUnitManaging {
            func notify(unit: String, action: ConsumerAction, timeout: Duration) async -> UnitReport { UnitReport() }
            func inspect(unit: String) async -> UnitReport {
                var report = UnitReport()
                report.errno = -ENOENT
                report.errorMessage = "No such file or directory"
                return report
            }
        }
        let offline = await ConsumerUnitCheck.run(loaded.config, units: NoBus())
        #expect(offline.errors.isEmpty && offline.warnings.count == 1, "one warning for an unreachable bus, not one per unit")
    }

    /// The rule grants the daemon's user exactly the configured units with their verbs.
    @Test func thePolkitRuleNamesExactlyTheConfiguredUnitsAndVerbs() throws {
        let loaded = try ConfigFixtures.load(
            Self.head + """
                [[app]]
                id = "a1"
                name = "billing"
                consumers = ["billing.service"]
                consumer_action = "reload-or-restart"
                [[app]]
                id = "a2"
                name = "search"
                consumers = ["billing.service", "search\\\\x2d1.service"]
                consumer_action = "signal:SIGUSR1"
                """)
        let rule = PolkitRule.text(user: "secret-rotator", apps: loaded.config.apps, source: "/etc/secret-rotator/rotator.toml")
        #expect(rule.contains(#""billing.service": ["kill", "reload-or-try-restart"]"#))
        #expect(rule.contains(#""search\\x2d1.service": ["kill"]"#), "a backslash is escaped in the JavaScript string")
        #expect(rule.contains(#"subject.user !== "secret-rotator""#))
        #expect(rule.contains(#"action.id !== "org.freedesktop.systemd1.manage-units""#))
        #expect(rule.contains("hasOwnProperty"), "no inherited property (\"constructor\") can match")
        for verb in ["\"restart\"", "\"start\"", "\"stop\"", "\"reload-or-restart\""] {
            #expect(!rule.contains(verb), "never \(verb): a consumer is reloaded or restarted only if it runs")
        }
        let none = PolkitRule.text(user: "secret-rotator", apps: [], source: "x")
        #expect(!none.contains("\": [") && none.contains("polkit.Result.NOT_HANDLED"), "no consumers: a rule that grants nothing")
    }
}
