/// How a secret is laid out in an output file.
public enum OutputFormat: String, Sendable, CaseIterable, Hashable {
    /// The secret alone, with an optional trailing newline.
    case raw
    /// One `KEY="value"` line, readable by `EnvironmentFile=` and by `set -a; . FILE`.
    case env
    /// One JSON object with `appId`, `appName`, `secret`, `rotatedAt` and `version`.
    case json
    /// A mustache template restricted to the placeholders `TemplateValidator` knows.
    case template
}
