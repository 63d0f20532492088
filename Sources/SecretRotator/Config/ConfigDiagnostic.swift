/// One finding about a config file, phrased for the operator who has to fix it:
/// where (file:line:column), which key, what is wrong and what would be accepted.
public struct ConfigDiagnostic: Sendable, Equatable, Encodable, CustomStringConvertible {
    public enum Severity: String, Sendable, Encodable {
        case error
        case warning
    }

    public let severity: Severity
    public let file: String
    public let line: Int?
    public let column: Int?
    /// The key path as the operator would look for it, e.g. `app[2].output[0].mode`.
    public let keyPath: String
    public let message: String

    public init(severity: Severity, file: String, line: Int?, column: Int?, keyPath: String, message: String) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    /// Grouped by file in the order the files first appear (the main config, then apps.d by
    /// name), and by line and column within each file.
    static func inFileOrder(_ diagnostics: [ConfigDiagnostic]) -> [ConfigDiagnostic] {
        var rank: [String: Int] = [:]
        for diagnostic in diagnostics where rank[diagnostic.file] == nil { rank[diagnostic.file] = rank.count }
        return diagnostics.enumerated().sorted { left, right in
            let a = (rank[left.element.file] ?? 0, left.element.line ?? Int.max, left.element.column ?? 0, left.offset)
            let b = (rank[right.element.file] ?? 0, right.element.line ?? Int.max, right.element.column ?? 0, right.offset)
            return a < b
        }.map(\.element)
    }

    public var location: String {
        switch (line, column) {
        case (let line?, let column?): "\(file):\(line):\(column)"
        case (let line?, nil): "\(file):\(line)"
        default: file
        }
    }

    public var description: String {
        let key = keyPath.isEmpty ? "" : "\(keyPath): "
        return "\(location): \(severity.rawValue): \(key)\(message)"
    }
}

/// A config that cannot be used. Carries every error found, not just the first, so an
/// operator fixes the file in one pass.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [ConfigDiagnostic]

    /// Diagnostics are kept in file order, so they read top to bottom like the file.
    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = ConfigDiagnostic.inFileOrder(diagnostics)
    }

    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
