import Foundation
import Testing

@testable import SecretRotator
import SecretRotatorTestKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One liveness rule for a PID: the app lock's holder, the daemon `rotate` waits for, and the
/// writer of the cluster status file.
@Suite struct ProcessLivenessTests {
    static let rows: [(name: String, errno: Int32, state: Character?, expected: ProcessLiveness)] = [
        ("ours, running", 0, "R", .running),
        ("ours, sleeping", 0, "S", .running),
        ("ours, in disk sleep", 0, "D", .running),
        ("ours, idle kernel thread", 0, "I", .running),
        ("ours, stopped", 0, "T", .stopped),
        ("ours, traced", 0, "t", .stopped),
        ("ours, zombie", 0, "Z", .gone),
        ("ours, dead", 0, "X", .gone),
        ("ours, /proc unreadable", 0, nil, .running),
        ("another user's, running", EPERM, "S", .running),
        ("another user's, stopped", EPERM, "T", .stopped),
        ("another user's, /proc hidden (hidepid)", EPERM, nil, .running),
        ("no such process", ESRCH, nil, .gone),
        ("no such process, stale /proc read", ESRCH, "S", .gone),
    ]

    @Test func everyRowMatches() {
        for row in Self.rows {
            let state = row.state.map { UInt8(ascii: $0.unicodeScalars.first ?? " ") }
            #expect(ProcessLiveness.judge(signalZeroErrno: row.errno, procState: state) == row.expected, "\(row.name)")
        }
    }

    static let statLines: [(line: String, expected: (state: Character, group: pid_t)?)] = [
        ("1234 (sleep) S 1 1234 1234 0 -1", ("S", 1234)),
        ("77 (a) b) c) T 1 70 70 0", ("T", 70)),
        ("9 (with space) Z 1 5 5", ("Z", 5)),
        ("no parenthesis S 1 2", nil),
        ("5 (short) S 1", nil),
    ]

    @Test func statLinesParse() {
        for row in Self.statLines {
            let fields = ProcessLiveness.statFields(Array(row.line.utf8)[...])
            #expect(fields?.state == row.expected.map { UInt8(ascii: $0.state.unicodeScalars.first ?? " ") }, "\(row.line)")
            #expect(fields?.group == row.expected?.group, "\(row.line)")
        }
    }

    /// The I/O around the rule: a child that runs, stops, becomes a zombie, and is reaped.
    @Test func aChildThroughItsLife() async throws {
        #expect(ProcessLiveness.of(getpid()) == .running)
        #expect(ProcessLiveness.of(0) == .gone)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["60"]
        try child.run()
        let pid = child.processIdentifier
        #expect(ProcessLiveness.of(pid) == .running)
        kill(pid, SIGSTOP)
        try await waitUntil("the child never showed as stopped") { ProcessLiveness.of(pid) == .stopped }
        kill(pid, SIGKILL)
        child.waitUntilExit()
        // Reaped by Foundation: the PID names nobody (a reuse within this test is not expected).
        #expect(ProcessLiveness.of(pid) == .gone)
    }
}
