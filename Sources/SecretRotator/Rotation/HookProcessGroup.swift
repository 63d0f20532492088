import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process group of one running hook. The runner starts a hook with setsid(2), so the hook
/// leads a new session and a new process group, both numbered with its PID, and every process it
/// starts stays in that group unless it moves itself out (setsid, setpgid, a shell's `set -m`).
///
/// Signalling `-id` is only safe while the leader has not been reaped. POSIX (Base Definitions,
/// "Process ID" and "Process Group Lifetime") does not reuse a process ID before its process's
/// lifetime ends, which for a child means before its parent has waited for it, nor while a
/// process group with that ID still exists. So while the leader is unreaped (running or a
/// zombie), the number is pinned and `kill(-id, ...)` reaches this hook's group and nobody
/// else's; after the reap, an empty group's number may go to a stranger who then leads a group
/// of the same number. swift-subprocess 1.0.2 reaps only after the body closure of `run`
/// returns (Configuration.run calls `reapProcess` after the body's task group), and the runner
/// keeps every use of this type inside that closure.
struct HookProcessGroup {
    /// The leader's PID, which is also the group's and the session's ID.
    let id: pid_t

    enum LeaderState: Equatable {
        case running
        case exited(Int32)
        case signalled(Int32)
        /// waitid(2) failed (ECHILD: something else reaped the leader). The group number is no
        /// longer pinned, so the group must not be signalled any more.
        case unknown
    }

    /// The leader's state, read with waitid(2) and WNOWAIT | WNOHANG so the leader stays
    /// unreaped (a zombie once it has exited): the reap is the library's, and it releases the
    /// group ID. Never blocks.
    func leaderState() -> LeaderState {
        while true {
            var info = siginfo_t()
            if waitid(P_PID, id_t(id), &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
                // With WNOHANG a child that has not changed state leaves si_pid and si_signo at 0
                // (waitid(2)).
                guard info.si_signo != 0 || info.childPID != 0 else { return .running }
                switch info.si_code {
                case Int32(CLD_EXITED): return .exited(info.childStatus)
                case Int32(CLD_KILLED), Int32(CLD_DUMPED): return .signalled(info.childStatus)
                default: return .running  // stopped or continued: WEXITED does not report those
                }
            }
            if errno != EINTR { return .unknown }
        }
    }

    /// Sends `signal` to every process in the group (kill(2) with a negative PID). Only while the
    /// leader is unreaped, see the type's documentation. ESRCH (nobody left) is not an error here.
    func signal(_ signal: CInt) {
        // kill(0) and kill(-1) would mean our own group and every process we may signal.
        guard id > 1 else { return }
        _ = kill(-id, signal)
    }

    /// How many processes of the group have not exited yet: zombies, which have exited and only
    /// wait to be reaped, do not count. Read from /proc/<pid>/stat, whose fields 3 and 5 are the
    /// state and the process group (proc(5)). nil when /proc cannot be listed,
    /// so a caller cannot mistake "unknown" for "empty".
    func liveMemberCount() -> Int? {
        guard let directory = opendir("/proc") else { return nil }
        defer { closedir(directory) }
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 1024)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard pid_t(name) != nil, let stat = Self.read("/proc/\(name)/stat", into: &buffer),
                let fields = ProcessLiveness.statFields(stat), fields.group == id
            else { continue }  // not a process, gone meanwhile, or in another group
            if !ProcessLiveness.hasExited(state: fields.state) { count += 1 }
        }
        return count
    }

    /// The start of a small /proc file, or nil when it cannot be read (the process is gone).
    private static func read(_ path: String, into buffer: inout [UInt8]) -> ArraySlice<UInt8>? {
        guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else {
            return nil
        }
        defer { try? descriptor.close() }
        guard let count = try? buffer.withUnsafeMutableBytes({ try descriptor.read(into: $0) }), count > 0 else {
            return nil
        }
        return buffer[..<count]
    }
}

extension siginfo_t {
    /// si_pid and si_status of a SIGCHLD-style siginfo: macros in C, union members in Swift.
    fileprivate var childPID: pid_t {
        #if canImport(Glibc)
        _sifields._sigchld.si_pid
        #elseif canImport(Musl)
        __si_fields.__si_common.__first.__piduid.si_pid
        #endif
    }

    fileprivate var childStatus: Int32 {
        #if canImport(Glibc)
        _sifields._sigchld.si_status
        #elseif canImport(Musl)
        __si_fields.__si_common.__second.__sigchld.si_status
        #endif
    }
}
