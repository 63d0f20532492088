import Foundation
import Testing

@testable import SecretRotator

/// What `plan` lists, from a fixed clock: windows, repeats, retries and first starts.
@Suite struct PlanForecastTests {
    let now = Date(timeIntervalSince1970: 1_796_472_000)  // Saturday 2026-12-05 12:00 UTC

    func app(
        _ id: String, action: AppAction = .rotate, interval: Duration = .seconds(86_400), firstStart: FirstStart = .fetch,
        hook: [String]? = nil
    ) throws -> AppConfig {
        var app = AppConfig(
            id: id, name: id, action: action, interval: interval, jitter: .zero, firstStart: firstStart, onRotate: hook,
            hookTimeout: .seconds(60), outputs: [])
        app.window = try RotationWindow.parse("* 02:00-03:00 UTC")
        return app
    }

    func state(_ id: String, obtained: String) throws -> AppState {
        var state = AppState(appID: id)
        state.version = 3
        state.hookDoneVersion = 3
        state.secretObtainedAt = try utc(obtained)
        state.lastChecked = try utc(obtained)
        return state
    }

    @Test func listsWindowedRotationsPollsRetriesAndFirstStartsByTime() throws {
        #expect(now == (try utc("2026-12-05T12:00:00Z")))
        var owed = try state("retried", obtained: "2026-12-05T02:10:00Z")
        owed.rotationOwed = true
        owed.consecutiveFailures = 1
        owed.nextAttempt = now.addingTimeInterval(300)
        let apps = [
            try app("billing", hook: ["/usr/bin/systemctl", "reload", "billing.service"]),
            try app("mirror", action: .follow, interval: .seconds(43_200)),
            try app("fresh", firstStart: .rotate),
            try app("retried"),
        ]
        let states = [
            "billing": try state("billing", obtained: "2026-12-04T10:00:00Z"),
            "mirror": try state("mirror", obtained: "2026-12-05T11:00:00Z"),
            "retried": owed,
        ]
        let forecast = RotationForecast(apps: apps, states: states, now: now, days: 3)
        let lines = forecast.entries.map { entry in
            "\(entry.at.formatted(.iso8601)) \(entry.app) \(entry.kind.rawValue) \(entry.reason) \(entry.consumers.joined(separator: ","))"
        }
        #expect(
            lines == [
                "2026-12-05T12:00:00Z fresh rotate first start ",
                "2026-12-05T12:05:00Z retried rotate retry ",
                "2026-12-05T23:00:00Z mirror poll scheduled ",
                "2026-12-06T02:00:00Z billing rotate scheduled /usr/bin/systemctl",
                "2026-12-06T11:00:00Z mirror poll scheduled ",
                "2026-12-06T23:00:00Z mirror poll scheduled ",
                "2026-12-07T02:00:00Z billing rotate scheduled /usr/bin/systemctl",
                "2026-12-07T02:00:00Z fresh rotate scheduled ",
                "2026-12-07T02:00:00Z retried rotate scheduled ",
                "2026-12-07T11:00:00Z mirror poll scheduled ",
                "2026-12-07T23:00:00Z mirror poll scheduled ",
                "2026-12-08T02:00:00Z billing rotate scheduled /usr/bin/systemctl",
                "2026-12-08T02:00:00Z fresh rotate scheduled ",
                "2026-12-08T02:00:00Z retried rotate scheduled ",
                "2026-12-08T11:00:00Z mirror poll scheduled ",
            ], "\(lines.joined(separator: "\n"))")
        #expect(forecast.entries.first { $0.app == "billing" }?.local == "Sun 02:00 UTC")
        #expect(forecast.entries.first { $0.app == "mirror" }?.local == nil, "a follow app's polls have no window")
        #expect(forecast.truncatedApps.isEmpty)
        #expect(RotationForecast.consumers(of: apps[0]) == ["/usr/bin/systemctl"])
        var withUnits = apps[0]
        withUnits.consumers = ["billing.service", "worker@1.service"]
        #expect(RotationForecast.consumers(of: withUnits) == ["billing.service", "worker@1.service", "/usr/bin/systemctl"])
    }

    @Test func aShortIntervalIsCappedPerApp() throws {
        var fast = try app("fast", interval: .seconds(60))
        fast.window = nil
        let forecast = RotationForecast(apps: [fast], states: ["fast": try state("fast", obtained: "2026-12-05T12:00:00Z")], now: now, days: 1)
        #expect(forecast.entries.count == RotationForecast.perAppLimit)
        #expect(forecast.truncatedApps == ["fast"])
    }
}

/// `secret-rotator plan` as an operator runs it: config and state directory, read-only.
@Suite struct PlanCommandTests {
    @Test func printsTheRotationsOfTheNextDaysFromConfigAndState() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let stateDirectory = directory.appendingPathComponent("state").path
        let path = directory.appendingPathComponent("rotator.toml").path
        try ConfigFixtures.write(
            """
            [genauth]
            access_key_id = "ak-plan"
            [defaults]
            directory = "\(directory.path)/drop"
            state_directory = "\(stateDirectory)"
            interval = "1d"
            window = "* 02:00-03:00 UTC"
            [[app]]
            id = "app-plan-1"
            name = "billing"
            on_rotate = ["/bin/true"]
            [[app]]
            id = "app-plan-2"
            name = "search"
            window = "always"
            """, to: URL(fileURLWithPath: path))
        let store = StateDirectory(path: stateDirectory)
        try store.prepare()
        for id in ["app-plan-1", "app-plan-2"] {
            var state = AppState(appID: id)
            state.version = 2
            state.hookDoneVersion = 2
            state.secretObtainedAt = Date().addingTimeInterval(-2 * 86_400)
            try store.saveState(state)
        }
        let environment = [ConfigSchema.accessKeySecretVariable: "unused"]

        let json = try CLI.run(["plan", "--config", path, "--days", "3", "--json"], environment: environment)
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let entries = try #require(object["entries"] as? [[String: Any]])
        let billing = entries.filter { $0["app"] as? String == "billing" }
        #expect((3...4).contains(billing.count), "\(billing)")
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        for entry in billing {
            let at = try Date(try #require(entry["at"] as? String), strategy: .iso8601)
            #expect(calendar.component(.hour, from: at) == 2, "inside the window: \(entry)")
            #expect(entry["kind"] as? String == "rotate")
            #expect(entry["consumers"] as? [String] == ["/bin/true"])
        }
        // "always": overdue, so due now, then every day at the same time, never held.
        let search = entries.filter { $0["app"] as? String == "search" }
        #expect((3...4).contains(search.count), "\(search)")
        let times = entries.compactMap { $0["at"] as? String }
        #expect(times == times.sorted(), "sorted by time")

        let text = try CLI.run(["plan", "--config", path, "--days", "3"], environment: environment)
        #expect(text.status == 0, "\(text.stderr)")
        let billingLines = text.stdout.split(separator: "\n").filter { $0.contains(" billing ") }
        #expect(billingLines.count == billing.count, "\(text.stdout)")
        #expect(billingLines.allSatisfy { $0.contains("T02:") && $0.contains(" UTC") && $0.contains("rotate") && $0.contains("/bin/true") })
        #expect(text.stdout.contains("in the next 3 days"))
    }

    /// A follow app polling every minute would fill the printed lines: its polls are left out
    /// of the text, never a rotation.
    @Test func manyPollsDoNotHideRotations() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("rotator.toml").path
        try ConfigFixtures.write(
            """
            [genauth]
            access_key_id = "ak-plan"
            [defaults]
            directory = "\(directory.path)/drop"
            state_directory = "\(directory.path)/state"
            [[app]]
            id = "app-poll"
            name = "mirror"
            action = "follow"
            interval = "1m"
            [[app]]
            id = "app-daily"
            name = "daily"
            interval = "1d"
            """, to: URL(fileURLWithPath: path))
        let result = try CLI.run(["plan", "--config", path, "--days", "5"], environment: [ConfigSchema.accessKeySecretVariable: "unused"])
        #expect(result.status == 0, "\(result.stderr)")
        // Never ran: a first fetch now, then one rotation a day.
        #expect(result.stdout.split(separator: "\n").filter { $0.contains(" daily ") }.count == 6, "\(result.stdout)")
        #expect(!result.stdout.contains(" mirror  app-poll  poll"))
        #expect(result.stdout.contains("999 polls of follow apps not shown"), "\(result.stdout.suffix(400))")
        #expect(result.stdout.contains("Only the first 1000 steps are listed for mirror."))
    }

    @Test func badArgumentsExit64BadConfigExits78AndHelpExplains() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("rotator.toml").path
        try ConfigFixtures.write(
            "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a\"\nwindow = \"Mon 02:00-04:00 Mars/Olympus\"\n",
            to: URL(fileURLWithPath: path))
        let bad = try CLI.run(["plan", "--config", path], environment: [ConfigSchema.accessKeySecretVariable: "unused"])
        #expect(bad.status == 78)
        #expect(bad.stderr.contains("app[0].window: unknown time zone \"Mars/Olympus\""), "\(bad.stderr)")
        for days in ["0", "367", "soon"] {
            #expect(try CLI.run(["plan", "--config", path, "--days", days]).status == 64, "--days \(days)")
        }
        let help = try CLI.run(["plan", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--days") && help.stdout.contains("78") && help.stdout.contains("window"))
        #expect(try CLI.run(["--help"]).stdout.contains("plan"))
    }
}
