import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A swift-log backend that writes native journald entries through `sd_journal_sendv`
/// (Swift cannot call the variadic `sd_journal_send`): MESSAGE, PRIORITY,
/// SYSLOG_IDENTIFIER, CODE_FILE/CODE_LINE/CODE_FUNC, MESSAGE_ID for known events, and every
/// metadata key as an upper-case field (`app_id` → `APP_ID`), so operators can filter with
/// `journalctl APP_ID=...`. Secrets never reach it: callers log ids, versions and paths only.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let identifier: String

    public init(label: String, identifier: String = "secret-rotator") {
        self.label = label
        self.identifier = identifier
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The journal when stderr is connected to it (systemd sets JOURNAL_STREAM to stderr's
    /// device:inode), otherwise readable single lines on stderr.
    public static func bootstrap(level: Logger.Level) {
        let useJournal = stderrIsJournal(environment: ProcessEnvironment.current)
        LoggingSystem.bootstrap { label in
            if useJournal {
                var handler = JournalLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = LogfmtLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }

    static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(2, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = Self.fields(
            message: "\(event.message)", level: event.level, metadata: merged, identifier: identifier, label: label)
        Self.send(fields, file: event.file, line: event.line, function: event.function)
    }

    /// The journal fields for one entry, in a stable order (tests read them back).
    static func fields(
        message: String, level: Logger.Level, metadata: Logger.Metadata, identifier: String, label: String
    ) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("MESSAGE", message), ("PRIORITY", String(priority(level))), ("SYSLOG_IDENTIFIER", identifier),
            ("LOGGER", label),
        ]
        if case .string(let name)? = metadata["event"], let event = JournalEvent(rawValue: name) {
            fields.append(("MESSAGE_ID", event.messageID))
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let name = fieldName(key)
            guard isValidFieldName(name), name != "MESSAGE", name != "PRIORITY", name != "MESSAGE_ID" else { continue }
            fields.append((name, "\(value)"))
        }
        return fields
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func fieldName(_ key: String) -> String {
        String(key.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    /// journald accepts A-Z, 0-9 and '_', not starting with '_' (trusted fields) or a digit, at most 64 bytes.
    static func isValidFieldName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 64, first != UInt8(ascii: "_"),
            !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
        else { return false }
        return name.utf8.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }

    private static func send(_ fields: [(String, String)], file: String, line: UInt, function: String) {
        let entries = fields.map { "\($0.0)=\($0.1)" }
        // One allocation for all entries keeps every iovec pointer valid for the call.
        let total = entries.reduce(0) { $0 + $1.utf8.count }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 1)
        defer { storage.deallocate() }
        guard let base = storage.baseAddress else { return }
        var vectors: [iovec] = []
        vectors.reserveCapacity(entries.count)
        var offset = 0
        for entry in entries {
            let count = entry.utf8.count
            UnsafeMutableRawBufferPointer(rebasing: storage[offset..<offset + count]).copyBytes(from: entry.utf8)
            vectors.append(iovec(iov_base: base + offset, iov_len: count))
            offset += count
        }
        _ = vectors.withUnsafeBufferPointer { buffer in
            sd_journal_sendv_with_location("CODE_FILE=\(file)", "CODE_LINE=\(line)", function, buffer.baseAddress, Int32(buffer.count))
        }
    }
}
