import Foundation
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite(.tags(.addressSanitizer)) struct AppLocksTests {
    @Test func anAppHasOneHolderAndTakingIsAllOrNothing() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("run/apps").path
        let daemon = AppLocks(directory: directory, stateDirectory: "/srv/state-a")
        try daemon.hold(exactly: ["a", "b"])

        // flock conflicts between open file descriptions, so a second holder in this process
        // meets the lock as another process would.
        let other = AppLocks(directory: directory, stateDirectory: "/srv/state-b")
        try other.hold(exactly: ["c"])
        #expect(throws: AppLockError.self) { try other.hold(exactly: ["c", "d", "b"]) }
        do {
            try other.hold(exactly: ["c", "d", "b"])
        } catch {
            #expect(error.appID == "b")
            #expect(error.holder == getpid())
            #expect(error.holderStateDirectory == "/srv/state-a")
            #expect(error.description.contains("with state directory /srv/state-a"))
        }
        // "d" was taken and given back when "b" failed; "c" is still held.
        #expect(other.heldAppIDs == ["c"])
        let third = AppLocks(directory: directory, stateDirectory: "/srv/state-c")
        try third.hold(exactly: ["d"])

        // A reload that drops "a" releases it for others.
        try daemon.hold(exactly: ["b"])
        try Self.holdOnceReleased(other, ["c", "a"])
        #expect(other.heldAppIDs == ["a", "c"])
    }

    /// A lock file left by an earlier holder is written over, never first cut to zero (a
    /// truncation frees the block, which a file system mounted with `discard` waits on): what
    /// is left is exactly the new holder's PID and state directory, whether the old text was
    /// longer, shorter or the same.
    @Test func aKeptLockFileEndsWithExactlyTheNewHoldersText() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("run/apps").path
        let expected = "\(getpid())\n/srv/s\n"
        for old in ["999999999\n/a/much/longer/state/directory/than/the/new/one\n", "1\n", expected, ""] {
            let locks = AppLocks(directory: directory, stateDirectory: "/srv/s")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(old.utf8).write(to: URL(fileURLWithPath: locks.lockPath("app")))
            try Self.holdOnceReleased(locks, ["app"])
            #expect(try String(contentsOfFile: locks.lockPath("app"), encoding: .utf8) == expected, "old text \(old.debugDescription)")
            try locks.hold(exactly: [])
        }
    }

    /// flock belongs to the open file description: while another test of this process is
    /// between fork and exec, its child shares every descriptor (close-on-exec closes them only
    /// at exec), so a lock released here can stay held for that moment. Seen on a loaded CI
    /// run; bounded at 5 s, and only for a holder that is this very process.
    static func holdOnceReleased(_ locks: AppLocks, _ ids: [String]) throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        var lastError: AppLockError?
        repeat {
            do {
                try locks.hold(exactly: ids)
                return
            } catch {
                guard error.holder == getpid() else { throw error }
                lastError = error
            }
            usleep(10_000)
        } while ContinuousClock.now < deadline
        if let lastError { throw lastError }
    }

    /// Root running `rotate` while the daemon is stopped must not leave root-owned lock files
    /// the daemon's user cannot create next to.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to act for another user"))
    func rootCreatesLocksForTheStateDirectorysOwner() throws {
        let ids = try #require(TestAccounts.ids)
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = root.appendingPathComponent("state").path
        #expect(mkdir(state, 0o700) == 0 && chown(state, ids.user.rawValue, ids.group.rawValue) == 0)
        let directory = root.appendingPathComponent("run/apps").path
        let locks = AppLocks(directory: directory, stateDirectory: state)
        try locks.hold(exactly: ["x"])
        for path in [root.appendingPathComponent("run").path, directory, locks.lockPath("x")] {
            var status = stat()
            #expect(stat(path, &status) == 0)
            #expect(status.st_uid == ids.user.rawValue, "\(path)")
        }
    }

    /// Lock files were 0644, and flock works on a read-only descriptor, so any
    /// local user could hold an app's lock and keep the daemon from starting.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to switch user"))
    func anotherUserCannotHoldAnAppsLock() throws {
        _ = try #require(TestAccounts.ids)
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(chmod(root.path, 0o755) == 0)
        let directory = root.appendingPathComponent("run/apps").path
        let locks = AppLocks(directory: directory, stateDirectory: root.path)
        try locks.hold(exactly: ["x"])
        try locks.hold(exactly: [])
        var status = stat()
        #expect(stat(locks.lockPath("x"), &status) == 0 && status.st_mode & 0o777 == 0o600)
        let attempt = try TestProcess.run(
            "/usr/sbin/runuser", ["-u", TestAccounts.userName, "--", "/usr/bin/flock", "-x", "-n", locks.lockPath("x"), "true"])
        #expect(attempt.status != 0, "another user took the lock")
        try locks.hold(exactly: ["x"])
    }

    /// 2,000 apps under the usual soft limit of 1024 descriptors failed with
    /// EMFILE. Run in a child with that soft limit; this process's own limit stays as it is.
    @Test func manyAppsRaiseTheDescriptorLimit() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        var text = "[genauth]\nhost = \"http://127.0.0.1:9\"\naccess_key_id = \"a\"\naccess_key_secret = \"b\"\nrequest_timeout = \"1s\"\n"
        text += "[defaults]\nstate_directory = \"\(root.path)/state\"\ndirectory = \"\(root.path)/drop\"\n"
        for index in 0..<1_500 { text += "[[app]]\nid = \"a\(index)\"\n" }
        let config = root.appendingPathComponent("rotator.toml")
        try ConfigFixtures.write(text, to: config)
        let result = try CLI.run(
            ["fetch", "--timeout", "1s", "a0", "--config", config.path],
            environment: ["RUNTIME_DIRECTORY": root.appendingPathComponent("run").path],
            launcher: ["/bin/sh", "-c", "ulimit -S -n 1024 && exec \"$@\"", "sh"])
        #expect(!result.stderr.contains("EMFILE"), "\(result.stderr.prefix(400))")
        #expect(result.status == 1, "\(result.stderr.prefix(400))")
    }
}
