import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// A private directory for one test, removed afterwards. Under /dev/shm when it exists:
/// tmpfs makes fsync cheap, which the 10,000-write tests need (ext4 here: ~6 ms per write).
final class TestDirectory: Sendable {
    let path: String

    init(fast: Bool = true) throws {
        let base = fast && FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let template = (base as NSString).appendingPathComponent("sr-output-test.XXXXXX")
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw Errno(rawValue: errno) }
        path = String(cString: made)
        // mkdtemp gives 0700 and we are its owner: a safe parent by the writer's rules.
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Explicit rather than in deinit: ARC may end a local's lifetime at its last use, which
    /// would delete the directory while the test still works in it.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

enum TestFiles {
    static func read(_ path: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return Array(data)
    }

    static func readString(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        _ = try FileDescriptor(rawValue: fd).writeAll(Array(text.utf8))
        fchmod(fd, mode)
    }

    static func lstatOf(_ path: String) -> stat? {
        var status = stat()
        return lstat(path, &status) == 0 ? status : nil
    }

    /// Directory entries other than "." and "..".
    static func entries(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    static func temporaries(_ directory: String) -> [String] {
        entries(directory).filter { TemporaryFileName.base(ofTemporary: $0) != nil }
    }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum TestProcess {
    /// Runs a program to completion. Output is small in every use here, so reading after exit is safe.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self)
        )
    }

    /// The `secret-rotator` executable SwiftPM built next to this test bundle.
    static var secretRotatorBinary: String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("secret-rotator").path
    }

    /// The test-only writer (`Tests/WriteLoop`), built beside the test bundle, never shipped.
    static var writeLoopBinary: String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("secret-rotator-write-loop").path
    }
}

enum TestAccounts {
    static let userName = "sr-test-reader"
    static let groupName = "sr-test-readers"

    static var isRoot: Bool { geteuid() == 0 }

    /// A system user and group that only these tests use, created once if missing.
    static let ids: (user: UserID, group: GroupID)? = {
        guard isRoot else { return nil }
        if AccountResolver.groupID(named: groupName) == nil {
            _ = try? TestProcess.run("/usr/sbin/groupadd", ["--system", groupName])
        }
        if AccountResolver.userID(named: userName) == nil {
            _ = try? TestProcess.run(
                "/usr/sbin/useradd",
                ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--gid", groupName, userName]
            )
        }
        guard let user = AccountResolver.userID(named: userName), let group = AccountResolver.groupID(named: groupName)
        else { return nil }
        return (user, group)
    }()
}

/// A real thread for busy loops (readers, observers) that must not occupy the cooperative pool.
final class TestThread: Sendable {
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Void) {
        let done = self.done
        let thread = Thread {
            body()
            done.signal()
        }
        thread.start()
    }

    func join() { done.wait() }
}

/// Shared mutable state for test threads and hooks (Mutex and Atomic cannot be captured by
/// escaping closures).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }

    var current: Value { withLock { $0 } }
}

func permissions(_ status: stat) -> UInt32 { UInt32(status.st_mode) & 0o7777 }
func fileType(_ status: stat) -> UInt32 { UInt32(status.st_mode) & UInt32(S_IFMT) }
