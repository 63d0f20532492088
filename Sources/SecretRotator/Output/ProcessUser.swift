#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// This process's effective user and group, read once: nothing in the daemon or the CLI
/// changes them, and the owner checks of every write and inspection asked the kernel about
/// eleven times per app in a pass.
enum ProcessUser {
    static let effectiveUID: uid_t = geteuid()
    static let effectiveGID: gid_t = getegid()
}
