/// A user or group as the operator wrote it, resolved to its numeric id at validation time so
/// that a typo'd owner fails `check-config` rather than the first rotation a month later.
public struct AccountID: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let id: UInt32

    public var description: String { name == String(id) ? name : "\(name)(\(id))" }
}

/// Resolves owner and group values from the config, with messages for the operator.
enum AccountLookup {
    enum Kind: String {
        case user
        case group
    }

    static func resolve(
        _ text: String, kind: Kind, lookup: (_ name: String, _ kind: Kind) -> UInt32? = ConfigHost.system.accountID
    ) throws(ValueSyntaxError) -> AccountID {
        if text.isEmpty {
            throw ValueSyntaxError("empty \(kind.rawValue) name; give a \(kind.rawValue) name or a numeric id")
        }
        if let number = UInt32(text) {
            return AccountID(name: text, id: number)
        }
        guard let found = lookup(text, kind) else {
            throw ValueSyntaxError(
                "unknown \(kind.rawValue) \"\(text)\" on this host; create it first or give a numeric id")
        }
        return AccountID(name: text, id: found)
    }
}
