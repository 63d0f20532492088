import TOMLKit

/// Collects diagnostics for one config file, attaching file:line:column from the locator.
final class DiagnosticCollector {
    let file: String
    let locator: SourceLocator
    private(set) var diagnostics: [ConfigDiagnostic] = []

    init(file: String, locator: SourceLocator) {
        self.file = file
        self.locator = locator
    }

    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    func error(_ keyPath: String, _ message: String) {
        add(.error, keyPath, message)
    }

    /// For a key path too long to print: located by `keyPath`, shown as `shown`.
    func error(_ keyPath: String, shown: String, _ message: String) {
        add(.error, keyPath, message, shown: shown)
    }

    func warning(_ keyPath: String, _ message: String) {
        add(.warning, keyPath, message)
    }

    func line(of keyPath: String) -> Int? {
        locator.position(of: keyPath)?.line
    }

    private func add(_ severity: ConfigDiagnostic.Severity, _ keyPath: String, _ message: String, shown: String? = nil) {
        let position = locator.position(of: keyPath)
        diagnostics.append(
            ConfigDiagnostic(
                severity: severity, file: file, line: position?.line, column: position?.column,
                keyPath: shown ?? keyPath, message: message))
    }
}

/// Reads typed values out of one TOML table, reporting wrong types with the key path and
/// remembering which keys were read so that everything else can be reported as unknown.
final class TableReader {
    let table: TOMLTable
    let path: String
    let sink: DiagnosticCollector

    init(table: TOMLTable, path: String, sink: DiagnosticCollector) {
        self.table = table
        self.path = path
        self.sink = sink
    }

    func keyPath(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    func contains(_ key: String) -> Bool {
        table[key] != nil
    }

    func string(_ key: String, example: String = "\"text\"") -> String? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else {
            wrongType(key, expected: "a string such as \(example)", found: value)
            return nil
        }
        return text
    }

    func bool(_ key: String) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let flag = value.bool else {
            wrongType(key, expected: "true or false (without quotes)", found: value)
            return nil
        }
        return flag
    }

    func int(_ key: String) -> Int? {
        guard let value = table[key] else { return nil }
        guard let number = value.int else {
            wrongType(key, expected: "a whole number (without quotes)", found: value)
            return nil
        }
        return number
    }

    /// Integers are accepted where a fraction is allowed: `multiplier = 2` means 2.0.
    func double(_ key: String) -> Double? {
        guard let value = table[key] else { return nil }
        if let number = value.double { return number }
        if let number = value.int { return Double(number) }
        wrongType(key, expected: "a number such as 2.0", found: value)
        return nil
    }

    func duration(_ key: String) -> Duration? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else {
            if value.int != nil || value.double != nil {
                sink.error(
                    keyPath(key),
                    "expected a duration string with a unit such as \"90s\" or \"7d\", found \(describe(value)), a bare number without a unit"
                )
            } else {
                wrongType(key, expected: "a duration string such as \"90s\" or \"7d\"", found: value)
            }
            return nil
        }
        do {
            return try DurationSyntax.parse(text)
        } catch {
            sink.error(keyPath(key), error.message)
            return nil
        }
    }

    func mode(_ key: String) -> FileMode? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else {
            if value.int != nil {
                sink.error(
                    keyPath(key),
                    "expected a quoted octal string such as \"0640\", found \(describe(value)); TOML reads unquoted numbers as decimal"
                )
            } else {
                wrongType(key, expected: FileMode.accepted, found: value)
            }
            return nil
        }
        do {
            return try FileMode.parse(text)
        } catch {
            sink.error(keyPath(key), error.message)
            return nil
        }
    }

    func account(_ key: String, kind: AccountLookup.Kind, host: ConfigHost) -> AccountID? {
        guard let value = table[key] else { return nil }
        let text: String
        if let name = value.string {
            text = name
        } else if let number = value.int {
            guard number >= 0, number < Int(UInt32.max) else {
                sink.error(keyPath(key), "\(kind.rawValue) id \(number) is out of range")
                return nil
            }
            text = String(number)
        } else {
            wrongType(key, expected: "a \(kind.rawValue) name or numeric id", found: value)
            return nil
        }
        do {
            return try AccountLookup.resolve(text, kind: kind, lookup: host.accountID)
        } catch {
            sink.error(keyPath(key), error.message)
            return nil
        }
    }

    /// A rotation window (`RotationWindow.parse`): nil when absent or invalid (reported with
    /// the key), `.some(nil)` for "always", which switches an inherited window off.
    func window(_ key: String) -> RotationWindow?? {
        guard let text = string(key, example: RotationWindow.example) else { return nil }
        do {
            return .some(try RotationWindow.parse(text))
        } catch {
            sink.error(keyPath(key), error.message)
            return nil
        }
    }

    func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, as type: Choice.Type) -> Choice?
    where Choice.RawValue == String {
        let allowed = Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        guard let text = string(key, example: allowed) else { return nil }
        guard let choice = Choice(rawValue: text) else {
            sink.error(keyPath(key), "\"\(text)\" is not one of \(allowed)")
            return nil
        }
        return choice
    }

    func stringArray(_ key: String, example: String) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else {
            wrongType(key, expected: "an array of strings such as \(example)", found: value)
            return nil
        }
        var strings: [String] = []
        for (index, element) in array.enumerated() {
            guard let text = element.string else {
                sink.error(
                    "\(keyPath(key))[\(index)]",
                    "expected a string, found \(describe(element)); write every argument as a quoted string")
                return nil
            }
            strings.append(text)
        }
        return strings
    }

    func subtable(_ key: String) -> TableReader? {
        guard let value = table[key] else { return nil }
        guard let subtable = value.table else {
            wrongType(key, expected: "a table ([\(keyPath(key))] or { ... })", found: value)
            return nil
        }
        return TableReader(table: subtable, path: keyPath(key), sink: sink)
    }

    func tableArray(_ key: String) -> [TableReader]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else {
            wrongType(key, expected: "an array of tables written as [[\(keyPath(key))]]", found: value)
            return nil
        }
        var readers: [TableReader] = []
        for (index, element) in array.enumerated() {
            guard let subtable = element.table else {
                sink.error("\(keyPath(key))[\(index)]", "expected a table, found \(describe(element))")
                continue
            }
            readers.append(TableReader(table: subtable, path: "\(keyPath(key))[\(index)]", sink: sink))
        }
        return readers
    }

    /// Every key not in `known` is reported, with the nearest known key as a suggestion.
    func reportUnknownKeys(known: [String], hint: [String: String] = [:]) {
        for key in table.keys.sorted() where !known.contains(key) {
            guard key.utf8.count <= ConfigInputLimits.keyLength else {
                // Not echoed whole: a 100 KB key would be a 100 KB error line.
                sink.error(
                    keyPath(key), shown: keyPath("\(key.prefix(32))…"),
                    "unknown key of \(key.utf8.count) bytes starting \"\(key.prefix(32))…\"; keys are at most \(ConfigInputLimits.keyLength) bytes")
                continue
            }
            var message = "unknown key \"\(key)\""
            if let special = hint[key] {
                message += "; \(special)"
            } else if let suggestion = KeySuggester.suggestion(for: key, among: known) {
                message += "; did you mean `\(suggestion)`?"
            } else {
                message += "; known keys here: \(known.joined(separator: ", "))"
            }
            sink.error(keyPath(key), message)
        }
    }

    private func wrongType(_ key: String, expected: String, found value: any TOMLValueConvertible) {
        // A secret's value is never quoted back, whatever its type: "found an integer" is enough.
        let found = ConfigSchema.secretKeys.contains(key) ? Self.kind(of: value) : describe(value)
        sink.error(keyPath(key), "expected \(expected), found \(found)")
    }

    private static func kind(of value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .table: "a table"
        case .array: "an array"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }

    private func describe(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "a string"
        case .int: value.int.map { "integer \($0)" } ?? "an integer"
        case .double: value.double.map { "number \($0)" } ?? "a number"
        case .bool: value.bool.map { "boolean \($0)" } ?? "a boolean"
        case .table: "a table"
        case .array: "an array"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }
}
