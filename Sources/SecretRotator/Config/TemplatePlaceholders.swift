/// The placeholders a `template` output may use, and a check that finds any other one, so an
/// unknown `{{secert}}` is a `check-config` error instead of an empty spot in a service's config.
public enum TemplatePlaceholders {
    public static let known = ["secret", "app_id", "app_name", "rotated_at", "version"]

    public static func problems(in template: String) -> [String] {
        var problems: [String] = []
        var rest = Substring(template)
        while let open = rest.firstRange(of: "{{") {
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else {
                problems.append("unclosed \"{{\"")
                break
            }
            var name = rest[open.upperBound..<close.lowerBound].trimmingSpaces()
            if name.hasPrefix("{") { name = String(name.dropFirst()).trimmingSpaces() }
            if name.hasPrefix("&") { name = String(name.dropFirst()).trimmingSpaces() }
            if !known.contains(name) {
                let hint = KeySuggester.suggestion(for: name, among: known).map { "; did you mean {{\($0)}}?" } ?? ""
                problems.append("unknown placeholder {{\(name)}}\(hint) (known: \(known.map { "{{\($0)}}" }.joined(separator: ", ")))")
            }
            rest = rest[close.upperBound...]
            if rest.hasPrefix("}") { rest = rest.dropFirst() }
        }
        return problems
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
