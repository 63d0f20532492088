/// The end of a hook's output, at most `limit` bytes: when a hook prints more, the start is
/// dropped and counted, because the end is where a failing command says why (and the engine logs
/// the end too).
struct HookOutputTail: Sendable {
    let limit: Int
    private var bytes: [UInt8] = []
    private var dropped = 0

    init(limit: Int) {
        self.limit = limit
    }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: chunk)
        // Dropping from the front moves the rest, so trim only once the buffer has doubled:
        // amortized linear in the output, and never more than twice the limit in memory.
        if bytes.count >= 2 * limit { trim() }
    }

    /// The kept output as text and how many bytes before it were dropped. The cut can fall
    /// inside a UTF-8 sequence; its leftover continuation bytes (10xxxxxx) are dropped as well,
    /// so the text does not start with a replacement character. Other invalid UTF-8 is replaced
    /// with U+FFFD by `String(decoding:as:)`.
    func text() -> (text: String, droppedBytes: Int) {
        var kept = self
        kept.trim()
        var start = kept.bytes.startIndex
        if kept.dropped > 0 {
            while start < kept.bytes.endIndex, kept.bytes[start] & 0b1100_0000 == 0b1000_0000 { start += 1 }
        }
        return (String(decoding: kept.bytes[start...], as: UTF8.self), kept.dropped + start)
    }

    private mutating func trim() {
        let excess = bytes.count - limit
        guard excess > 0 else { return }
        bytes.removeFirst(excess)
        dropped += excess
    }
}
