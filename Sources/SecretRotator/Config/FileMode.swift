/// Permission bits for a secret file, written in the config as an octal string (`"0640"`).
///
/// A string rather than a TOML integer because `mode = 640` would be decimal 640 (octal 1200),
/// a classic way to end up with the wrong permissions.
public struct FileMode: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue & 0o777
    }

    public static let accepted = "an octal string of 3 or 4 digits such as \"0600\" or \"0640\""

    public static func parse(_ text: String) throws(ValueSyntaxError) -> FileMode {
        guard text.utf8.count == 3 || text.utf8.count == 4 else {
            throw ValueSyntaxError("mode \"\(text)\" is not \(accepted)")
        }
        var value: UInt16 = 0
        for byte in text.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "7") else {
                throw ValueSyntaxError("mode \"\(text)\" is not octal (digits 0-7 only); expected \(accepted)")
            }
            value = value * 8 + UInt16(byte - UInt8(ascii: "0"))
        }
        if value > 0o777 {
            throw ValueSyntaxError(
                "mode \"\(text)\" sets setuid, setgid or sticky bits, which a secret file never needs; use e.g. \"0640\"")
        }
        return FileMode(rawValue: value)
    }

    public var hasWorldBits: Bool { rawValue & 0o007 != 0 }
    public var isOwnerOnly: Bool { rawValue & 0o077 == 0 }

    public var description: String {
        let octal = String(rawValue, radix: 8)
        return String(repeating: "0", count: max(0, 4 - octal.count)) + octal
    }
}
