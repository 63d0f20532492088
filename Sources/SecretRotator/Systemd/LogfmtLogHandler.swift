#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Log lines on stderr when not under journald: `time level message key=value…`, one line
/// per event, written with one write(2) so lines of concurrent tasks never interleave.
///
/// The time is RFC 3339 UTC with milliseconds; the level is swift-log's name; the message
/// comes first so a person reads it without scanning metadata; the metadata follows sorted
/// by key, with values quoted as logfmt does (Brandur Leach, "logfmt"; the Go
/// `github.com/go-logfmt/logfmt` rules): a value holding a space, `=`, `"`, a control
/// character or nothing is written in double quotes with `\"`, `\\`, `\n`, `\r`, `\t` and
/// `\u{…}` escapes. Line breaks in the message (hook output) are escaped the same way, so
/// an event is exactly one line; so are Unicode format and separator characters (U+2028,
/// U+202E bidi overrides: a line must read as what it holds).
public struct LogfmtLogHandler: LogHandler {
    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let output: @Sendable (String) -> Void

    /// - Parameter output: where a finished line (with its newline) goes; stderr by default.
    public init(label: String, output: @escaping @Sendable (String) -> Void = LogfmtLogHandler.standardError) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        output(Self.line(time: Date(), level: event.level, message: "\(event.message)", metadata: merged))
    }

    /// One formatted line, newline included.
    public static func line(time: Date, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var line = time.formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon)
                .timeZone(separator: .omitted))
        line += " \(level.rawValue) "
        line += escaped(message, quoting: false)
        for key in metadata.keys.sorted() {
            guard let value = metadata[key] else { continue }
            line += " \(key.isEmpty ? "_" : escaped(key, quoting: false).replacingOccurrences(of: " ", with: "_"))=\(quoted("\(value)"))"
        }
        return line + "\n"
    }

    /// The value as logfmt writes it: bare when it can be, else quoted with escapes.
    public static func quoted(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { scalar in
            scalar == " " || scalar == "=" || scalar == "\"" || scalar == "\\" || isHidden(scalar)
        }
        return needsQuotes ? "\"\(escaped(value, quoting: true))\"" : value
    }

    private static func escaped(_ text: String, quoting: Bool) -> String {
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"" where quoting: result += "\\\""
            case "\\" where quoting: result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if isHidden(scalar) {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }

    /// Control characters (C0, DEL, C1) and Unicode's invisible format and separator
    /// characters (categories Cf, Zl, Zp: bidi overrides, zero-width, U+2028): shown as escapes.
    private static func isHidden(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) { return true }
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    /// Writes straight to fd 2 (the C `stderr` global is not concurrency-safe under Swift 6).
    @Sendable public static func standardError(_ line: String) {
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
