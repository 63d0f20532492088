import ArgumentParser
import SecretRotator

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the config (and apps.d) and show what the daemon would do with it.",
        discussion: """
            Reads the config exactly as the daemon does (the main file, then apps.d/*.toml \
            beside it in name order; owners, groups and the access key secret source resolved), \
            reports every problem with file:line:column and key, and prints the resolved plan: \
            apps with the file each came from, ids, actions, intervals, jitter, outputs with \
            format, mode, owner and group, hooks, consumers, and each rotation window with its \
            next opening. It also checks the host: every hook program resolves to an \
            executable, every consumer unit is known to systemd (asked over D-Bus, read-only; \
            a unit that does not exist is an error, no system bus a warning), and every \
            output's directory exists (or, for \
            the drop directory, can be created) and is writable by the daemon's user (the state \
            directory's owner). Nothing on disk is changed and the access key secret is never \
            printed. A systemd credential can only be read inside the unit: from a shell (no \
            $CREDENTIALS_DIRECTORY) it is reported as not checked, with a warning.

            --online also logs in to GenAuth and reads every app with get-application (no \
            secret is fetched, none is rotated): it shows per app whether it exists and the \
            access key may read it. That needs the access key secret in this shell: with a \
            credential-only config run it inside the unit's environment, e.g. \
            `systemd-run --pipe --wait -p LoadCredential=genauth-access-key-secret:/etc/secret-rotator/access-key-secret secret-rotator check-config --online`.

            Exit status: 0 valid (warnings may be printed), 69 GenAuth could not be reached \
            (--online; EX_UNAVAILABLE), 78 invalid, or (--online) an app is unknown or \
            forbidden or the login is refused (EX_CONFIG).
            """
    )

    @OptionGroup var configOption: ConfigOption

    @Flag(name: .long, help: "Print the plan (or the errors) as JSON on stdout, for scripts.")
    var json = false

    @Flag(name: .long, help: "Also log in to GenAuth and read every app (get-application); nothing is rotated.")
    var online = false

    func run() async throws {
        let path = configOption.path
        let loaded: LoadedConfig
        do {
            loaded = try ConfigLoader(accessKeySecretNeeded: online).load(path: path)
        } catch {
            fail(error.diagnostics, errors: error.errors)
            throw ExitCode(78)
        }
        for warning in loaded.warnings {
            StandardError.write(warning.description)
        }
        let hostProblems = OutputDirectoryCheck.problems(
            loaded.config, daemon: StateDirectoryOption.daemonAccount(stateDirectory: loaded.config.defaults.stateDirectory))
        if !hostProblems.isEmpty {
            fail(hostProblems, errors: hostProblems)
            throw ExitCode(78)
        }
        let units = await ConsumerUnitCheck.run(loaded.config, units: SystemdBusUnits())
        let unitErrors = units.diagnostics.filter { $0.severity == .error }
        if !unitErrors.isEmpty {
            fail(units.diagnostics, errors: unitErrors)
            throw ExitCode(78)
        }
        for warning in units.warnings { StandardError.write(warning) }
        let plan = ConfigPlan(loaded, extraWarnings: units.diagnostics)
        if !online {
            print(json ? try Self.encode(plan) : plan.renderTable())
            return
        }
        if !json { print(plan.renderTable() + "\n") }
        let verification = await OnlineVerification.run(loaded.config)
        if json {
            print(try Self.encode(OnlineReport(config: path, valid: verification.exitStatus == 0, plan: plan, online: verification)))
        } else {
            print(verification.render())
        }
        if verification.exitStatus != 0 { throw ExitCode(verification.exitStatus) }
    }

    private func fail(_ diagnostics: [ConfigDiagnostic], errors: [ConfigDiagnostic]) {
        let path = configOption.path
        for diagnostic in diagnostics {
            StandardError.write(diagnostic.description)
        }
        StandardError.write("\(path): \(Plural.count(errors.count, "error")); the config is not valid.")
        if json, let text = try? Self.encode(InvalidConfigReport(config: path, valid: false, errors: errors)) {
            print(text)
        }
    }

    private struct InvalidConfigReport: Encodable {
        let config: String
        let valid: Bool
        let errors: [ConfigDiagnostic]
    }

    private struct OnlineReport: Encodable {
        let config: String
        let valid: Bool
        let plan: ConfigPlan
        let online: OnlineVerification
    }

    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// `check-config --online`: a login and one get-application per app, read only.
struct OnlineVerification: Encodable {
    struct AppResult: Encodable {
        let name: String
        let id: String
        /// ok, not-found, forbidden, failed.
        let result: String
        let detail: String
    }

    var login: String
    var apps: [AppResult] = []
    var exitStatus: Int32 = 0

    static func run(_ config: RotatorConfig) async -> OnlineVerification {
        let client: GenAuthClient
        do {
            client = try GenAuthClient(
                configuration: GenAuthClientConfiguration(
                    host: config.genauth.host, flavour: config.genauth.flavour, accessKeyId: config.genauth.accessKeyID,
                    accessKeySecret: config.genauth.accessKeySecret, requestTimeout: config.genauth.requestTimeout,
                    caFile: config.genauth.caFile))
        } catch {
            return OnlineVerification(login: "cannot set up the GenAuth client: \(error)", exitStatus: 78)
        }
        defer { Task { try? await client.shutdown() } }
        var report = OnlineVerification(login: "")
        for app in config.apps {
            do throws(GenAuthError) {
                let record = try await client.getApplication(appId: app.id)
                let name = record.appName.map { " (\"\($0)\" in GenAuth)" } ?? ""
                report.apps.append(AppResult(name: app.name, id: app.id, result: "ok", detail: "exists and is readable\(name)"))
            } catch {
                if error.operation == "get-management-token" || error.classification == .authentication {
                    // One refused login answers for every app.
                    let unreachable = error.classification == .transient || error.classification == .outcomeUnknown
                    report.login = unreachable
                        ? "cannot reach \(config.genauth.host) to log in: \(error)"
                        : "login to \(config.genauth.host) (flavour \(config.genauth.flavour.rawValue)) refused: \(error)"
                    report.exitStatus = unreachable ? 69 : 78
                    try? await client.shutdown()
                    return report
                }
                let (result, detail, status) = Self.classify(error)
                report.apps.append(AppResult(name: app.name, id: app.id, result: result, detail: detail))
                report.exitStatus = max(report.exitStatus, status)
            }
        }
        report.login = "logged in to \(config.genauth.host) (flavour \(config.genauth.flavour.rawValue)) as access key \(config.genauth.accessKeyID)"
        try? await client.shutdown()
        return report
    }

    /// Not found and forbidden are the config's problem (78); anything transient is 69.
    static func classify(_ error: GenAuthError) -> (result: String, detail: String, status: Int32) {
        if error.apiStatusCode ?? error.httpStatus == 404 {
            return ("not-found", "no application with this id in the user pool (\(error))", 78)
        }
        if error.isForbidden { return ("forbidden", "the access key may not read this application (\(error))", 78) }
        if error.classification == .permanent { return ("failed", "\(error)", 78) }
        return ("failed", "GenAuth could not be asked: \(error)", 69)
    }

    func render() -> String {
        var lines = [login]
        if !apps.isEmpty {
            lines.append("")
            lines += TextTable(header: ["APP", "ID", "RESULT", "DETAIL"], rows: apps.map { [$0.name, $0.id, $0.result, $0.detail] })
                .renderLines()
            let bad = apps.filter { $0.result != "ok" }.count
            lines.append("")
            lines.append(bad == 0 ? "\(Plural.count(apps.count, "app")) verified." : "\(bad) of \(Plural.count(apps.count, "app")) cannot be used.")
        }
        return lines.joined(separator: "\n")
    }
}
