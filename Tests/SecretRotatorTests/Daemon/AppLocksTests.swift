import Foundation
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite struct AppLocksTests {
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
        #expect(throws: AppLocks.HeldError.self) { try other.hold(exactly: ["c", "d", "b"]) }
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
        try other.hold(exactly: ["c", "a"])
        #expect(other.heldAppIDs == ["a", "c"])
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
}
