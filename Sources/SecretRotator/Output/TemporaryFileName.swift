/// Names of the hidden temporary files the writer creates next to a target.
///
/// `.<target>.sr-tmp.<16 hex>`: hidden so directory listings and globs of consumers skip it,
/// in the target's own directory so `rename` stays on one filesystem, random so a name
/// planted in advance (a symlink, say) only costs one retry.
enum TemporaryFileName {
    static let marker = ".sr-tmp."
    static let randomLength = 16
    /// Keeps the whole name under NAME_MAX (255) for long target names.
    static let maxBaseUTF8 = 200

    static func make(for targetName: String, random: UInt64) -> String {
        let hex = String(random, radix: 16)
        let padded = String(repeating: "0", count: randomLength - hex.count) + hex
        return "." + truncatedBase(targetName) + marker + padded
    }

    /// The target name as it appears inside its temp names.
    static func truncatedBase(_ targetName: String) -> String {
        var base = ""
        var used = 0
        for scalar in targetName.unicodeScalars {
            let width = String(scalar).utf8.count
            if used + width > maxBaseUTF8 { break }
            used += width
            base.unicodeScalars.append(scalar)
        }
        return base
    }

    /// The target base encoded in `name` if `name` is one of ours, else nil.
    static func base(ofTemporary name: String) -> String? {
        let bytes = Array(name.utf8)
        let markerBytes = Array(marker.utf8)
        guard bytes.first == UInt8(ascii: "."), bytes.count > 1 + markerBytes.count + randomLength else {
            return nil
        }
        let isLowerHex: (UInt8) -> Bool = { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        guard bytes.suffix(randomLength).allSatisfy(isLowerHex) else { return nil }
        let markerEnd = bytes.count - randomLength
        let markerStart = markerEnd - markerBytes.count
        guard Array(bytes[markerStart..<markerEnd]) == markerBytes else { return nil }
        return String(decoding: bytes[1..<markerStart], as: UTF8.self)
    }
}
