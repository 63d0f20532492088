// Full Foundation, not FoundationEssentials: named time zones and their daylight-saving rules
// come from FoundationInternationalization (ICU's tz data); Essentials knows only fixed offsets.
import Foundation

/// When an app's scheduled rotations may start (config key `window`): days of the week and a
/// wall-clock time range in one time zone, e.g. `"Mon..Fri 02:00-04:00 Europe/Berlin"`.
///
/// GenAuth kills the old secret the moment a refresh answers, so each rotation is a short
/// outage for the app's consumers; a window lets operators choose when it happens. Scheduled
/// rotations that fall due outside the window wait for its next opening (`RotationPlanner`);
/// everything else (retries, writes, reconciles, polls, an operator's `rotate`) does not.
///
/// Syntax: `[days] HH:MM-HH:MM [zone]`, fields separated by spaces.
/// - days: `*` (every day, also when omitted) or a comma list of `Mon`..`Sun` and ranges
///   `Mon..Fri` (case-insensitive; a range may wrap, `Fri..Mon`). The days name the day on
///   which the window opens.
/// - time range: 24-hour `HH:MM-HH:MM` in the zone's wall-clock time; an end before the start
///   crosses midnight (`22:00-02:00`), `24:00` ends at midnight; start equal to end is refused.
/// - zone: an IANA time zone name such as `Europe/Berlin`; `UTC` when omitted.
///
/// On a daylight-saving day a wall-clock time that does not exist (02:30 when clocks jump from
/// 02:00 to 03:00) moves to the next time that does (03:00), and a repeated one means its first
/// occurrence; a window that vanishes that way is skipped for the day.
public struct RotationWindow: Sendable, Equatable, CustomStringConvertible {
    /// Opening days, index 0 = Sunday ... 6 = Saturday (`Calendar`'s weekday minus one).
    public let days: [Bool]
    /// Minutes after midnight, 0..<1440.
    public let startMinute: Int
    /// Minutes after midnight, 0...1440; not after `startMinute` means the window ends on the next day.
    public let endMinute: Int
    public let timeZone: TimeZone
    /// The zone as the config names it ("UTC" when omitted); Foundation reports UTC as "GMT".
    public let zoneName: String

    static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let example = "\"Mon..Fri 02:00-04:00 Europe/Berlin\""
    /// The value that switches a `[defaults]` window off for one app.
    public static let alwaysKeyword = "always"

    /// The window's length in wall-clock minutes (1...1440); real time differs on DST days.
    public var lengthMinutes: Int {
        endMinute > startMinute ? endMinute - startMinute : 1440 - startMinute + endMinute
    }

    /// The canonical form: `"Mon..Fri 02:00-04:00 Europe/Berlin"`, `"* 22:00-02:00 UTC"`.
    public var description: String {
        "\(Self.describeDays(days)) \(Self.clock(startMinute))-\(Self.clock(endMinute)) \(zoneName)"
    }

    /// Parses the config value.
    ///
    /// - Returns: nil for `"always"` (no window: rotations start whenever they fall due).
    /// - Throws: `ValueSyntaxError` naming the bad part: an unknown day, a bad time, an
    ///   unknown time zone, a zero-length window, or extra fields.
    public static func parse(_ text: String) throws(ValueSyntaxError) -> RotationWindow? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if fields.isEmpty {
            throw ValueSyntaxError("empty window; give one such as \(example), or \"\(alwaysKeyword)\" for no window")
        }
        if fields == [alwaysKeyword] { return nil }
        guard let timeIndex = fields.firstIndex(where: { $0.contains(":") && $0.contains("-") && !$0.contains("/") })
        else {
            throw ValueSyntaxError("\"\(text)\" has no time range HH:MM-HH:MM; write a window such as \(example)")
        }
        if timeIndex > 1 {
            throw ValueSyntaxError("\"\(text)\" has more than one field before the time range; write days as one comma list such as \"Mon,Wed..Fri\" without spaces")
        }
        if fields.count > timeIndex + 2 {
            throw ValueSyntaxError("\"\(text)\" has extra fields after the time zone; write a window such as \(example)")
        }
        let days = timeIndex == 1 ? try parseDays(fields[0]) : Array(repeating: true, count: 7)
        let (start, end) = try parseTimes(fields[timeIndex])
        let name = fields.count == timeIndex + 2 ? fields[timeIndex + 1] : "UTC"
        guard let zone = TimeZone(identifier: name) else {
            throw ValueSyntaxError("unknown time zone \"\(name)\"; give an IANA name such as \"Europe/Berlin\" or \"UTC\"")
        }
        return RotationWindow(days: days, startMinute: start, endMinute: end, timeZone: zone, zoneName: name)
    }

    /// The window that contains `date`, or else the next one to open.
    ///
    /// - Returns: the opening as a half-open interval [start, end) of real time; on a DST day
    ///   its duration differs from `lengthMinutes`. Never nil for a parsed window (some day of
    ///   every week opens); should Calendar find no date at all, `date` with zero duration,
    ///   which callers treat as open at once rather than never.
    public func nextOpening(atOrAfter date: Date) -> DateInterval {
        let calendar = calendar
        let today = calendar.startOfDay(for: date)
        // From yesterday: a window that opened yesterday may cross midnight into `date`.
        // Fifteen days cover a week even when a DST day swallows one opening.
        for dayOffset in -1...14 {
            guard let day = calendar.date(byAdding: .day, value: dayOffset, to: today),
                let opening = opening(on: calendar.startOfDay(for: day), calendar: calendar),
                opening.end > date
            else { continue }
            return opening
        }
        return DateInterval(start: date, duration: 0)
    }

    /// Whether `date` is inside an opening.
    public func contains(_ date: Date) -> Bool {
        nextOpening(atOrAfter: date).start <= date
    }

    /// `date` in the window's zone as people read it there: "Tue 02:23 Europe/Berlin".
    public func localTime(_ date: Date) -> String {
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        let weekday = ((parts.weekday ?? 1) - 1 + 7) % 7
        let minutes = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        return "\(Self.dayNames[weekday]) \(Self.clock(minutes)) \(zoneName)"
    }

    // MARK: - Private

    private var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }

    /// The opening that starts on `day` (its local midnight), nil when the day is not an
    /// opening day or DST leaves nothing of it.
    private func opening(on day: Date, calendar: Calendar) -> DateInterval? {
        let weekday = calendar.component(.weekday, from: day) - 1
        guard days.indices.contains(weekday), days[weekday] else { return nil }
        guard let start = wallClock(startMinute, on: day, calendar: calendar) else { return nil }
        let endDay = endMinute > startMinute ? day : calendar.date(byAdding: .day, value: 1, to: day)
        guard let endDay, let end = wallClock(endMinute, on: calendar.startOfDay(for: endDay), calendar: calendar),
            end > start
        else { return nil }
        return DateInterval(start: start, end: end)
    }

    /// `minute` after the local midnight of `day` on the wall clock; 1440 is the next midnight.
    private func wallClock(_ minute: Int, on day: Date, calendar: Calendar) -> Date? {
        if minute == 1440 {
            return calendar.date(byAdding: .day, value: 1, to: day).map { calendar.startOfDay(for: $0) }
        }
        return calendar.date(
            bySettingHour: minute / 60, minute: minute % 60, second: 0, of: day, matchingPolicy: .nextTime,
            repeatedTimePolicy: .first, direction: .forward)
    }

    private static func parseDays(_ text: String) throws(ValueSyntaxError) -> [Bool] {
        var days = Array(repeating: false, count: 7)
        if text == "*" { return Array(repeating: true, count: 7) }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.components(separatedBy: "..")
            guard bounds.count <= 2 else {
                throw ValueSyntaxError("day range \"\(item)\" has more than one \"..\"; write a range such as \"Mon..Fri\"")
            }
            let first = try day(bounds[0])
            let last = bounds.count == 2 ? try day(bounds[1]) : first
            var index = first
            while true {
                days[index] = true
                if index == last { break }
                index = (index + 1) % 7
            }
        }
        return days
    }

    private static func day(_ text: String) throws(ValueSyntaxError) -> Int {
        guard let index = dayNames.firstIndex(where: { $0.lowercased() == text.lowercased() }) else {
            let shown = text.isEmpty ? "an empty day" : "unknown day \"\(text)\""
            throw ValueSyntaxError("\(shown); use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges such as \"Mon..Fri\", or \"*\" for every day")
        }
        return index
    }

    private static func parseTimes(_ text: String) throws(ValueSyntaxError) -> (Int, Int) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw ValueSyntaxError("time range \"\(text)\" is not HH:MM-HH:MM, e.g. \"02:00-04:00\"")
        }
        let start = try minutes(String(parts[0]), allowMidnightEnd: false)
        let end = try minutes(String(parts[1]), allowMidnightEnd: true)
        if start == end {
            throw ValueSyntaxError("time range \"\(text)\" is zero-length (starts where it ends); give an end after the start, or before it to cross midnight")
        }
        return (start, end)
    }

    private static func minutes(_ text: String, allowMidnightEnd: Bool) throws(ValueSyntaxError) -> Int {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let digits = parts.allSatisfy { $0.count == 2 && $0.allSatisfy { $0.isASCII && $0.isNumber } }
        guard parts.count == 2, digits, let hour = Int(parts[0]), let minute = Int(parts[1]) else {
            throw ValueSyntaxError("\"\(text)\" is not a time HH:MM (24-hour, two digits each, e.g. \"02:00\")")
        }
        if allowMidnightEnd && hour == 24 && minute == 0 { return 1440 }
        guard hour < 24, minute < 60 else {
            throw ValueSyntaxError("\"\(text)\" is not a time of day; hours are 00-23 and minutes 00-59 (24:00 only as an end)")
        }
        return hour * 60 + minute
    }

    private static func clock(_ minute: Int) -> String {
        let hour = minute / 60
        let rest = minute % 60
        return "\(hour < 10 ? "0" : "")\(hour):\(rest < 10 ? "0" : "")\(rest)"
    }

    /// "*" for every day, else runs of three or more as ranges: "Mon..Fri", "Sat,Sun".
    private static func describeDays(_ days: [Bool]) -> String {
        if days.allSatisfy({ $0 }) { return "*" }
        // Weeks read Monday first in a window ("Mon..Fri", "Sat,Sun").
        let order = [1, 2, 3, 4, 5, 6, 0]
        var items: [String] = []
        var run: [Int] = []
        func flush() {
            guard let first = run.first, let last = run.last else { return }
            if run.count >= 3 {
                items.append("\(dayNames[first])..\(dayNames[last])")
            } else {
                items += run.map { dayNames[$0] }
            }
            run = []
        }
        for index in order {
            if days[index] { run.append(index) } else { flush() }
        }
        flush()
        return items.joined(separator: ",")
    }
}
