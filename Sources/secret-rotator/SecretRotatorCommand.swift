import ArgumentParser
import NIOCore
import NIOPosix
import SecretRotator

@main
struct SecretRotatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret-rotator",
        abstract: "Keeps GenAuth (Authing) application secrets fresh on disk.",
        discussion: """
            secret-rotator reads a schedule of GenAuth applications from one TOML file (plus \
            apps.d/*.toml beside it), rotates each application's secret through the GenAuth V3 \
            management API on its interval, and writes every new secret atomically to files \
            that services read.

            Exit codes (sysexits.h where one fits): 0 success, 1 a failure the command \
            describes, 64 bad command line (EX_USAGE), 69 GenAuth unreachable \
            (check-config --online) or this host does not lead the [cluster] election \
            (EX_UNAVAILABLE), 73 the state directory cannot be \
            created or used (EX_CANTCREAT), 75 another process holds the state directory \
            (EX_TEMPFAIL), 77 permission denied (EX_NOPERM), 78 invalid configuration \
            (EX_CONFIG). `status` has its own codes for monitoring: see `status --help`.
            Config file: --config, else $SECRET_ROTATOR_CONFIG, else /etc/secret-rotator/rotator.toml.
            """,
        version: "secret-rotator \(SecretRotatorVersion.current)",
        subcommands: [
            RunCommand.self, RotateCommand.self, FetchCommand.self, StatusCommand.self, PlanCommand.self, CheckConfigCommand.self,
            DemoCommand.self, PolkitRuleCommand.self,
        ]
    )

    /// Before the first hop to the global executor: Swift Concurrency's jobs run on NIO's event
    /// loops instead of libdispatch's default root queues, whose first worker starts
    /// libdispatch's workqueue monitor, a 1 s timer that wakes an idle daemon every second.
    /// Sleeps go through `QuietSleep` for the same reason.
    static func main() async {
        EventLoopExecutorTakeover.install()
        if let unknown = unknownSubcommand(CommandLine.arguments) {
            StandardError.write(unknown)
            StandardError.write("See 'secret-rotator --help' for the commands.")
            Self.exit(withError: ExitCode(64))
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "status", arguments.contains("--nagios") || arguments.contains("--json") {
            await runStatusAnsweringParseErrors(arguments, nagios: arguments.contains("--nagios"))
        }
        await main(nil)
    }

    /// `status --nagios`/`--json` must answer in their format even when the command line
    /// itself is wrong (Monitoring Plugins: UNKNOWN on one line; JSON: a document), where
    /// argument-parser would print its usage text and exit 64.
    private static func runStatusAnsweringParseErrors(_ arguments: [String], nagios: Bool) async {
        let command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            if error is CleanExit { exit(withError: error) }
            let message = fullMessage(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "bad arguments"
            StatusFailure.report(message.replacingOccurrences(of: "Error: ", with: ""), exitStatus: 64, json: !nagios, nagios: nagios)
            exit(withError: ExitCode(nagios ? 3 : 64))
        }
        do {
            var status = command
            try status.run()
            exit(withError: nil)
        } catch {
            exit(withError: error)
        }
    }

    /// argument-parser reports a mistyped command as "Unexpected argument" with the top-level
    /// usage; this names it and suggests the closest command (`statsu` → `status`).
    static func unknownSubcommand(_ arguments: [String]) -> String? {
        guard arguments.count > 1 else { return nil }
        let word = arguments[1]
        guard !word.hasPrefix("-"), word != "help" else { return nil }
        let names = configuration.subcommands.compactMap { $0.configuration.commandName }
        guard !names.contains(word) else { return nil }
        var message = "Error: unknown command '\(word)'"
        if let guess = KeySuggester.suggestion(for: word, among: names) {
            message += "; did you mean '\(guess)'?"
        } else {
            message += "; the commands are \(names.joined(separator: ", "))"
        }
        return message
    }
}
