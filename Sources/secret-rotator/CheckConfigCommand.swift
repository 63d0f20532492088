import ArgumentParser
import SecretRotator

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the config file and show what the daemon would do with it.",
        discussion: """
            Reads the config exactly as the daemon does (including resolving owners, groups and \
            the access key secret source), reports every problem with file:line:column and key, \
            and prints the resolved plan: apps, ids, actions, intervals, jitter, outputs with \
            format, mode, owner and group, and hooks. Nothing on disk is changed and the access \
            key secret is never printed. A systemd credential can only be read inside the unit: \
            from a shell (no $CREDENTIALS_DIRECTORY) it is reported as not checked, with a \
            warning, instead of failing the check.

            Exit status: 0 valid (warnings may be printed), 78 invalid (EX_CONFIG).
            """
    )

    @OptionGroup var configOption: ConfigOption

    @Flag(name: .long, help: "Print the plan (or the errors) as JSON on stdout, for scripts.")
    var json = false

    func run() throws {
        let path = configOption.path
        let loaded: LoadedConfig
        do {
            loaded = try ConfigLoader(accessKeySecretNeeded: false).load(path: path)
        } catch {
            for diagnostic in error.diagnostics {
                StandardError.write(diagnostic.description)
            }
            let count = error.errors.count
            StandardError.write("\(path): \(count) error\(count == 1 ? "" : "s"); the config is not valid.")
            if json {
                print(try Self.encode(InvalidConfigReport(config: path, valid: false, errors: error.errors)))
            }
            throw ExitCode(78)
        }
        for warning in loaded.warnings {
            StandardError.write(warning.description)
        }
        let plan = ConfigPlan(loaded)
        print(json ? try Self.encode(plan) : plan.renderTable())
    }

    private struct InvalidConfigReport: Encodable {
        let config: String
        let valid: Bool
        let errors: [ConfigDiagnostic]
    }

    private static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
