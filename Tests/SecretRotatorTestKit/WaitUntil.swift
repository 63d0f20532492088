/// The condition of a `waitUntil` did not hold before its deadline.
package struct WaitTimeout: Error, CustomStringConvertible {
    package let what: String
    package let deadline: Duration
    package let fileID: String
    package let line: Int

    package var description: String {
        "\(fileID):\(line): not within \(deadline): \(what.isEmpty ? "the condition never held" : what)"
    }
}

/// Polls `condition` until it holds; throws `WaitTimeout` (saying `what`, evaluated only then)
/// once `deadline` has passed without it. The one way a test waits for something another task,
/// thread or process does: the bound keeps a lost wake-up from hanging the suite, and no test
/// asserts how long anything took.
///
/// The first polls come quickly (1 ms), later ones back off to 50 ms, so a fast effect is seen
/// at once and a slow one (a child process, etcd) costs little CPU while the whole suite runs
/// in parallel on 2 cores. The default bound is generous for the same reason: tests that wait
/// for child processes can keep the cooperative pool busy for seconds. An error thrown by
/// `condition` ends the wait at once and is rethrown.
package func waitUntil(
    deadline: Duration = .seconds(30),
    _ what: @autoclosure () -> String = "",
    fileID: String = #fileID, line: Int = #line,
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: deadline)
    var pause = Duration.milliseconds(1)
    while true {
        if try await condition() { return }
        guard clock.now < end else { break }
        try await Task.sleep(for: min(pause, max(end - clock.now, .milliseconds(1))))
        pause = min(pause * 2, .milliseconds(50))
    }
    throw WaitTimeout(what: what(), deadline: deadline, fileID: fileID, line: line)
}
