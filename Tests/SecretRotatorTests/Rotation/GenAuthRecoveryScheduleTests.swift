import Foundation
import Testing

@testable import SecretRotator

/// The recovery schedule (`GenAuthRecovery.schedule`): one slot apart, in the order the
/// retries were due, ties in config order, each with its jitter inside its slot.
@Suite struct GenAuthRecoveryScheduleTests {
    static let answered = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func retriesTakeOneSlotEachInTheOrderTheyWereDue() {
        let waiting = [
            GenAuthRecovery.Waiting(appID: "c", retryDue: Self.answered.addingTimeInterval(30), index: 0),
            GenAuthRecovery.Waiting(appID: "a", retryDue: Self.answered.addingTimeInterval(10), index: 2),
            GenAuthRecovery.Waiting(appID: "b", retryDue: Self.answered.addingTimeInterval(10), index: 1),
        ]
        var jitters = [0.0, 0.5, 0.999].makeIterator()
        let schedule = GenAuthRecovery.schedule(waiting, answeredAt: Self.answered, spacing: 0.1) { jitters.next() ?? 0 }
        // (app, seconds after the answer): b and a were due together, b comes first in config order.
        let expected: [(String, TimeInterval)] = [("b", 0.1), ("a", 0.25), ("c", 0.3999)]
        #expect(schedule.map(\.appID) == expected.map(\.0))
        for (entry, (_, offset)) in zip(schedule, expected) {
            #expect(abs(entry.retryAt.timeIntervalSince(Self.answered) - offset) < 1e-6)
        }
    }

    @Test func nothingWaitingSchedulesNothing() {
        #expect(GenAuthRecovery.schedule([], answeredAt: Self.answered, spacing: 1) { 0 }.isEmpty)
    }
}
