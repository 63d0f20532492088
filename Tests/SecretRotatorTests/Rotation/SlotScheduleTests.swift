import Testing

@testable import SecretRotator

/// The global request budget, decided without a clock: instants are made up, nothing waits.
@Suite struct SlotScheduleTests {
    let start = ContinuousClock.now

    @Test func callersArrivingTogetherAreSpacedByTheRate() {
        var schedule = SlotSchedule(requestsPerSecond: 5, start: start)
        let slots = (0..<10).map { _ in schedule.reserve(now: start) }
        #expect(slots == (0..<10).map { start.advanced(by: .milliseconds(200 * $0)) })
    }

    @Test func idleTimeEarnsNoBurst() {
        var schedule = SlotSchedule(requestsPerSecond: 5, start: start)
        _ = schedule.reserve(now: start)
        let later = start.advanced(by: .seconds(3_600))
        let slots = (0..<3).map { _ in schedule.reserve(now: later) }
        #expect(slots == [later, later.advanced(by: .milliseconds(200)), later.advanced(by: .milliseconds(400))])
    }

    @Test func aCallerAfterItsSlotGoesAtOnce() {
        var schedule = SlotSchedule(requestsPerSecond: 2, start: start)
        #expect(schedule.reserve(now: start) == start)
        let late = start.advanced(by: .milliseconds(700))
        #expect(schedule.reserve(now: late) == late, "the slot at 500 ms has passed")
        #expect(schedule.reserve(now: late) == late.advanced(by: .milliseconds(500)))
    }

    @Test func fractionalAndTinyRates() {
        #expect(SlotSchedule(requestsPerSecond: 0.5, start: start).spacing == .seconds(2))
        #expect(SlotSchedule(requestsPerSecond: 200, start: start).spacing == .milliseconds(5))
        #expect(SlotSchedule(requestsPerSecond: 0, start: start).spacing == .seconds(1_000), "never divides by zero")
    }
}
