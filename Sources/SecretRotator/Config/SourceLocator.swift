/// Maps config key paths (`app[2].output[0].mode`) to where they were written.
///
/// TOMLKit reports positions only for syntax errors, not for the nodes of a parsed document,
/// yet every validation error must name file:line. So after TOMLKit has accepted the text,
/// this scanner walks the same text once and records the position of every table header and
/// key. It does not interpret values; it only needs to step over strings, arrays and inline
/// tables correctly so that it never mistakes their contents for keys.
struct SourceLocator: Sendable {
    struct Position: Sendable, Equatable {
        let line: Int
        let column: Int
    }

    private var positions: [String: Position] = [:]

    init(text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> [UInt8] in
            var bytes = Array(line.utf8)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            return bytes
        }
        var table = ""
        var arrayCounters: [String: Int] = [:]
        var lineIndex = 0
        while lineIndex < lines.count {
            let line = lines[lineIndex]
            let start = Self.skipSpaces(line, 0)
            guard start < line.count, line[start] != UInt8(ascii: "#") else {
                lineIndex += 1
                continue
            }
            if line[start] == UInt8(ascii: "[") {
                let isArray = start + 1 < line.count && line[start + 1] == UInt8(ascii: "[")
                let keyStart = Self.skipSpaces(line, start + (isArray ? 2 : 1))
                let (components, _) = Self.parseKey(line, from: keyStart)
                if !components.isEmpty {
                    table = Self.resolveHeader(components, isArray: isArray, counters: &arrayCounters)
                    positions[table] = Position(line: lineIndex + 1, column: keyStart + 1)
                }
                lineIndex += 1
                continue
            }
            let (components, afterKey) = Self.parseKey(line, from: start)
            guard !components.isEmpty, afterKey < line.count, line[afterKey] == UInt8(ascii: "=") else {
                lineIndex += 1
                continue
            }
            let keyPath = Self.join(table, components)
            positions[keyPath] = Position(line: lineIndex + 1, column: start + 1)
            let valueStart = Self.skipSpaces(line, afterKey + 1)
            if valueStart < line.count, line[valueStart] == UInt8(ascii: "{") {
                _ = recordInlineTable(line, openingBrace: valueStart, prefix: keyPath, lineNumber: lineIndex + 1)
            }
            lineIndex = Self.lineAfterValue(lines, line: lineIndex, from: valueStart)
        }
    }

    /// The position of `keyPath`, or of its nearest recorded ancestor (the table header) when the
    /// key itself was not written, e.g. a required key that is missing.
    func position(of keyPath: String) -> Position? {
        var path = Substring(keyPath)
        while !path.isEmpty {
            if let found = positions[String(path)] { return found }
            guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            path = path[..<cut]
        }
        return nil
    }

    // MARK: - Scanning

    private static func join(_ table: String, _ components: [String]) -> String {
        let key = components.joined(separator: ".")
        return table.isEmpty ? key : table + "." + key
    }

    /// `[[app.output]]` names the next element of the `output` array inside the latest `app`.
    private static func resolveHeader(_ components: [String], isArray: Bool, counters: inout [String: Int]) -> String {
        var path = ""
        for (offset, component) in components.enumerated() {
            path = path.isEmpty ? component : path + "." + component
            let isLast = offset == components.count - 1
            if isLast && isArray {
                let index = (counters[path] ?? -1) + 1
                counters[path] = index
                path += "[\(index)]"
            } else if let index = counters[path] {
                path += "[\(index)]"
            }
        }
        return path
    }

    private static func skipSpaces(_ line: [UInt8], _ index: Int) -> Int {
        var index = index
        while index < line.count, line[index] == UInt8(ascii: " ") || line[index] == UInt8(ascii: "\t") {
            index += 1
        }
        return index
    }

    private static func isBareKeyByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "-")
    }

    /// Reads a (possibly dotted, possibly quoted) key; returns its components and the index of
    /// the first byte after it and any following spaces.
    private static func parseKey(_ line: [UInt8], from start: Int) -> ([String], Int) {
        var components: [String] = []
        var index = skipSpaces(line, start)
        while index < line.count {
            let byte = line[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                let close = line[(index + 1)...].firstIndex(of: byte) ?? line.count
                components.append(String(decoding: line[(index + 1)..<close], as: UTF8.self))
                index = min(close + 1, line.count)
            } else if isBareKeyByte(byte) {
                let begin = index
                while index < line.count, isBareKeyByte(line[index]) { index += 1 }
                components.append(String(decoding: line[begin..<index], as: UTF8.self))
            } else {
                break
            }
            index = skipSpaces(line, index)
            guard index < line.count, line[index] == UInt8(ascii: ".") else { break }
            index = skipSpaces(line, index + 1)
        }
        return (components, index)
    }

    /// Records `prefix.key` for each key of a single-line inline table (TOML 1.0 forbids newlines
    /// inside inline tables) and returns the index after its closing brace.
    private mutating func recordInlineTable(_ line: [UInt8], openingBrace: Int, prefix: String, lineNumber: Int) -> Int {
        var index = openingBrace + 1
        while index < line.count {
            index = Self.skipSpaces(line, index)
            guard index < line.count else { break }
            if line[index] == UInt8(ascii: "}") { return index + 1 }
            if line[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            let keyStart = index
            let (components, afterKey) = Self.parseKey(line, from: index)
            guard !components.isEmpty, afterKey < line.count, line[afterKey] == UInt8(ascii: "=") else { break }
            let keyPath = prefix + "." + components.joined(separator: ".")
            positions[keyPath] = Position(line: lineNumber, column: keyStart + 1)
            index = Self.skipSpaces(line, afterKey + 1)
            if index < line.count, line[index] == UInt8(ascii: "{") {
                index = recordInlineTable(line, openingBrace: index, prefix: keyPath, lineNumber: lineNumber)
            } else {
                index = Self.skipInlineValue(line, from: index)
            }
        }
        return line.count
    }

    /// Skips one value inside an inline table, stopping at the `,` or `}` that ends it.
    private static func skipInlineValue(_ line: [UInt8], from start: Int) -> Int {
        var depth = 0
        var index = start
        while index < line.count {
            let byte = line[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                index = endOfSingleLineString(line, from: index)
                continue
            }
            if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1 }
            if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                if depth == 0 { return index }
                depth -= 1
            }
            if byte == UInt8(ascii: ","), depth == 0 { return index }
            index += 1
        }
        return index
    }

    private static func endOfSingleLineString(_ line: [UInt8], from quoteIndex: Int) -> Int {
        let quote = line[quoteIndex]
        var index = quoteIndex + 1
        while index < line.count {
            if quote == UInt8(ascii: "\""), line[index] == UInt8(ascii: "\\") {
                index += 2
                continue
            }
            if line[index] == quote { return index + 1 }
            index += 1
        }
        return index
    }

    /// Steps over a value that may span lines (multi-line arrays and strings) and returns the
    /// index of the first line after it.
    private static func lineAfterValue(_ lines: [[UInt8]], line startLine: Int, from start: Int) -> Int {
        var lineIndex = startLine
        var index = start
        var depth = 0
        var multiLineQuote: UInt8?
        while lineIndex < lines.count {
            let line = lines[lineIndex]
            while index < line.count {
                let byte = line[index]
                if let quote = multiLineQuote {
                    if quote == UInt8(ascii: "\""), byte == UInt8(ascii: "\\") {
                        index += 2
                        continue
                    }
                    if byte == quote, index + 2 < line.count, line[index + 1] == quote, line[index + 2] == quote {
                        multiLineQuote = nil
                        index += 3
                        continue
                    }
                    index += 1
                    continue
                }
                if byte == UInt8(ascii: "#") { break }
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                    if index + 2 < line.count, line[index + 1] == byte, line[index + 2] == byte {
                        multiLineQuote = byte
                        index += 3
                        continue
                    }
                    index = endOfSingleLineString(line, from: index)
                    continue
                }
                if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1 }
                if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") { depth -= 1 }
                index += 1
            }
            lineIndex += 1
            index = 0
            if depth <= 0 && multiLineQuote == nil { return lineIndex }
        }
        return lineIndex
    }
}
