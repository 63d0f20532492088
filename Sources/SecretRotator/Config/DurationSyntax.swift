/// Parses and prints the durations operators write in the config: `500ms`, `90s`, `15m`,
/// `24h`, `30d` and combinations in descending order such as `1h30m`.
///
/// Deliberately strict: a bare number (`"7"`) is refused instead of guessing a unit, because
/// "7 seconds" and "7 days" differ by a factor of 86,400 for a rotation interval.
public enum DurationSyntax {
    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1),
    ]

    public static let accepted = "a number with a unit: ms, s, m, h or d, e.g. \"90s\", \"15m\", \"1h30m\", \"30d\""

    public static func parse(_ text: String) throws(ValueSyntaxError) -> Duration {
        if text.isEmpty {
            throw ValueSyntaxError("empty duration; expected \(accepted)")
        }
        if text.contains(where: \.isWhitespace) {
            throw ValueSyntaxError("duration \"\(text)\" contains whitespace; write it without spaces, e.g. \"1h30m\"")
        }
        if text.hasPrefix("-") {
            throw ValueSyntaxError("duration \"\(text)\" is negative; durations must be zero or more")
        }
        if text.hasPrefix("+") {
            throw ValueSyntaxError("duration \"\(text)\" has a sign; write just the number and unit, e.g. \"90s\"")
        }
        let bytes = Array(text.utf8)
        var index = 0
        var total: Int64 = 0
        var lastUnitRank = -1
        while index < bytes.count {
            var number: Int64 = 0
            let digitsStart = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                let (times10, overflow1) = number.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
                if overflow1 || overflow2 {
                    throw ValueSyntaxError("duration \"\(text)\" is too large")
                }
                number = sum
                index += 1
            }
            if index == digitsStart {
                throw ValueSyntaxError("duration \"\(text)\" is not \(accepted)")
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: ",") {
                throw ValueSyntaxError("duration \"\(text)\" has a fraction; combine whole units instead, e.g. \"1h30m\"")
            }
            let unitStart = index
            while index < bytes.count, !(bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")) {
                index += 1
            }
            let unit = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            if unit.isEmpty {
                throw ValueSyntaxError(
                    "duration \"\(text)\" has no unit; add one of ms, s, m, h, d (e.g. \"\(text)s\" or \"\(text)d\")")
            }
            guard let rank = units.firstIndex(where: { $0.suffix == unit }) else {
                throw ValueSyntaxError("duration \"\(text)\" has an unknown unit \"\(unit)\"; use ms, s, m, h or d")
            }
            if rank <= lastUnitRank {
                throw ValueSyntaxError(
                    "duration \"\(text)\" repeats or misorders units; write the largest unit first, each once, e.g. \"1h30m\"")
            }
            lastUnitRank = rank
            let (part, overflow1) = number.multipliedReportingOverflow(by: units[rank].milliseconds)
            let (sum, overflow2) = total.addingReportingOverflow(part)
            if overflow1 || overflow2 {
                throw ValueSyntaxError("duration \"\(text)\" is too large")
            }
            total = sum
        }
        // Callers add durations to dates; a cap far above any sane interval keeps that arithmetic safe.
        if total > maximumMilliseconds {
            throw ValueSyntaxError("duration \"\(text)\" is too large; at most 36500d")
        }
        return .milliseconds(total)
    }

    private static let maximumMilliseconds: Int64 = 36_500 * 86_400_000

    /// The shortest spelling in the same syntax, so `check-config` echoes what `parse` accepts.
    public static func format(_ duration: Duration) -> String {
        var remaining = milliseconds(of: duration)
        if remaining == 0 { return "0s" }
        var parts = ""
        for unit in units where remaining >= unit.milliseconds {
            parts += "\(remaining / unit.milliseconds)\(unit.suffix)"
            remaining %= unit.milliseconds
        }
        return parts
    }

    public static func milliseconds(of duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
