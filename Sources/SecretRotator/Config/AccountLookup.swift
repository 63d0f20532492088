#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A user or group as the operator wrote it, resolved to its numeric id at validation time so
/// that a typo'd owner fails `check-config` rather than the first rotation a month later.
public struct AccountID: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let id: UInt32

    public var description: String { name == String(id) ? name : "\(name)(\(id))" }
}

/// Resolves user and group names through NSS (getpwnam_r/getgrnam_r), like chown(1) does.
enum AccountLookup {
    enum Kind: String {
        case user
        case group
    }

    static func resolve(_ text: String, kind: Kind) throws(ValueSyntaxError) -> AccountID {
        if text.isEmpty {
            throw ValueSyntaxError("empty \(kind.rawValue) name; give a \(kind.rawValue) name or a numeric id")
        }
        if let number = UInt32(text) {
            return AccountID(name: text, id: number)
        }
        let found: UInt32? =
            switch kind {
            case .user: userID(named: text)
            case .group: groupID(named: text)
            }
        guard let found else {
            throw ValueSyntaxError(
                "unknown \(kind.rawValue) \"\(text)\" on this host; create it first or give a numeric id")
        }
        return AccountID(name: text, id: found)
    }

    private static func userID(named name: String) -> UInt32? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return entry.pw_uid
    }

    private static func groupID(named name: String) -> UInt32? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        let status = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return entry.gr_gid
    }
}
