import Mustache

/// Checks template text before anything is rendered, so `check-config` can refuse a bad
/// template with a readable reason instead of the daemon writing a wrong file later.
///
/// Allowed: text, `{{name}}`, `{{{name}}}`, `{{& name}}` and `{{! comments }}`, where name is
/// one of `placeholders`. Everything else mustache offers (sections, partials, delimiter
/// changes, pragmas, dotted names, transforms) is refused: a secret file needs none of it, and
/// each of those could silently render nothing or re-enable HTML escaping.
public enum TemplateValidator {
    /// The placeholders a template may use.
    public static let placeholders: [String] = ["secret", "app_id", "app_name", "rotated_at", "version"]

    /// Human-readable problems, each with line and column; empty means the template is usable.
    public static func problems(in templateText: String) -> [String] {
        var problems: [String] = []
        for tag in tags(in: templateText) {
            let at = "line \(tag.line), column \(tag.column)"
            guard let body = tag.body else {
                problems.append("\(at): unclosed tag \"{{\" without a matching \"}}\"")
                continue
            }
            var content = Substring(body)
            var triple = false
            if tag.triple {
                triple = true
            } else if let sigil = content.first, "#^/>!=%<$&{".contains(sigil) {
                switch sigil {
                case "!":
                    continue
                case "&":
                    content = content.dropFirst()
                case "#", "^", "/":
                    problems.append("\(at): sections (\"{{\(sigil)...}}\") are not supported in secret templates")
                    continue
                case ">", "<":
                    problems.append("\(at): partials (\"{{\(sigil)...}}\") are not supported in secret templates")
                    continue
                case "$":
                    problems.append("\(at): blocks (\"{{$...}}\") are not supported in secret templates")
                    continue
                case "=":
                    problems.append("\(at): changing delimiters (\"{{=...=}}\") is not supported in secret templates")
                    continue
                case "%":
                    problems.append("\(at): pragmas (\"{{%...}}\") are not supported in secret templates")
                    continue
                default:
                    problems.append("\(at): malformed tag")
                    continue
                }
            }
            let name = content.trimmingWhitespace()
            if name.isEmpty {
                problems.append("\(at): empty placeholder")
            } else if !placeholders.contains(String(name)) {
                let shown = triple ? "{{{\(name)}}}" : "{{\(name)}}"
                let hint = KeySuggester.suggestion(for: String(name), among: placeholders).map { " (did you mean {{\($0)}}?)" } ?? ""
                problems.append(
                    "\(at): unknown placeholder \(shown)\(hint); known: \(placeholders.map { "{{\($0)}}" }.joined(separator: ", "))"
                )
            }
        }
        if problems.isEmpty {
            // Our scan found nothing odd; let the real parser have the last word on syntax.
            do {
                _ = try MustacheTemplate(string: templateText)
            } catch let error as MustacheTemplate.ParserError {
                problems.append("line \(error.context.lineNumber), column \(error.context.columnNumber): \(error.error)")
            } catch {
                problems.append("template does not parse: \(error)")
            }
        }
        return problems
    }

    struct Tag {
        var line: Int
        var column: Int
        var triple: Bool
        /// Text between the delimiters; nil if the tag never closes.
        var body: String?
    }

    /// Every `{{...}}` in order, found the way the mustache parser finds them with the default
    /// delimiters (which cannot change, because `{{=...=}}` is refused).
    static func tags(in text: String) -> [Tag] {
        let chars = Array(text)
        var tags: [Tag] = []
        var line = 1
        var column = 1
        var index = 0
        func advance(_ count: Int) {
            for _ in 0..<count where index < chars.count {
                if chars[index].isNewline {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
                index += 1
            }
        }
        while index < chars.count {
            guard chars[index] == "{", index + 1 < chars.count, chars[index + 1] == "{" else {
                advance(1)
                continue
            }
            let (tagLine, tagColumn) = (line, column)
            let triple = index + 2 < chars.count && chars[index + 2] == "{"
            let open = triple ? 3 : 2
            let close: [Character] = triple ? ["}", "}", "}"] : ["}", "}"]
            var end = index + open
            var found: Int?
            while end + close.count <= chars.count {
                if Array(chars[end..<(end + close.count)]) == close {
                    found = end
                    break
                }
                end += 1
            }
            guard let found else {
                tags.append(Tag(line: tagLine, column: tagColumn, triple: triple, body: nil))
                break
            }
            tags.append(Tag(line: tagLine, column: tagColumn, triple: triple, body: String(chars[(index + open)..<found])))
            advance(found + close.count - index)
        }
        return tags
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first.isWhitespace { result = result.dropFirst() }
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }
}
