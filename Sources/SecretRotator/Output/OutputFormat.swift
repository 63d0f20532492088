/// How a secret is laid out in an output file.
public enum OutputFormat: String, Sendable, CaseIterable {
    case raw
    case env
    case json
    case template
}
