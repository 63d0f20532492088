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
            secret-rotator reads a schedule of GenAuth applications from one TOML file, rotates \
            each application's secret through the GenAuth V3 management API on its interval, and \
            writes every new secret atomically to files that services read.

            Exit codes: 0 success, 64 bad command line, 78 invalid configuration (EX_CONFIG).
            Config file: --config, else $SECRET_ROTATOR_CONFIG, else /etc/secret-rotator/rotator.toml.
            """,
        version: SecretRotatorVersion.current,
        subcommands: [RunCommand.self, RotateCommand.self, FetchCommand.self, StatusCommand.self, CheckConfigCommand.self, DemoCommand.self, WriteLoopCommand.self]
    )

    /// Before the first hop to the global executor: Swift Concurrency's jobs run on NIO's event
    /// loops instead of libdispatch's default root queues, whose first worker starts
    /// libdispatch's workqueue monitor, a 1 s timer that wakes an idle daemon every second
    /// (issue 10 item 4). Sleeps go through `QuietSleep` for the same reason.
    static func main() async {
        EventLoopExecutorTakeover.install()
        await main(nil)
    }
}
