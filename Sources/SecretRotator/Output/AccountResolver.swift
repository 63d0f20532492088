import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Resolves `owner` / `group` names from the config to ids, through NSS like `chown` does.
/// Numeric strings are taken as ids.
public enum AccountResolver {
    public static func userID(named name: String) -> UserID? {
        if let id = UInt32(name) { return UserID(rawValue: id) }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return UserID(rawValue: entry.pw_uid)
    }

    public static func groupID(named name: String) -> GroupID? {
        if let id = UInt32(name) { return GroupID(rawValue: id) }
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        let status = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return GroupID(rawValue: entry.gr_gid)
    }
}
