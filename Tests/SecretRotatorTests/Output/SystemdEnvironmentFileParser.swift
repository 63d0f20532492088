/// systemd's `EnvironmentFile=` reader, ported state for state from `parse_env_file_internal`
/// in systemd's src/basic/env-file.c (v252 and later; the states have not changed since):
///
/// - `#` or `;` at the start of a line is a comment; blank lines are skipped.
/// - `KEY=VALUE`; whitespace around the key and before the value is dropped; an unquoted
///   value ends at the newline with trailing whitespace removed; `\` escapes the next
///   character (an escaped newline is a continuation).
/// - `'...'` is literal up to the next `'`, newlines included.
/// - `"..."`: `\` followed by one of `"` `\` `` ` `` `$` gives that character, `\` + newline
///   is a continuation, `\` + anything else keeps both characters; newlines are literal.
/// - After a closing quote the parser is back in PRE_VALUE, so `"a""b"` is `ab`.
/// - A later assignment of the same key replaces the earlier one; values that are not valid
///   UTF-8 are dropped (`check_utf8ness_and_warn`).
///
/// The tests use it to prove that an env output means exactly one variable to systemd.
enum SystemdEnvironmentFileParser {
    private enum State {
        case preKey, key, preValue, value, valueEscape, singleQuoteValue, doubleQuoteValue
        case doubleQuoteValueEscape, comment, commentEscape
    }

    private static let newline: Set<UInt8> = [0x0A, 0x0D]
    private static let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
    private static let comments: Set<UInt8> = [UInt8(ascii: "#"), UInt8(ascii: ";")]
    private static let shellNeedEscape: Set<UInt8> = [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "`"), UInt8(ascii: "$")]

    /// The assignments in file order, each (key, value).
    static func parse(_ contents: [UInt8]) -> [(key: String, value: String)] {
        var result: [(String, String)] = []
        var state = State.preKey
        var key: [UInt8] = []
        var value: [UInt8] = []
        var lastValueWhitespace: Int?
        var lastKeyWhitespace: Int?

        func push(chompValue: Bool) {
            if let cut = lastKeyWhitespace { key.removeSubrange(cut...) }
            if chompValue, let cut = lastValueWhitespace { value.removeSubrange(cut...) }
            if let k = String(validating: key, as: UTF8.self), let v = String(validating: value, as: UTF8.self) {
                result.removeAll { $0.0 == k }
                result.append((k, v))
            }
            key = []
            value = []
        }

        // The C loop stops at the first NUL (`for (p = contents; *p; p++)`).
        for c in contents.prefix(while: { $0 != 0 }) {
            switch state {
            case .preKey:
                if comments.contains(c) {
                    state = .comment
                } else if !whitespace.contains(c) {
                    state = .key
                    lastKeyWhitespace = nil
                    key.append(c)
                }
            case .key:
                if newline.contains(c) {
                    state = .preKey
                    key = []
                } else if c == UInt8(ascii: "=") {
                    state = .preValue
                    lastValueWhitespace = nil
                } else {
                    if !whitespace.contains(c) {
                        lastKeyWhitespace = nil
                    } else if lastKeyWhitespace == nil {
                        lastKeyWhitespace = key.count
                    }
                    key.append(c)
                }
            case .preValue:
                if newline.contains(c) {
                    state = .preKey
                    push(chompValue: false)
                } else if c == UInt8(ascii: "'") {
                    state = .singleQuoteValue
                } else if c == UInt8(ascii: "\"") {
                    state = .doubleQuoteValue
                } else if c == UInt8(ascii: "\\") {
                    state = .valueEscape
                } else if !whitespace.contains(c) {
                    state = .value
                    value.append(c)
                }
            case .value:
                if newline.contains(c) {
                    state = .preKey
                    push(chompValue: true)
                } else if c == UInt8(ascii: "\\") {
                    state = .valueEscape
                    lastValueWhitespace = nil
                } else {
                    if !whitespace.contains(c) {
                        lastValueWhitespace = nil
                    } else if lastValueWhitespace == nil {
                        lastValueWhitespace = value.count
                    }
                    value.append(c)
                }
            case .valueEscape:
                state = .value
                if !newline.contains(c) { value.append(c) }
            case .singleQuoteValue:
                if c == UInt8(ascii: "'") { state = .preValue } else { value.append(c) }
            case .doubleQuoteValue:
                if c == UInt8(ascii: "\"") {
                    state = .preValue
                } else if c == UInt8(ascii: "\\") {
                    state = .doubleQuoteValueEscape
                } else {
                    value.append(c)
                }
            case .doubleQuoteValueEscape:
                state = .doubleQuoteValue
                if shellNeedEscape.contains(c) {
                    value.append(c)
                } else if c != 0x0A {
                    value.append(UInt8(ascii: "\\"))
                    value.append(c)
                }
            case .comment:
                if c == UInt8(ascii: "\\") {
                    state = .commentEscape
                } else if newline.contains(c) {
                    state = .preKey
                }
            case .commentEscape:
                state = newline.contains(c) ? .preKey : .comment
            }
        }
        switch state {
        case .preValue, .valueEscape, .singleQuoteValue, .doubleQuoteValue, .doubleQuoteValueEscape:
            push(chompValue: false)
        case .value:
            push(chompValue: true)
        case .preKey, .key, .comment, .commentEscape:
            break
        }
        return result
    }
}
