/// Limits on config text, checked before the TOML parser sees it.
///
/// toml++ (inside TOMLKit) caps arrays and inline tables at 256 levels, but not dotted keys:
/// a table header of 30,000 dotted parts (60 KB) recursed until a debug build died with
/// SIGSEGV, and a running daemon sent SIGHUP with such a file died instead of keeping its old
/// config. No valid config of ours nests deeper than `[[app.output]]`, so the limits here are
/// far above any real file and far below what the parser survives. The file size limit
/// (`ConfigFileReader.sizeLimit`, 1 MiB) is checked when the file is read.
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
    /// `[[app]]` entries in one file. Each app is one schedule entry, one state record and
    /// one lock; 20,000 fit a 1 MiB file with short ids and leave the engine's start-up scan
    /// in seconds.
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
        var depth = 0
        var index = 0

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
                if mode == .comment || mode == .basic || mode == .literal { mode = .normal }
                index += 1
                continue
            }
            switch mode {
            case .comment:
                break
            case .basic:
                if byte == UInt8(ascii: "\\") {
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    mode = .normal
                }
            case .literal:
                if byte == UInt8(ascii: "'") { mode = .normal }
            case .multilineBasic:
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
                    depth += 1
                    if depth > nesting {
                        return Violation(
                            line: line, column: column,
                            message: "brackets nested more than \(nesting) deep; no setting of secret-rotator nests that deep")
                    }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth = max(0, depth - 1)
                default:
                    break
                }
            }
            index += 1
        }
        return nil
    }
}
