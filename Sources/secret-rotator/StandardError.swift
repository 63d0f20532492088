#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Diagnostics go to stderr so stdout stays clean for the plan or JSON. Writes go straight to
/// fd 2 because the C `stderr` global is not concurrency-safe under Swift 6.
enum StandardError {
    static func write(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

extension StandardError {
    /// Without the trailing newline `write` adds: prompts and progress lines.
    static func write(raw text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
