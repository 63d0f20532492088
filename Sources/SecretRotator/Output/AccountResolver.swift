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

extension AccountResolver {
    /// Every group `user` is in: its primary group `primary` and the supplementary groups NSS
    /// lists for its name (getgrouplist(3)); just `primary` when the uid has no passwd entry.
    public static func groups(of user: UserID, primary: GroupID) -> Set<GroupID> {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(user.rawValue, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
            return [primary]
        }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primary.rawValue, &groups, &count) < 0 {
            // `count` now holds the number needed.
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, primary.rawValue, &groups, &count) >= 0 else { return [primary] }
        }
        return Set(groups.prefix(Int(count)).map { GroupID(rawValue: $0) }).union([primary])
    }
}
