import Testing

@testable import SecretRotator

/// The sleep every wait of the daemon uses: it ends at its deadline or at once when cancelled.
/// What it leaves behind per cancelled sleep is measured by Tests/Benchmarks/soak.py (memory per
/// step), which CI bounds.
@Suite(.timeLimit(.minutes(1)), .tags(.addressSanitizer))
struct QuietSleepTests {
    @Test func aShortSleepEnds() async throws {
        try await QuietSleep.sleep(for: .milliseconds(5))
        try await QuietSleep.sleep(for: .zero)
        try await QuietSleep.sleep(for: .milliseconds(-5))
    }

    @Test func cancellingAnHourLongSleepEndsItAtOnce() async throws {
        for _ in 0..<200 {
            let sleeper = Task { try await QuietSleep.sleep(for: .seconds(3_600)) }
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
        }
    }

    @Test func aSleepInACancelledTaskThrowsWithoutWaiting() async throws {
        let sleeper = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await QuietSleep.sleep(for: .seconds(3_600))
        }
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }

    /// The race a wake-up makes: sleeps cancelled while they are being armed.
    @Test func cancellationRacingTheStartAlwaysEndsTheSleep() async throws {
        await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<500 {
                let sleeper = Task { try await QuietSleep.sleep(for: .seconds(3_600)) }
                group.addTask {
                    sleeper.cancel()
                    return (try? await sleeper.value) == nil
                }
            }
            for await threw in group { #expect(threw) }
        }
    }
}
