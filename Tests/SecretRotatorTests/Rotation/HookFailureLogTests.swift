import Foundation
import InMemoryLogging
import Logging
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// A hook that fails says why where an operator looks: its own event (`hook_failed`, whose
/// journal MESSAGE_ID the catalog explains), not the rotation-failure one, and the first line
/// the hook printed in MESSAGE, e.g. systemctl refused by polkit under the hardened unit.
@Suite struct HookFailureLogTests {
    /// Fails every run with `output`, as `systemctl` does without a polkit grant.
    struct PrintingFailingHookRunner: HookRunning {
        let output: String
        func run(_ invocation: HookInvocation) async -> HookOutcome {
            HookOutcome(status: .exited(1), output: output)
        }
    }

    static let polkitRefusal = """

        Failed to reload-or-restart billing.service: Interactive authentication required.
        See system logs and 'systemctl status billing.service' for details.

        """

    /// One pass of an engine whose hooks are `hooks`; what it logged is in `fixture.capture`.
    static func runOnce(_ fixture: EngineFixture, hooks: any HookRunning) async throws -> LogCapture {
        _ = try await fixture.startedEngine(config: fixture.config(hook: ["/bin/true"]), hooks: hooks)
        return fixture.capture
    }

    @Test func aFailedHookIsLoggedAsHookFailedWithItsFirstLine() async throws {
        try await withEngineFixture { harness, fixture in
            let handler = try await Self.runOnce(fixture, hooks: PrintingFailingHookRunner(output: Self.polkitRefusal))
            let failures = handler.entries.filter { $0.metadata["event"] == "hook_failed" }
            #expect(failures.count == 2, "one per app: \(handler.entries.map { "\($0.metadata["event"] ?? "-") \($0.message)" })")
            for entry in failures {
                #expect(entry.level == .error)
                #expect("\(entry.message)".contains("exited with status 1: Failed to reload-or-restart billing.service: Interactive authentication required."))
                #expect(!"\(entry.message)".contains("See system logs"), "only the first line")
                #expect(entry.metadata["version"] == "1")
            }
            #expect(!handler.entries.contains { $0.metadata["event"] == "rotation_failed" }, "a hook failure is not a rotation failure")
            #expect(JournalEvent(rawValue: "hook_failed")?.messageID == "d1a755e7b7d647b38ff22027679b68aa")
        }
    }

    /// Reads the secret from the output it is given, as a hook checking its config would, and
    /// fails printing it in pieces: halves on two lines, uppercased, behind a carriage return.
    struct LeakingHookRunner: HookRunning {
        func run(_ invocation: HookInvocation) async -> HookOutcome {
            let path = invocation.environment["ROTATOR_OUTPUTS"]?.split(separator: "\n").first.map(String.init) ?? ""
            let secret = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let half = secret.count / 2
            let output = "key \(secret.prefix(half).uppercased())\r\(secret.dropFirst(half))\nrejected \(secret.prefix(12))\n"
            return HookOutcome(status: .exited(2), output: output)
        }
    }

    @Test func noPieceOfTheSecretReachesTheLog() async throws {
        try await withEngineFixture { harness, fixture in
            let handler = try await Self.runOnce(fixture, hooks: LeakingHookRunner())
            #expect(handler.entries.contains { $0.metadata["event"] == "hook_failed" })
            let logged = handler.entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n").lowercased()
            for id in fixture.appIDs {
                let secret = try #require(harness.state.currentSecret(appId: id)).lowercased()
                let pieces = (0...(secret.count - 8)).map { String(Array(secret)[$0..<($0 + 8)]) }
                #expect(!pieces.contains { logged.contains($0) }, "a piece of \(id)'s secret was logged")
            }
        }
    }

    @Test func redactionFindsPiecesInAnyCase() {
        let secret = "0123456789abcdef0123456789ABCDEF"
        #expect(SecretRedaction.redacting(secret, in: "k=\(secret)!") == "k=<redacted>!")
        #expect(SecretRedaction.redacting(secret, in: "K=\(secret.uppercased())") == "K=<redacted>")
        #expect(SecretRedaction.redacting(secret, in: "a 0123456789AB\ncdef0123 b") == "a <redacted>\n<redacted> b")
        #expect(SecretRedaction.redacting(secret, in: "short 0123456 stays") == "short 0123456 stays", "7 characters are not a piece")
        #expect(SecretRedaction.redacting("short", in: "short") == "short")
        #expect(SecretRedaction.redacting(secret, in: "") == "")
    }

    @Test func theDetailIsTheStatusAndTheFirstNonEmptyLine() {
        #expect(HookOutcome.failureDetail(status: .exited(3), output: "") == "exited with status 3")
        #expect(HookOutcome.failureDetail(status: .exited(3), output: " \n\t\n") == "exited with status 3")
        #expect(HookOutcome.failureDetail(status: .timedOut, output: "  waiting for lock  \nmore") == "timed out (its process group was terminated): waiting for lock")
        let long = String(repeating: "x", count: 500)
        #expect(HookOutcome.failureDetail(status: .exited(1), output: long, lineLimit: 10) == "exited with status 1: xxxxxxxxxx…")
    }
}
