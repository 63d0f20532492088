/// check-config's look at the consumer units: each must be a unit systemd knows by that name
/// (asked over D-Bus, read-only). A unit that does not exist, is masked, or is an alias is an
/// error: every rotation would leave its service on a dead secret. No system bus (a
/// container, a build host) is one warning for all units.
public enum ConsumerUnitCheck {
    public struct Result: Sendable, Equatable {
        /// Each finding with the app's file, line and key, as check-config reports config problems.
        public var diagnostics: [ConfigDiagnostic] = []

        public var errors: [String] { diagnostics.filter { $0.severity == .error }.map(\.message) }
        public var warnings: [String] { diagnostics.filter { $0.severity == .warning }.map(\.message) }

        mutating func add(_ severity: ConfigDiagnostic.Severity, _ message: String, app: AppConfig?, config: RotatorConfig) {
            diagnostics.append(
                ConfigDiagnostic(
                    severity: severity, file: app?.source?.file ?? config.sourcePath, line: app?.source?.line, column: nil,
                    keyPath: app.map { "\($0.source?.keyPath ?? "app").consumers" } ?? "consumers", message: message))
        }
    }

    public static func run(_ config: RotatorConfig, units: any SystemdUnitManaging) async -> Result {
        var result = Result()
        var seen: Set<String> = []
        for app in config.apps {
            for unit in app.consumers where seen.insert(unit).inserted {
                let report = await units.inspect(unit: unit)
                let place = app.source.map { " (\($0.file)\($0.line.map { ":\($0)" } ?? ""))" } ?? ""
                if report.errno != 0 {
                    if report.errorName.isEmpty {
                        // One unreachable bus answers the same for every unit: one line for all.
                        let all = Set(config.apps.flatMap(\.consumers)).count
                        result.add(
                            .warning,
                            "warning: \(all) consumer unit\(all == 1 ? "" : "s") not checked: cannot reach systemd over the system bus (\(report.errorDescription))",
                            app: nil, config: config)
                        return result
                    }
                    result.add(
                        .warning, "warning: consumer \(unit) of app \(app.name)\(place) not checked: systemd answered \(report.errorDescription)",
                        app: app, config: config)
                    continue
                }
                switch report.loadState {
                case "loaded" where !report.id.isEmpty && report.id != unit:
                    // systemd asks polkit about the primary name: the rule for the alias never matches.
                    result.add(
                        .error,
                        "app \(app.name)\(place): consumers: \(unit) is an alias of \(report.id); name \(report.id) (systemd asks polkit about a unit by its own name)",
                        app: app, config: config)
                case "loaded":
                    continue
                case "not-found":
                    result.add(.error, "app \(app.name)\(place): consumers: systemd has no unit \(unit)", app: app, config: config)
                case "masked":
                    result.add(
                        .error, "app \(app.name)\(place): consumers: \(unit) is masked; it can be neither reloaded nor restarted",
                        app: app, config: config)
                default:
                    result.add(
                        .error, "app \(app.name)\(place): consumers: \(unit) is not loaded (\(report.loadState))", app: app, config: config)
                }
            }
        }
        return result
    }
}
