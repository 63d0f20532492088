import Foundation
import Testing

/// Minimized inputs on which ConfigFuzz (Tests/Fuzz) crashed. They run the built
/// `secret-rotator check-config` in a child process: the crash aborts the whole process, which
/// would take the test runner down with it.
@Suite struct ParserAbortingConfigTests {
    /// toml++ 3.4.0 (inside TOMLKit 0.6.0) checks its parser's preconditions with assert(), and
    /// these invalid documents break them: a table header whose key starts with neither a
    /// bare-key character nor a quote (parse_key), and a date-time whose time part does not
    /// start with a digit (parse_time), an array element starting with '}' (parse_value). SwiftPM compiles dependencies without NDEBUG in release
    /// builds too, so the shipped daemon and check-config abort (SIGABRT) instead of reporting
    /// a syntax error. `ConfigInputLimits` now refuses both shapes before toml++ sees them.
    static let tomlppAssertions = [
        "[,", "[?defaults]\n", "a = 1979-05-27T+7:00\n", "[", "[[ ?x]]\n", "a = [1979-05-27t ]\n", "x = 1979-05-27T",
        "app = [ { id = \"a1\", output = [ } ] } ]\n", "a = [1, }\n", "a = [\n  # c\n  }\n",
        // Unicode line separators as array elements, a BOM before a
        // header, other Unicode spaces and control characters outside strings.
        "a = [\u{2028}]\n", "a = [\u{0085}]\n", "a = [1,\u{2029}]\n", "on_rotate = [\u{2028}]\n", "a = [\u{00A0}]\n",
        "\u{FEFF}[,\n", "\u{FEFF}[?defaults]\n", "a = [\u{0B}]\n", "a = [\u{0C}]\n",
    ]

    @Test("invalid TOML that trips a toml++ assertion is a syntax error, not an abort", arguments: tomlppAssertions)
    func tomlppAssertionIsASyntaxError(_ toml: String) throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("rotator.toml")
        try ConfigFixtures.write(toml, to: file)
        // No Swift backtrace for the expected abort: it takes seconds and says nothing new.
        let result = try CLI.run(["check-config", "--config", file.path], environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("TOML syntax error"), "\(result.stderr)")
    }
}
