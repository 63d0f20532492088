import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each app's rotation state: version, last secret, next step, failures.",
        discussion: """
            Reads the config and the state directory (the daemon's journal) and shows, per app, \
            the version on disk, when that secret was obtained, when the next step is due, and \
            anything that needs a look: failures with the last error, a secret received but not \
            yet on every output, an interrupted call, a hook still owed, an unreadable record. \
            Works whether or not the daemon runs, changes nothing on disk and never prints a \
            secret. The state directory is private to the daemon's user: run it as root or as \
            that user.

            Exit status: 0 every app is healthy, 1 an app is failing, a record is unreadable or the state directory is full or read-only, \
            77 the state directory cannot be read (EX_NOPERM), 78 invalid config.
            """)

    @OptionGroup var configOption: ConfigOption

    @OptionGroup var stateDirectoryOption: StateDirectoryOption

    @Flag(name: .long, help: "Print the status as JSON on stdout, for scripts and monitoring.")
    var json = false

    func run() throws {
        let config = try configOption.loadConfig(accessKeySecretNeeded: false)
        let directory = stateDirectoryOption.path(for: config)
        let exists = try Self.checkReadable(directory)
        let report = StatusReport.read(config: config, stateDirectory: StateDirectory(path: directory), now: Date())
        let daemon = StateDirectoryLock.holder(stateDirectory: directory)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            let document = Document(
                stateDirectory: directory, daemonPID: daemon.map(Int.init), apps: report.apps,
                stateDirectoryProblems: report.stateDirectoryProblems)
            print(String(decoding: try encoder.encode(document), as: UTF8.self))
        } else {
            var heading = "State directory \(directory)"
            heading += exists ? "" : " (does not exist yet: nothing has run with it)"
            heading += daemon.map { " · daemon running (PID \($0))" } ?? " · daemon not running"
            print(heading + "\n")
            print(report.apps.isEmpty ? "No apps configured." : report.render(now: Date()))
        }
        if report.needsAttention { throw ExitCode.failure }
    }

    private struct Document: Encodable {
        let stateDirectory: String
        let daemonPID: Int?
        let apps: [StatusReport.App]
        let stateDirectoryProblems: [String]
    }

    /// A missing directory is a valid answer (never run); one we may not read is an error, so
    /// that "no state" is never shown just because of permissions.
    private static func checkReadable(_ directory: String) throws -> Bool {
        for path in [directory, "\(directory)/apps", "\(directory)/secrets"] {
            if access(path, R_OK | X_OK) == 0 { continue }
            let error = errno
            if error == ENOENT { return path != directory }
            StandardError.write(
                "secret-rotator: cannot read \(path): \(String(cString: strerror(error))); run status as root or as the daemon's user")
            throw ExitCode(77)
        }
        return true
    }
}
