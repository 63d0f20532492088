import ArgumentParser
import SecretRotator

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what rotates when over the next days, windows included.",
        discussion: """
            Reads the config and the state directory (read-only, as `status` does; the daemon \
            need not run) and prints one line per step that falls due in the next --days days, \
            by time: the time in UTC (ISO 8601) and on the wall clock of the app's window, the \
            app, what happens (rotate: GenAuth replaces the secret and the old one dies at \
            once; poll: a follow app reads the current secret; fetch: a first start writes the \
            current secret) and the consumers a rotation touches (the systemd units in its \
            consumers, then the program of its on_rotate hook).

            Each app's next step is planned as the daemon plans it, from its secret's age, its \
            interval and jitter, and its window (a scheduled rotation outside the window waits \
            for the next opening); then it repeats every interval, as if each step succeeded \
            on time. A retried rotation and a first start are not held to the window; neither \
            is an operator's `rotate`, which is not shown. Steps already due are shown at the \
            current time. At most \(RotationForecast.perAppLimit) entries per app, and \
            \(PlanCommand.printLimit) lines without --json (polls are left out first).

            Exit status: 0 the plan was printed, 64 bad arguments, 78 invalid config.
            """)

    /// Lines printed without --json; the rest is counted, and --json lists everything.
    static let printLimit = 500

    @OptionGroup var configOption: ConfigOption

    @OptionGroup var stateDirectoryOption: StateDirectoryOption

    @Option(help: ArgumentHelp("How many days ahead to plan, 1 to 366.", valueName: "days"))
    var days = 7

    @Flag(name: .long, help: "Print the plan as JSON on stdout, for scripts.")
    var json = false

    func validate() throws {
        guard (1...366).contains(days) else {
            throw ValidationError("--days: \(days) is out of range; give 1 to 366 days")
        }
    }

    func run() throws {
        let config = try configOption.loadConfig(with: ConfigLoader.withoutAccessKeySecret(), printWarnings: false)
        let directory = stateDirectoryOption.path(for: config)
        let inspected = StateDirectory(path: directory).inspect(appIDs: config.apps.map(\.id))
        var problems = inspected.problems
        for (id, found) in inspected.apps.sorted(by: { $0.key < $1.key }) where !found.problems.isEmpty {
            problems += found.problems.map { "\(id): \($0)" }
        }
        for problem in problems {
            StandardError.write("secret-rotator: warning: \(problem); planned as if that app never ran")
        }
        let cluster = config.cluster == nil ? nil : ClusterStatus.read(stateDirectory: directory)
        let now = Date()
        let forecast = RotationForecast(
            apps: config.apps, states: inspected.apps.compactMapValues(\.state), now: now, days: days,
            scheduleAs: { StatusReport.scheduledApp($0, config: config, cluster: cluster) })
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(forecast), as: UTF8.self))
            return
        }
        print(Self.render(forecast, days: days))
    }

    /// The table, at most `printLimit` rows, then a line that says what was left out.
    static func render(_ forecast: RotationForecast, days: Int) -> String {
        let horizon = "\(forecast.from.formatted(.iso8601)) .. \(forecast.until.formatted(.iso8601))"
        guard !forecast.entries.isEmpty else {
            return "Nothing falls due in the next \(Plural.count(days, "day")) (\(horizon))."
        }
        // Rotations are what the plan is for: when the lines would overflow, the polls of
        // follow apps (which change no secret) go first, so no rotation hides behind them.
        var shown = forecast.entries
        var polls = 0
        if shown.count > printLimit {
            polls = shown.filter { $0.kind == .poll }.count
            shown.removeAll { $0.kind == .poll }
        }
        let rows = shown.prefix(printLimit).map { entry in
            [
                entry.at.formatted(.iso8601), entry.local ?? "-", entry.app, entry.appID, entry.kind.rawValue,
                entry.reason, entry.consumers.isEmpty ? "-" : entry.consumers.joined(separator: ", "),
            ]
        }
        var lines = TextTable(header: ["WHEN (UTC)", "WINDOW TIME", "APP", "ID", "ACTION", "WHY", "CONSUMERS"], rows: rows)
            .renderLines()
        lines.append("")
        let rotations = forecast.entries.filter { $0.kind == .rotate }.count
        lines.append("\(Plural.count(forecast.entries.count, "step")) (\(Plural.count(rotations, "rotation"))) in the next \(Plural.count(days, "day")) (\(horizon)).")
        if polls > 0 {
            lines.append("\(Plural.count(polls, "poll")) of follow apps not shown, to keep the rotations in view; --json lists them.")
        }
        if shown.count > printLimit {
            lines.append("\(shown.count - printLimit) more not shown; use --json for all, or fewer --days.")
        }
        if !forecast.truncatedApps.isEmpty {
            lines.append(
                "Only the first \(RotationForecast.perAppLimit) steps are listed for \(forecast.truncatedApps.joined(separator: ", ")).")
        }
        return lines.joined(separator: "\n")
    }
}
