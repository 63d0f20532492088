import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SecretRotator
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each app's rotation state, and exit non-zero when one needs attention.",
        discussion: """
            Reads the config and the state directory (the daemon's journal) and shows, per app, \
            the version held, when that secret was obtained, when the next step is due, and \
            anything that needs a look. Every output is compared with the held secret as the \
            daemon would write it (content, mode, owner, group). Works whether or not the \
            daemon runs, changes nothing on disk, never prints a secret and never reads the \
            access key secret. The state directory is private to the daemon's user: run it as \
            root or as that user.

            An app is healthy when it has a secret, every output holds it as configured, its \
            last attempt did not fail, and its next step is not overdue by more than the grace \
            period (--grace; default 10 % of the app's interval, at least 10m). A stopped \
            daemon shows as overdue once its apps fall due. An app with a rotation window \
            falls due at its window's next opening (plus its jitter spread), so waiting for the \
            window is not overdue; the next opening is shown.

            Exit status (the worst app decides): 0 every app healthy, 1 an app's last attempt \
            failed (its secret is still valid), 2 an app is overdue or has never obtained a \
            secret, 3 an output is missing or not as configured, 4 the state or an output could \
            not be read, 5 a consumer unit is not confirmed on the current secret after \
            consumer_grace (it may use a secret GenAuth killed; a stopped unit is "not running", \
            not a problem), 64 bad arguments or an unknown app, 77 the state directory cannot be \
            read (run as root or the daemon's user), 78 invalid config.
            With --nagios: one line and the Monitoring Plugins codes 0 OK, 1 WARNING (failing), \
            2 CRITICAL (overdue, never obtained, outputs, consumers), 3 UNKNOWN (anything else).
            """)

    @OptionGroup var configOption: ConfigOption

    @OptionGroup var stateDirectoryOption: StateDirectoryOption

    @Argument(
        help: ArgumentHelp("Only these apps (names or ids); default every app.", valueName: "app"),
        completion: .custom(AppNameCompletion.complete))
    var apps: [String] = []

    @Option(help: ArgumentHelp("How long past its due time a step may be pending, e.g. 30m.", valueName: "duration"))
    var grace: String?

    @Flag(name: .long, help: "Print the status as JSON on stdout, for scripts and monitoring.")
    var json = false

    @Flag(name: .long, help: "One line with perfdata and Monitoring Plugins exit codes (Nagios, Icinga, Sensu).")
    var nagios = false

    func validate() throws {
        if json && nagios { throw ValidationError("--json and --nagios cannot be combined; choose one output") }
        if let grace {
            do {
                _ = try parsedDuration(grace, option: "--grace")
            } catch let error as ValidationError where nagios {
                // Monitoring Plugins: a bad argument is UNKNOWN (3), on one line.
                print("SECRET-ROTATOR UNKNOWN - \(error.message)")
                throw ExitCode(3)
            }
        }
    }

    func run() throws {
        do {
            try report()
        } catch let exit as ExitCode where nagios && !(0...3).contains(exit.rawValue) {
            // Monitoring Plugins: anything that prevents a verdict is UNKNOWN, never 78.
            throw ExitCode(3)
        }
    }

    private func report() throws {
        let full = try configOption.loadConfig(
            with: ConfigLoader.withoutAccessKeySecret(), printWarnings: false,
            onError: nagios || json
                ? { error in
                    StatusFailure.report(
                        "config \(configOption.path) is not valid: \(error.errors.first?.description ?? "see check-config")",
                        exitStatus: 78, json: json, nagios: nagios, diagnostics: error.diagnostics)
                } : nil)
        var config = full
        switch AppSelection.resolve(apps, in: full) {
        case .success(let selected):
            if !apps.isEmpty { config.apps = selected }
        case .failure(let message):
            StatusFailure.report(message.text, exitStatus: 64, json: json, nagios: nagios)
            throw ExitCode(64)
        }
        let directory = stateDirectoryOption.path(for: config)
        let exists = try checkReadable(directory)
        let now = Date()
        let report = StatusReport.read(
            config: config, stateDirectory: StateDirectory(path: directory), now: now,
            grace: try grace.map { try parsedDuration($0, option: "--grace") },
            outputWriter: StateDirectoryOption.daemonAccount(stateDirectory: directory), checkOutputs: true)
        let daemon = StateDirectoryLock.holder(stateDirectory: directory)
        if nagios {
            let line = MonitoringPluginLine(report: report, daemonRunning: daemon != nil, now: now)
            print(line.text)
            throw ExitCode(line.state)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            let document = Document(
                stateDirectory: directory, daemonPID: daemon.map(Int.init), verdict: report.verdict,
                exitStatus: report.verdict.rawValue, apps: report.apps,
                stateDirectoryProblems: report.stateDirectoryProblems, cluster: report.cluster)
            print(String(decoding: try encoder.encode(document), as: UTF8.self))
        } else {
            var heading = "State directory \(directory)"
            heading += exists ? "" : " (does not exist yet: nothing has run with it)"
            heading += daemon.map { " · daemon running (PID \($0))" } ?? " · daemon not running"
            print(heading + "\n")
            print(report.apps.isEmpty ? "No apps configured." : report.render(now: now))
            print("\n" + Self.summary(report))
        }
        if report.verdict != .ok { throw ExitCode(report.verdict.rawValue) }
    }

    /// "3 apps: 2 ok, 1 failing": the last line, so that 200 apps end with the answer.
    static func summary(_ report: StatusReport) -> String {
        let verdicts = report.apps.map(\.health.verdict)
        var parts: [String] = []
        for verdict in AppHealth.Verdict.listed {
            let count = verdicts.filter { $0 == verdict }.count
            if count > 0 { parts.append("\(count) \(verdict.word)") }
        }
        let head = Plural.count(report.apps.count, "app")
        return parts.isEmpty ? head : "\(head): \(parts.joined(separator: ", ")) (exit \(report.verdict.rawValue))"
    }

    private struct Document: Encodable {
        let stateDirectory: String
        let daemonPID: Int?
        let verdict: AppHealth.Verdict
        let exitStatus: Int32
        let apps: [StatusReport.App]
        let stateDirectoryProblems: [String]
        /// `[cluster]` only: role, leader, lease, watch and last notices.
        let cluster: ClusterStatus?
    }

    /// A missing directory is a valid answer (never run); one we may not read is an error, so
    /// that "no state" is never shown just because of permissions.
    private func checkReadable(_ directory: String) throws -> Bool {
        var status = stat()
        if stat(directory, &status) == 0, status.st_mode & S_IFMT != S_IFDIR {
            StatusFailure.report("state directory \(directory) is not a directory", exitStatus: 4, json: json, nagios: nagios)
            throw ExitCode(4)
        }
        if access(directory, R_OK | X_OK) == 0 { return true }
        let error = errno
        if error == ENOENT { return false }
        let message = "cannot read \(directory): \(String(cString: strerror(error))); run status as root or as the daemon's user"
        StatusFailure.report(message, exitStatus: 77, json: json, nagios: nagios)
        throw ExitCode(77)
    }
}

/// What `status` prints when it cannot give a verdict: a line on stderr, one UNKNOWN line
/// with --nagios, or with --json a document with the same `verdict`/`exitStatus` keys as a
/// report, so a script never parses an empty stdout.
enum StatusFailure {
    struct Document: Encodable {
        let verdict = "unknown"
        let exitStatus: Int32
        let error: String
        let diagnostics: [ConfigDiagnostic]?
    }

    static func report(_ message: String, exitStatus: Int32, json: Bool, nagios: Bool, diagnostics: [ConfigDiagnostic]? = nil) {
        if nagios {
            print("SECRET-ROTATOR UNKNOWN - \(message.split(whereSeparator: \.isNewline).joined(separator: " "))")
        } else if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let document = Document(exitStatus: exitStatus, error: message, diagnostics: diagnostics)
            if let data = try? encoder.encode(document) { print(String(decoding: data, as: UTF8.self)) }
            StandardError.write("secret-rotator: \(message)")
        } else {
            StandardError.write("secret-rotator: \(message)")
        }
    }
}

/// The one line of a Monitoring Plugins check ("Monitoring Plugins Development Guidelines":
/// `SERVICE STATE - text | perfdata`, perfdata as `'label'=value[UOM];warn;crit;min;max`).
struct MonitoringPluginLine {
    let text: String
    let state: Int32

    init(report: StatusReport, daemonRunning: Bool, now: Date) {
        let verdict = report.verdict
        let (code, word) = verdict.pluginState
        state = code
        let unhealthy = report.apps.filter { $0.health.verdict != .ok }
        var message: String
        if report.apps.isEmpty {
            message = "no apps configured"
        } else if unhealthy.isEmpty {
            message = "\(Plural.count(report.apps.count, "app")) ok"
        } else {
            let worst = unhealthy.sorted { $0.health.verdict > $1.health.verdict }
            let named = worst.prefix(3).map { app in
                "\(app.name): \(app.health.findings.max { $0.verdict < $1.verdict }.map(\.description) ?? app.health.verdict.word)"
            }
            message = "\(unhealthy.count) of \(report.apps.count) apps need attention: \(named.joined(separator: "; "))"
            if unhealthy.count > 3 { message += "; ..." }
        }
        if let problem = report.stateDirectoryProblems.first { message += "; \(problem)" }
        if !daemonRunning { message += "; daemon not running" }
        // One line: a finding may quote an error with a line break.
        message = message.split(whereSeparator: \.isNewline).joined(separator: " ").replacingOccurrences(of: "|", with: "/")
        let count = { (verdict: AppHealth.Verdict) in report.apps.filter { $0.health.verdict == verdict }.count }
        let oldest = report.apps.compactMap(\.secretObtainedAt).map { max(0, Int(now.timeIntervalSince($0))) }.max()
        var perfdata = ["apps=\(report.apps.count);;;0"] + AppHealth.Verdict.listed.map { "\($0.word)=\(count($0));;;0" }
        if let oldest { perfdata.append("oldest_secret_age=\(oldest)s;;;0") }
        text = "SECRET-ROTATOR \(word) - \(message) | \(perfdata.joined(separator: " "))"
    }
}

/// Parses a duration option such as `--grace 30m`, naming the option in the error.
func parsedDuration(_ text: String, option: String) throws -> Duration {
    do {
        return try DurationSyntax.parse(text)
    } catch {
        throw ValidationError("\(option): \(error.message)")
    }
}
