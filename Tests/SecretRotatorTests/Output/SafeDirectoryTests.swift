import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// The output directory walk: no symlink anywhere on the path, no ancestor another user
/// could change (Architecture, Trust boundary and threat model).
@Suite(.tags(.addressSanitizer)) struct SafeDirectoryTests {
    let writer = AtomicFileWriter()
    static let options = AtomicWriteOptions(mode: [.ownerRead, .ownerWrite])

    private func write(_ target: String, allowUnsafe: Bool = false) -> OutputError? {
        var options = Self.options
        options.allowUnsafeDirectory = allowUnsafe
        do {
            try writer.write(Array("s3cr3t".utf8), to: target, options: options)
            return nil
        } catch {
            return error
        }
    }

    /// The reported attack: `/X/gp/sub/secret` with `gp` owned by an unprivileged user and
    /// `sub` by root (0700). That user renames `sub` away and puts a symlink to a root-owned
    /// directory in its place. The old writer opened the parent by path and wrote the secret
    /// into the link's target. Now `gp` is refused for its owner, and even with the owner
    /// rule lifted (`allow_unsafe_directory`) the link is refused: nothing reaches `victim`.
    @Test("a user who owns an ancestor cannot redirect the write", .enabled(if: TestAccounts.isRoot, "needs root to switch user"))
    func ancestorSwapAttack() throws {
        let ids = try #require(TestAccounts.ids)
        let base = try TestDirectory()
        defer { base.remove() }
        #expect(chmod(base.path, 0o755) == 0)
        let gp = base.file("gp")
        let victim = base.file("victim")
        #expect(mkdir(gp, 0o755) == 0 && chown(gp, ids.user.rawValue, ids.group.rawValue) == 0)
        #expect(mkdir(gp + "/sub", 0o700) == 0)
        #expect(mkdir(victim, 0o700) == 0)
        let target = gp + "/sub/secret"

        let refused = try #require(write(target))
        #expect(refused.code == .unsafeDirectory)
        #expect(refused.description.contains("\(gp) is owned by uid \(ids.user.rawValue)"), "\(refused)")
        #expect(write(target, allowUnsafe: true) == nil)

        let attack = try TestProcess.run(
            "/usr/sbin/runuser", ["-u", TestAccounts.userName, "--", "/bin/sh", "-c", "mv '\(gp)/sub' '\(gp)/sub.old' && ln -s '\(victim)' '\(gp)/sub'"])
        #expect(attack.status == 0, "\(attack.stderr)")
        #expect(TestFiles.lstatOf(gp + "/sub").map { fileType($0) == UInt32(S_IFLNK) } == true)

        let strict = try #require(write(target))
        #expect(strict.code == .unsafeDirectory)
        let lifted = try #require(write(target, allowUnsafe: true))
        #expect(lifted.code == .unsafeDirectory)
        #expect(lifted.description.contains("\(gp)/sub is a symbolic link"), "\(lifted)")
        #expect(TestFiles.entries(victim).isEmpty)
        // Inspection walks the same way: it never compares a file behind the link either.
        let drift = writer.inspect(Array("s3cr3t".utf8), at: target, options: Self.options)
        guard case .invalidOutput = drift else {
            Issue.record("inspect through the swapped link: \(String(describing: drift))")
            return
        }
    }

    @Test("a symlink anywhere on the path is refused, even one root made")
    func symlinkedAncestor() throws {
        let base = try TestDirectory()
        defer { base.remove() }
        #expect(mkdir(base.file("real"), 0o700) == 0)
        #expect(mkdir(base.file("real/inner"), 0o700) == 0)
        #expect(symlink(base.file("real"), base.file("link")) == 0)
        let error = try #require(write(base.file("link/inner/secret")))
        #expect(error.code == .unsafeDirectory)
        #expect(error.description.contains("\(base.file("link")) is a symbolic link"))
        #expect(TestFiles.entries(base.file("real/inner")).isEmpty)
        // The final directory itself as a link: the same.
        #expect(symlink(base.file("real/inner"), base.file("leaf")) == 0)
        #expect(write(base.file("leaf/secret"))?.code == .unsafeDirectory)
        #expect(write(base.file("real/inner/secret")) == nil)
    }

    @Test("group- or world-writable ancestors are refused unless sticky")
    func writableAncestor() throws {
        let base = try TestDirectory()
        defer { base.remove() }
        let open = base.file("open")
        #expect(mkdir(open, 0o700) == 0 && chmod(open, 0o777) == 0)
        #expect(mkdir(open + "/inner", 0o700) == 0)
        let error = try #require(write(open + "/inner/secret"))
        #expect(error.code == .unsafeDirectory)
        #expect(error.description.contains("directory \(open) is writable by group or others (mode 777)"), "\(error)")
        // Sticky (as /tmp): others cannot rename or remove root's `inner`, so it is fine.
        #expect(chmod(open, 0o1777) == 0)
        #expect(write(open + "/inner/secret") == nil)
        // But never as the directory the file is created in.
        #expect(write(open + "/secret")?.code == .unsafeDirectory)
    }

    @Test("search-only ancestors (0711) can be walked", .enabled(if: TestAccounts.isRoot, "needs root to switch user"))
    func searchOnlyAncestor() throws {
        _ = try #require(TestAccounts.ids)
        let base = try TestDirectory()
        defer { base.remove() }
        #expect(chmod(base.path, 0o711) == 0)
        // Run as the test user in a directory it owns below a 0711 root directory.
        let home = base.file("home")
        #expect(mkdir(home, 0o700) == 0)
        let ids = try #require(TestAccounts.ids)
        #expect(chown(home, ids.user.rawValue, ids.group.rawValue) == 0)
        let result = try TestProcess.run(
            "/usr/sbin/runuser",
            ["-u", TestAccounts.userName, "--", TestProcess.writeLoopBinary, "--path", home + "/secret", "--value", "x", "--count", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(TestFiles.readString(home + "/secret") == "x")
    }

    @Test("identity: two spellings of one directory are one")
    func identity() throws {
        let base = try TestDirectory()
        defer { base.remove() }
        #expect(mkdir(base.file("a"), 0o700) == 0)
        let first = try SafeDirectory.identity(of: base.file("a"), allowUnsafe: false).get()
        let second = try SafeDirectory.identity(of: base.path + "//a", allowUnsafe: false).get()
        #expect(first == second)
        #expect(try SafeDirectory.identity(of: base.path, allowUnsafe: false).get() != first)
    }
}
