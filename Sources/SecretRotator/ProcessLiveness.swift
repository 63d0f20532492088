import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whether a process named by a PID (a lock file's holder, the daemon a CLI waits for, the
/// writer of the cluster status file) is still there to act.
public enum ProcessLiveness: Sendable, Equatable {
    /// It exists and runs (or sleeps), whether or not we may signal it.
    case running
    /// It exists but is stopped or traced (SIGSTOP, a debugger): it does nothing until continued.
    case stopped
    /// No such process, or one that has exited and only waits to be reaped (a zombie holds no
    /// lock and answers nothing).
    case gone

    /// Whether it exists as a process that may still act: running or stopped.
    public var exists: Bool { self != .gone }

    /// The state of `pid` now: kill(2) with signal 0, then its /proc/PID/stat state.
    public static func of(_ pid: pid_t) -> ProcessLiveness {
        // kill(0) and kill(-1) would mean our own group and every process we may signal.
        guard pid > 0 else { return .gone }
        let signalled = kill(pid, 0) == 0 ? 0 : errno
        var state: UInt8?
        if let contents = try? SmallFile.read("/proc/\(pid)/stat", limit: 4096) {
            state = statFields(contents.bytes[...])?.state
        }
        return judge(signalZeroErrno: signalled, procState: state)
    }

    /// The verdict from kill(pid, 0)'s errno (0 when it succeeded) and the state letter of
    /// /proc/PID/stat (nil when it could not be read). EPERM means the process exists but is
    /// not ours; only ESRCH says there is none. Without /proc the signal decides alone.
    static func judge(signalZeroErrno: Int32, procState: UInt8?) -> ProcessLiveness {
        guard signalZeroErrno != ESRCH else { return .gone }
        guard let procState else { return .running }
        if hasExited(state: procState) { return .gone }
        return procState == UInt8(ascii: "T") || procState == UInt8(ascii: "t") ? .stopped : .running
    }

    /// State and process group from a /proc/<pid>/stat line, "pid (comm) S ppid pgrp ...". The
    /// command name may contain spaces and parentheses, so the fields are counted from the last
    /// ')' (proc(5) recommends the same).
    static func statFields(_ stat: ArraySlice<UInt8>) -> (state: UInt8, group: pid_t)? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: UInt8(ascii: " "))
        guard rest.count >= 3, let state = rest[0].first,
            let group = pid_t(String(decoding: rest[2], as: UTF8.self))
        else { return nil }
        return (state, group)
    }

    /// Whether a /proc state letter is a process that has exited (zombie or dead).
    static func hasExited(state: UInt8) -> Bool {
        state == UInt8(ascii: "Z") || state == UInt8(ascii: "X")
    }
}
