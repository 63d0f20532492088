/// check-config's look at the consumer units: each must be a unit systemd knows (asked over
/// D-Bus, read-only). A unit that does not exist is an error: every rotation would leave its
/// service on a dead secret. No system bus (a container, a build host) is a warning.
public enum ConsumerUnitCheck {
    public struct Result: Sendable, Equatable {
        public var errors: [String] = []
        public var warnings: [String] = []
    }

    public static func run(_ config: RotatorConfig, units: any SystemdUnitManaging) async -> Result {
        var result = Result()
        var seen: Set<String> = []
        for app in config.apps {
            for unit in app.consumers where seen.insert(unit).inserted {
                let report = await units.inspect(unit: unit)
                let place = app.source.map { " (\($0.file)\($0.line.map { ":\($0)" } ?? ""))" } ?? ""
                if report.errno != 0 {
                    result.warnings.append(
                        "warning: consumer \(unit) of app \(app.name)\(place) not checked: cannot ask systemd (\(report.errorDescription))")
                    // One unreachable bus answers the same for every unit.
                    if report.loadState.isEmpty { return result }
                    continue
                }
                switch report.loadState {
                case "loaded":
                    continue
                case "not-found":
                    result.errors.append("app \(app.name)\(place): consumers: systemd has no unit \(unit)")
                case "masked":
                    result.errors.append("app \(app.name)\(place): consumers: \(unit) is masked; it can be neither reloaded nor restarted")
                default:
                    result.errors.append("app \(app.name)\(place): consumers: \(unit) is not loaded (\(report.loadState))")
                }
            }
        }
        return result
    }
}
