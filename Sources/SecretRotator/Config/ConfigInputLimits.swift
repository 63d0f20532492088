/// Limits on config text, checked before the TOML parser sees it.
///
/// toml++ (inside TOMLKit) caps arrays and inline tables at 256 levels, but not dotted keys:
/// a table header of 30,000 dotted parts (60 KB) recursed until a debug build died with
/// SIGSEGV, and a running daemon sent SIGHUP with such a file died instead of keeping its old
/// config. No valid config of ours nests deeper than `[[app.output]]`, so the limits here are
/// far above any real file and far below what the parser survives. The file size limit
/// (`ConfigFileReader.sizeLimit`, 1 MiB) is checked when the file is read.
///
/// The same scan refuses two shapes of invalid TOML on which toml++ 3.4.0 does not report an
/// error but fails an `assert()` and aborts the process (found by the config fuzzer; SwiftPM
/// builds dependencies without NDEBUG, so release builds abort too, and with NDEBUG the
/// assertion would become an optimizer assumption: undefined behaviour). Both are syntax
/// errors anyway:
/// - a table header whose first key does not start with a bare-key character or a quote
///   (`[,`, `[?defaults]`, `[` at the end of a line): `parser::parse_key`;
/// - a date-time whose time after `T` does not start with a digit (`1979-05-27T+7:00`):
///   `parser::parse_time`;
/// - an array element that starts with `}` (`[ }`, `[1, }`): `parser::parse_value`;
/// - a non-ASCII character outside strings and comments (toml++ treats U+2028, U+0085 and
///   other Unicode spaces as value terminators, so `[<U+2028>]` fails the same assertion):
///   TOML allows only ASCII there, so any such byte is refused, as are control characters
///   other than tab; a UTF-8 byte order mark at the very start is skipped, as toml++ does.
///
/// And `\u0000` in a basic string: TOMLKit hands strings over as C strings, so the value
/// ended at the escaped NUL (`path = "/a\u0000.disabled"` wrote `/a`).
///
/// This is a scan, not a parser: it tracks only whether it is inside a string or a comment,
/// so that dots and brackets in values and comments do not count.
enum ConfigInputLimits {
    /// Dots outside strings and comments on one line: a dotted key of N parts has N-1.
    static let dotsPerLine = 64
    /// `[` and `{` open outside strings at once (toml++ stops at 256 itself).
    static let nesting = 32
    /// Bytes in one key; no key of ours has more than 30.
    static let keyLength = 128
    /// `[[app]]` entries in one config (the main file and apps.d together), and files in
    /// apps.d. Each app is one schedule entry, one state record and one lock; 20,000 fit a
    /// 1 MiB file with short ids and leave the engine's start-up scan in seconds.
    static let apps = 20_000

    struct Violation: Error, Equatable {
        let line: Int
        let column: Int
        let message: String
    }

    /// - Returns: the first limit the text exceeds, with its 1-based line and column, or nil.
    static func check(_ text: String) -> Violation? {
        enum Mode { case normal, comment, basic, literal, multilineBasic, multilineLiteral }
        let bytes = Array(text.utf8)
        var mode = Mode.normal
        var line = 1
        var lineStart = 0
        var dots = 0
        // The open brackets, innermost last: '[' or '{'.
        var open: [UInt8] = []
        var index = 0
        // For the toml++ guards: whether the line has shown anything yet (a '[' first on a
        // line outside brackets is a table header), and the last character outside strings,
        // comments and blanks (a value starts after '=', '[' or ',').
        var lineHasContent = false
        var lastSignificant: UInt8 = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }

        func starts(_ pattern: StaticString, at position: Int) -> Bool {
            let count = pattern.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            return pattern.withUTF8Buffer { buffer in
                (0..<count).allSatisfy { bytes[position + $0] == buffer[$0] }
            }
        }

        while index < bytes.count {
            let byte = bytes[index]
            let column = index - lineStart + 1
            if byte == UInt8(ascii: "\n") {
                line += 1
                lineStart = index + 1
                dots = 0
                lineHasContent = false
                if mode == .comment || mode == .basic || mode == .literal { mode = .normal }
                index += 1
                continue
            }
            let blank = byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
            let startsLine = !lineHasContent
            if !blank { lineHasContent = true }
            if byte == 0 {
                // toml++ stops at a NUL as at the end of the text: what follows was ignored.
                return Violation(line: line, column: column, message: "a NUL byte: the file is not text (anything after it would be ignored)")
            }
            switch mode {
            case .comment:
                break
            case .basic:
                if byte == UInt8(ascii: "\\") {
                    if escapesNUL(bytes, at: index) {
                        return Violation(line: line, column: column, message: nulEscapeMessage)
                    }
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    mode = .normal
                }
            case .literal:
                if byte == UInt8(ascii: "'") { mode = .normal }
            case .multilineBasic:
                if byte == UInt8(ascii: "\\"), escapesNUL(bytes, at: index) {
                    return Violation(line: line, column: column, message: nulEscapeMessage)
                }
                if byte == UInt8(ascii: "\\") {
                    // An escaped newline still ends a line for the counts.
                    if index + 1 < bytes.count, bytes[index + 1] != UInt8(ascii: "\n") { index += 1 }
                } else if starts("\"\"\"", at: index) {
                    mode = .normal
                    index += 2
                }
            case .multilineLiteral:
                if starts("'''", at: index) {
                    mode = .normal
                    index += 2
                }
            case .normal:
                if byte >= 0x80 || (byte < 0x20 && byte != UInt8(ascii: "\t") && byte != UInt8(ascii: "\r")) || byte == 0x7F {
                    return Violation(
                        line: line, column: column,
                        message: "TOML syntax error: a non-ASCII or control character outside a string or comment (TOML allows only ASCII there)")
                }
                if byte == UInt8(ascii: "["), open.isEmpty, startsLine, let problem = headerProblem(bytes, after: index) {
                    return Violation(line: line, column: column, message: problem)
                }
                if isDigit(byte), lastSignificant == UInt8(ascii: "=") || lastSignificant == UInt8(ascii: "[")
                    || lastSignificant == UInt8(ascii: ","), let problem = dateTimeProblem(bytes, at: index)
                {
                    return Violation(line: line, column: column, message: problem)
                }
                if byte == UInt8(ascii: "}"), open.last == UInt8(ascii: "["),
                    lastSignificant == UInt8(ascii: "[") || lastSignificant == UInt8(ascii: ",")
                {
                    return Violation(line: line, column: column, message: "TOML syntax error: '}' where an array expects a value or ']'")
                }
                if !blank && byte != UInt8(ascii: "#") { lastSignificant = byte }
                switch byte {
                case UInt8(ascii: "#"):
                    mode = .comment
                case UInt8(ascii: "\""):
                    if starts("\"\"\"", at: index) {
                        mode = .multilineBasic
                        index += 2
                    } else {
                        mode = .basic
                    }
                case UInt8(ascii: "'"):
                    if starts("'''", at: index) {
                        mode = .multilineLiteral
                        index += 2
                    } else {
                        mode = .literal
                    }
                case UInt8(ascii: "."):
                    dots += 1
                    if dots > dotsPerLine {
                        return Violation(
                            line: line, column: column,
                            message:
                                "more than \(dotsPerLine) dots outside strings on one line; a key may have at most \(dotsPerLine + 1) dotted parts"
                        )
                    }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    open.append(byte)
                    if open.count > nesting {
                        return Violation(
                            line: line, column: column,
                            message: "brackets nested more than \(nesting) deep; no setting of secret-rotator nests that deep")
                    }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    if !open.isEmpty { open.removeLast() }
                default:
                    break
                }
            }
            index += 1
        }
        return nil
    }

    private static let nulEscapeMessage = "a \\u0000 escape: a NUL character ends the value early; remove it"

    /// `\u0000` or `\U00000000` starting at the backslash at `index`.
    private static func escapesNUL(_ bytes: [UInt8], at index: Int) -> Bool {
        guard index + 1 < bytes.count else { return false }
        let digits: Int
        switch bytes[index + 1] {
        case UInt8(ascii: "u"): digits = 4
        case UInt8(ascii: "U"): digits = 8
        default: return false
        }
        guard index + 1 + digits < bytes.count else { return false }
        return bytes[(index + 2)...(index + 1 + digits)].allSatisfy { $0 == UInt8(ascii: "0") }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// TOML's bare-key characters (A-Za-z0-9_-), the two quotes, or ']' (toml++ reports an
    /// empty header itself) must follow `[` or `[[` and any blanks.
    private static func headerProblem(_ bytes: [UInt8], after open: Int) -> String? {
        var index = open + 1
        if index < bytes.count, bytes[index] == UInt8(ascii: "[") { index += 1 }
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
        guard index < bytes.count else { return nil }
        let byte = bytes[index]
        let fine =
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "\"")
            || byte == UInt8(ascii: "'") || byte == UInt8(ascii: "]")
        return fine ? nil : "TOML syntax error: a table header must start with a key (letters, digits, '_', '-' or a quoted key)"
    }

    /// `YYYY-MM-DD` followed by `T` or `t` must continue with the time's first digit.
    private static func dateTimeProblem(_ bytes: [UInt8], at start: Int) -> String? {
        guard start + 11 <= bytes.count else { return nil }
        let shape: [Bool] = (0..<10).map { offset in
            let byte = bytes[start + offset]
            return offset == 4 || offset == 7 ? byte == UInt8(ascii: "-") : isDigit(byte)
        }
        guard shape.allSatisfy({ $0 }), bytes[start + 10] == UInt8(ascii: "T") || bytes[start + 10] == UInt8(ascii: "t") else {
            return nil
        }
        if start + 11 < bytes.count, isDigit(bytes[start + 11]) { return nil }
        return "TOML syntax error: a date-time needs a time after 'T', such as 1979-05-27T07:32:00Z"
    }
}
