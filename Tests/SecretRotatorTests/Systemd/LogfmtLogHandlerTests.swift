import Foundation
import Logging
import Testing

@testable import SecretRotator

/// Log lines outside journald: `time level message key=value…`, one line per
/// event, values quoted as logfmt does, line breaks in hook output escaped.
@Suite struct LogfmtLogHandlerTests {
    @Test func oneLineWithTheMessageFirstAndLogfmtValues() {
        let time = Date(timeIntervalSince1970: 1_796_000_000.25)
        let line = LogfmtLogHandler.line(
            time: time, level: .warning, message: "hook output",
            metadata: [
                "app_name": "billing", "hook_output": "line one\nline \"two\"\tend\\", "version": "3",
                "empty": "", "target_path": "/srv/a b/c=d",
            ])
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().contains("\n") == false, "one event, one line: \(line)")
        #expect(line.hasPrefix("2026-11-30T00:53:20.250Z "), "RFC 3339, UTC: \(line)")
        let afterTime = line.split(separator: " ", maxSplits: 1)[1]
        #expect(afterTime == """
            warning hook output app_name=billing empty="" hook_output="line one\\nline \\"two\\"\\tend\\\\" target_path="/srv/a b/c=d" version=3

            """)
        #expect(LogfmtLogHandler.quoted("bell\u{7}") == "\"bell\\u{7}\"")
        #expect(LogfmtLogHandler.quoted("abc\u{202E}fed\u{2028}") == "\"abc\\u{202e}fed\\u{2028}\"", "bidi and separators escaped")
        #expect(LogfmtLogHandler.line(time: time, level: .info, message: "a\nb", metadata: [:]).hasSuffix(" info a\\nb\n"))
    }

    @Test func theHandlerWritesWhatItIsGivenAsOneWrite() {
        let lines = LockedLines()
        var handler = LogfmtLogHandler(label: "secret-rotator", output: { lines.append($0) })
        handler.logLevel = .info
        handler[metadataKey: "app_name"] = "search"
        let logger = Logger(label: "secret-rotator") { _ in handler }
        logger.notice("rotated", metadata: ["version": "2"])
        logger.debug("not shown")
        #expect(lines.all.count == 1)
        #expect(lines.all.first?.contains(" notice rotated app_name=search version=2\n") == true)
    }
}

private final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}
