/// Reads the consumer keys: `consumers` (per app), `consumer_action` and `consumer_grace` (per
/// app and in `[defaults]`). One reader for both tables, so the rules are written once.
enum ConsumerSettings {
    /// Longest unit name systemd accepts (`UNIT_NAME_MAX` in systemd's unit-name.h).
    static let unitNameLimit = 255
    /// A consumer list this long is a mistake: each is told of every rotation, one D-Bus job each.
    static let unitsLimit = 32

    static func units(_ reader: TableReader, sink: DiagnosticCollector) -> [String] {
        guard let units = reader.stringArray("consumers", example: "[\"billing.service\"]") else { return [] }
        if units.count > unitsLimit {
            sink.error(reader.keyPath("consumers"), "\(units.count) units; at most \(unitsLimit) consumers per app")
            return []
        }
        var seen: Set<String> = []
        var accepted: [String] = []
        for (index, unit) in units.enumerated() {
            let key = "\(reader.keyPath("consumers"))[\(index)]"
            if let problem = unitNameProblem(unit) {
                sink.error(key, problem)
            } else if !seen.insert(unit).inserted {
                sink.error(key, "\"\(unit)\" is listed twice")
            } else {
                accepted.append(unit)
            }
        }
        return accepted
    }

    /// A consumer must be a service (only services reload and restart) named as systemd names
    /// units (systemd.unit(5), "Description"): letters, digits and `:-_.\` and one `@` of an
    /// instance. A template (`name@.service`) is not a unit that runs.
    static func unitNameProblem(_ unit: String) -> String? {
        let shown = unit.count > 80 ? "\"\(unit.prefix(80))…\"" : "\"\(unit)\""
        if unit.isEmpty { return "empty; give a service unit name such as \"billing.service\"" }
        if unit.utf8.count > unitNameLimit { return "\(shown) is longer than systemd's \(unitNameLimit)-byte unit name limit" }
        guard unit.hasSuffix(".service"), unit.count > ".service".count else {
            return "\(shown) is not a service unit; consumers are services (e.g. \"billing.service\") that reload or restart"
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
        if let bad = unit.first(where: { !allowed.contains($0) }) {
            return "\(shown) contains \"\(bad)\", which systemd does not allow in a unit name"
        }
        if unit.hasPrefix("-") || unit.hasPrefix(".") { return "\(shown) cannot start with \"\(unit.prefix(1))\"" }
        let instances = unit.filter { $0 == "@" }.count
        if instances > 1 { return "\(shown) has more than one \"@\"" }
        if unit.hasSuffix("@.service") { return "\(shown) is a template; name an instance such as \"\(unit.dropLast(".service".count))one.service\"" }
        if unit.hasPrefix("@") { return "\(shown) has an instance but no unit name before the \"@\"" }
        return nil
    }

    static func action(_ reader: TableReader, sink: DiagnosticCollector) -> ConsumerAction? {
        guard let text = reader.string("consumer_action", example: "\"reload-or-restart\"") else { return nil }
        guard let action = ConsumerAction(parsing: text) else {
            sink.error(reader.keyPath("consumer_action"), "\"\(text)\" is not one of \(ConsumerAction.syntax)")
            return nil
        }
        return action
    }

    static func grace(_ reader: TableReader, sink: DiagnosticCollector) -> Duration? {
        guard let grace = reader.duration("consumer_grace") else { return nil }
        if grace < .seconds(1) || grace > .seconds(86_400) {
            sink.error(reader.keyPath("consumer_grace"), "\(DurationSyntax.format(grace)) is out of range; use 1s to 1d")
            return nil
        }
        return grace
    }
}
