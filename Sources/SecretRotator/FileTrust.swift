#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The owner and mode rule for a file or directory whose content or place decides what the
/// daemon runs, writes or keeps: OpenSSH's StrictModes and sudo's rule for sudoers.
///
/// It must be owned by one of `owners`, and nobody else may hold any of `forbiddenBits`
/// (group and other write for what the daemon runs or writes through; every group and
/// other bit for a file that holds secrets). One exception: a directory on the way that has
/// the sticky bit (`/tmp`) may be writable by others, who can add entries there but cannot
/// rename or remove ours; the next component must pass the rule itself. The directory a
/// file is in is never excused, since entries in it are created and renamed.
///
/// Who counts as an owner depends on the reader (the daemon itself, root acting for it, a
/// monitoring user), so each caller builds the set; the judgement is this one function.
struct FileTrust: Sendable, Equatable {
    /// Where the judged object sits on the path.
    enum Place: Sendable, Equatable {
        /// The file itself.
        case file
        /// The directory the file is in (or the one files are created in).
        case finalDirectory
        /// A directory further up the path.
        case ancestorDirectory
    }

    enum Problem: Sendable, Equatable {
        /// Owned by someone not in `owners`.
        case owner(uid_t)
        /// Group or others hold one of `forbiddenBits`; the mode's permission bits.
        case mode(UInt16)
    }

    var owners: Set<uid_t>
    /// Permission bits (within 0o077) that group and others may not hold.
    var forbiddenBits: UInt16

    /// Nil when `owner` and `mode` (st_uid and st_mode, any file type bits included) pass.
    func problem(owner: uid_t, mode: UInt16, place: Place) -> Problem? {
        guard owners.contains(owner) else { return .owner(owner) }
        let permissions = mode & 0o777
        let sticky = mode & UInt16(S_ISVTX) != 0
        if permissions & forbiddenBits != 0 && !(place == .ancestorDirectory && sticky) {
            return .mode(permissions)
        }
        return nil
    }

    /// Group and other write: whoever holds it could change what the daemon runs or writes.
    static let groupOrOtherWrite: UInt16 = 0o022

    /// What the daemon runs or copies into outputs (the config, templates, hook programs) and
    /// the directories on their paths: root's or the daemon user's, writable by nobody else.
    static func daemonInputs(daemonUser: uid_t) -> FileTrust {
        FileTrust(owners: [0, daemonUser], forbiddenBits: groupOrOtherWrite)
    }

    /// The directories an output is written through: root's, ours, or (root or a monitoring
    /// user acting for a daemon that runs as another user) that user's.
    static func outputDirectories(effectiveUser: uid_t, daemonUser: uid_t?) -> FileTrust {
        FileTrust(owners: Set([0, effectiveUser] + (daemonUser.map { [$0] } ?? [])), forbiddenBits: groupOrOtherWrite)
    }

    /// The state database, which holds every current secret: ours, or the state directory's
    /// owner's when we act for the daemon, and 0600 (a wider mode is narrowed, not refused,
    /// since the owner is already trusted). Root's copy is not adopted by another user: it
    /// could not be narrowed or written.
    static func stateDatabase(effectiveUser: uid_t, stateDirectoryOwner: uid_t?, actingForDaemon: Bool) -> FileTrust {
        var owners: Set<uid_t> = [effectiveUser]
        if actingForDaemon, let stateDirectoryOwner { owners.insert(stateDirectoryOwner) }
        return FileTrust(owners: owners, forbiddenBits: 0o077)
    }
}
