import Foundation
import Testing

@testable import SecretRotator

/// "2026-03-29T01:00:00Z" as a Date; test literals only.
func utc(_ text: String) throws -> Date {
    try Date(text, strategy: .iso8601)
}

@Suite struct RotationWindowTests {
    func window(_ text: String) throws -> RotationWindow {
        try #require(try RotationWindow.parse(text))
    }

    @Test func parsesDaysTimesAndZone() throws {
        let weekdays = try window("Mon..Fri 02:00-04:00 Europe/Berlin")
        #expect(weekdays.days == [false, true, true, true, true, true, false])
        #expect(weekdays.startMinute == 120 && weekdays.endMinute == 240)
        #expect(weekdays.timeZone.identifier == "Europe/Berlin" && weekdays.zoneName == "Europe/Berlin")
        #expect(weekdays.description == "Mon..Fri 02:00-04:00 Europe/Berlin")

        // Days omitted or "*": every day; zone omitted: UTC. Case does not matter.
        let daily = try window("22:00-02:00")
        #expect(daily.days == Array(repeating: true, count: 7))
        #expect(daily.timeZone.secondsFromGMT() == 0)
        #expect(daily.lengthMinutes == 240)
        #expect(try window("* 22:00-02:00 UTC").days == daily.days)

        // Comma lists and ranges that wrap past Sunday.
        #expect(try window("sat,SUN 00:00-24:00").days == [true, false, false, false, false, false, true])
        #expect(try window("Fri..Mon 01:00-02:00").days == [true, true, false, false, false, true, true])
        #expect(try window("Mon,Wed..Thu 01:00-02:00").description == "Mon,Wed,Thu 01:00-02:00 UTC")

        #expect(try RotationWindow.parse("always") == nil, "\"always\" switches a default window off")
    }

    @Test(arguments: [
        ("", "empty window"),
        ("Mon..Fry 02:00-04:00", "unknown day \"Fry\""),
        ("Mon,,Tue 02:00-04:00", "an empty day"),
        ("Mon..Tue..Wed 02:00-04:00", "more than one \"..\""),
        ("Mon Tue 02:00-04:00", "more than one field before the time range"),
        ("Mon 25:00-04:00", "\"25:00\" is not a time of day"),
        ("Mon 02:60-04:00", "\"02:60\" is not a time of day"),
        ("Mon 2:00-04:00", "\"2:00\" is not a time HH:MM"),
        ("Mon 24:00-02:00", "\"24:00\" is not a time of day"),
        ("Mon 02:00", "has no time range"),
        ("Mon", "has no time range"),
        ("Mon 02:00-04:00 Europe/Berln", "unknown time zone \"Europe/Berln\""),
        ("Mon 02:00-02:00 UTC", "zero-length"),
        ("Mon 02:00-04:00 UTC extra", "extra fields"),
    ])
    func refusesBadValuesNamingThePart(_ text: String, _ fragment: String) {
        #expect(throws: ValueSyntaxError.self) { try RotationWindow.parse(text) }
        do {
            _ = try RotationWindow.parse(text)
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func nextOpeningIsTheContainingOrTheNextWindow() throws {
        let weekdays = try window("Mon..Fri 02:00-04:00 UTC")
        // Friday 2026-12-04, before, inside and after the opening; then the weekend.
        #expect(weekdays.nextOpening(atOrAfter: try utc("2026-12-04T01:00:00Z")) == DateInterval(start: try utc("2026-12-04T02:00:00Z"), end: try utc("2026-12-04T04:00:00Z")))
        #expect(weekdays.nextOpening(atOrAfter: try utc("2026-12-04T03:59:00Z")).start == (try utc("2026-12-04T02:00:00Z")))
        #expect(weekdays.nextOpening(atOrAfter: try utc("2026-12-04T04:00:00Z")).start == (try utc("2026-12-07T02:00:00Z")))
        #expect(weekdays.contains(try utc("2026-12-04T02:00:00Z")))
        #expect(!weekdays.contains(try utc("2026-12-04T04:00:00Z")))
        #expect(!weekdays.contains(try utc("2026-12-05T03:00:00Z")), "Saturday")
    }

    @Test func aWindowCrossingMidnightBelongsToTheDayItOpens() throws {
        let friday = try window("Fri 22:00-02:00 UTC")
        let opening = DateInterval(start: try utc("2026-12-04T22:00:00Z"), end: try utc("2026-12-05T02:00:00Z"))
        #expect(friday.nextOpening(atOrAfter: try utc("2026-12-05T01:30:00Z")) == opening, "Saturday 01:30 is inside Friday's window")
        #expect(friday.nextOpening(atOrAfter: try utc("2026-12-04T12:00:00Z")) == opening)
        #expect(friday.nextOpening(atOrAfter: try utc("2026-12-05T02:00:00Z")).start == (try utc("2026-12-11T22:00:00Z")))
    }

    /// Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST; 2026-10-25 03:00 CEST falls back
    /// to 02:00 CET. Wall-clock times come from Calendar, so the real length changes.
    @Test func daylightSavingDaysInBerlin() throws {
        let sunday = try window("Sun 02:00-04:00 Europe/Berlin")
        // A normal Sunday: 02:00 CET is 01:00 UTC.
        #expect(sunday.nextOpening(atOrAfter: try utc("2026-03-21T12:00:00Z")) == DateInterval(start: try utc("2026-03-22T01:00:00Z"), end: try utc("2026-03-22T03:00:00Z")))
        // Spring forward: 02:00 does not exist, the window opens at 03:00 CEST (01:00 UTC) for one hour.
        let spring = sunday.nextOpening(atOrAfter: try utc("2026-03-28T12:00:00Z"))
        #expect(spring == DateInterval(start: try utc("2026-03-29T01:00:00Z"), end: try utc("2026-03-29T02:00:00Z")))
        // Fall back: 02:00 CEST (00:00 UTC) to 04:00 CET (03:00 UTC), three real hours.
        let autumn = sunday.nextOpening(atOrAfter: try utc("2026-10-24T12:00:00Z"))
        #expect(autumn == DateInterval(start: try utc("2026-10-25T00:00:00Z"), end: try utc("2026-10-25T03:00:00Z")))
        #expect(sunday.localTime(try utc("2026-03-29T01:00:00Z")) == "Sun 03:00 Europe/Berlin")
        // A window entirely inside the skipped hour is skipped that day, not made zero-length.
        let skipped = try window("Sun 02:00-02:30 Europe/Berlin")
        #expect(skipped.nextOpening(atOrAfter: try utc("2026-03-28T12:00:00Z")).start == (try utc("2026-04-05T00:00:00Z")))
    }
}
