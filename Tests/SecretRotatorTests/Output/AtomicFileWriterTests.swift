import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite("Atomic file writer", .tags(.addressSanitizer))
struct AtomicFileWriterTests {
    let writer = AtomicFileWriter()
    static let options0600 = AtomicWriteOptions(mode: FilePermissions(rawValue: 0o600))

    @Test("replaces the content and leaves no temp file behind")
    func replaces() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        try writer.write(Array("one\n".utf8), to: target, options: Self.options0600)
        try writer.write(Array("two, longer\n".utf8), to: target, options: Self.options0600)
        #expect(TestFiles.readString(target) == "two, longer\n")
        #expect(TestFiles.entries(directory.path) == ["secret"])
    }

    @Test("the final mode is exact whatever the umask (writer run as a child with umask 0777 and 0000)")
    func modeIgnoresUmask() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        for umask in ["0777", "0000"] {
            let target = directory.file("umask-\(umask)")
            let result = try TestProcess.run(
                "/bin/sh",
                ["-c", "umask \(umask); exec \"$0\" --path \"$1\" --value v --count 1 --mode 0640",
                 TestProcess.writeLoopBinary, target])
            #expect(result.status == 0, "\(result.stderr)")
            let status = try #require(TestFiles.lstatOf(target))
            #expect(permissions(status) == 0o640)
        }
    }

    @Test("a symlink, a directory or a FIFO at the target is refused and left untouched")
    func refusesNonRegularTargets() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let victim = directory.file("victim")
        try TestFiles.write("victim content", to: victim)

        let link = directory.file("link")
        #expect(symlink(victim, link) == 0)
        let dir = directory.file("dir")
        #expect(mkdir(dir, 0o700) == 0)
        let fifo = directory.file("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)

        for (path, kind) in [(link, "symbolic link"), (dir, "directory"), (fifo, "FIFO")] {
            #expect {
                try writer.write(Array("new".utf8), to: path, options: Self.options0600)
            } throws: { error in
                guard let error = error as? OutputError else { return false }
                return error.code == .notRegularFile && error.path == path && error.description.contains(path)
                    && error.description.contains(kind)
            }
        }
        #expect(TestFiles.readString(victim) == "victim content")
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(link, &buffer, buffer.count)
        #expect(length > 0 && String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) == victim)
        #expect(fileType(try #require(TestFiles.lstatOf(dir))) == UInt32(S_IFDIR))
        #expect(fileType(try #require(TestFiles.lstatOf(fifo))) == UInt32(S_IFIFO))
        #expect(TestFiles.temporaries(directory.path).isEmpty)
    }

    @Test("a symlink planted at the temp name cannot redirect the write")
    func plantedTemporarySymlink() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        let victim = directory.file("victim")
        try TestFiles.write("victim content", to: victim)
        // The writer's first temp name is predictable here; plant a symlink exactly there.
        let planted = directory.file(TemporaryFileName.make(for: "secret", random: 1))
        #expect(symlink(victim, planted) == 0)

        let counter = Locked<UInt64>(0)
        let rigged = AtomicFileWriter(hooks: .init(random: {
            counter.withLock {
                $0 += 1
                return $0
            }
        }))
        try rigged.write(Array("the secret".utf8), to: target, options: Self.options0600)

        #expect(counter.current == 2, "first name collided, second was used")
        #expect(TestFiles.readString(target) == "the secret")
        #expect(TestFiles.readString(victim) == "victim content")
        #expect(fileType(try #require(TestFiles.lstatOf(planted))) == UInt32(S_IFLNK), "not ours to delete")
    }

    @Test("a parent directory writable by group or others is refused unless allowed", arguments: [0o777, 0o775, 0o1777, 0o757])
    func unsafeDirectory(mode: Int) throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let parent = directory.file("shared")
        #expect(mkdir(parent, 0o700) == 0)
        #expect(chmod(parent, mode_t(mode)) == 0)
        let target = (parent as NSString).appendingPathComponent("secret")
        #expect {
            try writer.write(Array("x".utf8), to: target, options: Self.options0600)
        } throws: { error in
            guard let error = error as? OutputError else { return false }
            return error.code == .unsafeDirectory && error.description.contains(parent)
                && error.description.contains("allow_unsafe_directory")
        }
        #expect(TestFiles.entries(parent).isEmpty)
        var allowed = Self.options0600
        allowed.allowUnsafeDirectory = true
        try writer.write(Array("x".utf8), to: target, options: allowed)
        #expect(TestFiles.readString(target) == "x")
    }

    @Test("a parent directory owned by another user is refused", .enabled(if: TestAccounts.isRoot, "needs root to chown"))
    func foreignOwnedDirectory() throws {
        let ids = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }
        let parent = directory.file("theirs")
        #expect(mkdir(parent, 0o755) == 0)
        #expect(chown(parent, ids.user.rawValue, ids.group.rawValue) == 0)
        #expect(throws: OutputError.self) {
            try writer.write(Array("x".utf8), to: (parent as NSString).appendingPathComponent("s"), options: Self.options0600)
        }
    }

    @Test("stale temp files are swept: ours only, and never one a live writer holds")
    func sweepsStaleTemporaries() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let staleOwn = directory.file(TemporaryFileName.make(for: "secret", random: 0xaaaa))
        let staleOther = directory.file(TemporaryFileName.make(for: "other", random: 0xbbbb))
        let live = directory.file(TemporaryFileName.make(for: "secret", random: 0xcccc))
        let lookalike = directory.file(".secret.sr-tmp.NOT-HEX-AT-ALL!!")
        let staleLink = directory.file(TemporaryFileName.make(for: "secret", random: 0xdddd))
        let staleDirectory = directory.file(TemporaryFileName.make(for: "secret", random: 0xeeee))
        for path in [staleOwn, staleOther, live, lookalike] { try TestFiles.write("partial", to: path) }
        #expect(symlink("/etc/passwd", staleLink) == 0)
        #expect(mkdir(staleDirectory, 0o700) == 0)
        // A writer that is still alive holds its temp file's lock.
        let liveFD = open(live, O_RDONLY | O_CLOEXEC)
        #expect(liveFD >= 0)
        defer { close(liveFD) }
        #expect(flock(liveFD, LOCK_EX) == 0)

        let sweep = writer.sweepStaleTemporaries(inDirectory: directory.path)

        #expect(sweep.error == nil)
        #expect(sweep.directory == directory.path)
        #expect(Set(sweep.removed) == [(staleOwn as NSString).lastPathComponent, (staleOther as NSString).lastPathComponent])
        let remaining = Set(TestFiles.entries(directory.path))
        #expect(!remaining.contains((staleOwn as NSString).lastPathComponent))
        #expect(!remaining.contains((staleOther as NSString).lastPathComponent))
        #expect(remaining.contains((live as NSString).lastPathComponent))
        #expect(remaining.contains((lookalike as NSString).lastPathComponent))
        #expect(remaining.contains((staleLink as NSString).lastPathComponent))
        #expect(remaining.contains((staleDirectory as NSString).lastPathComponent))
    }

    @Test("a successful write does not sweep the directory; a failed write does, and so does an explicit sweep")
    func sweepsOnlyAfterFailureOrOnRequest() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        let stale = [
            TemporaryFileName.make(for: "secret", random: 0x1111), TemporaryFileName.make(for: "neighbour", random: 0x2222),
        ]
        func plant() throws {
            for name in stale { try TestFiles.write("partial", to: directory.file(name)) }
        }
        try plant()

        // Success: the directory is not listed, so the stale files survive.
        try writer.write(Array("one".utf8), to: target, options: Self.options0600)
        try writer.write(Array("two".utf8), to: directory.file("neighbour"), options: Self.options0600)
        #expect(TestFiles.temporaries(directory.path) == stale.sorted())
        #expect(TestFiles.readString(target) == "one")

        // Failure (ENOSPC while writing): the writer clears the directory before reporting it.
        let full = AtomicFileWriter(hooks: .init(beforeStep: { step, _ in step == .writeContent ? .noSpace : nil }))
        #expect(throws: OutputError.self) { try full.write(Array("three".utf8), to: target, options: Self.options0600) }
        #expect(TestFiles.temporaries(directory.path).isEmpty)
        #expect(TestFiles.readString(target) == "one")

        // On request, e.g. at start-up.
        try plant()
        let sweep = writer.sweepStaleTemporaries(inDirectory: directory.path)
        #expect(Set(sweep.removed) == Set(stale))
        #expect(TestFiles.entries(directory.path) == ["neighbour", "secret"])
    }

    @Test("a sweep of a missing directory is a no-op; an unsafe one is refused unless allowed")
    func sweepMissingAndUnsafeDirectories() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let missing = writer.sweepStaleTemporaries(inDirectory: directory.file("missing"))
        #expect(missing.error == nil && missing.removed.isEmpty)

        let shared = directory.file("shared")
        #expect(mkdir(shared, 0o700) == 0)
        #expect(chmod(shared, 0o777) == 0)
        let stale = TemporaryFileName.make(for: "secret", random: 0x3333)
        try TestFiles.write("partial", to: (shared as NSString).appendingPathComponent(stale))
        let refused = writer.sweepStaleTemporaries(inDirectory: shared)
        #expect(refused.error?.code == .unsafeDirectory)
        #expect(refused.error?.description.contains("refusing to sweep") == true)
        #expect(TestFiles.entries(shared) == [stale])
        let allowed = writer.sweepStaleTemporaries(inDirectory: shared, allowUnsafeDirectory: true)
        #expect(allowed.error == nil && allowed.removed == [stale])
        #expect(TestFiles.entries(shared).isEmpty)
    }

    @Test("stale temp files of other users are left alone", .enabled(if: TestAccounts.isRoot, "needs root to chown"))
    func sweepRespectsOwner() throws {
        let ids = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }
        let foreign = directory.file(TemporaryFileName.make(for: "other", random: 0xeeee))
        let chownedOwn = directory.file(TemporaryFileName.make(for: "secret", random: 0xffff))
        for path in [foreign, chownedOwn] {
            try TestFiles.write("partial", to: path)
            #expect(chown(path, ids.user.rawValue, ids.group.rawValue) == 0)
        }
        let sweep = writer.sweepStaleTemporaries(inDirectory: directory.path, allowedOwners: ["secret": ids.user])
        #expect(sweep.removed == [(chownedOwn as NSString).lastPathComponent])
        let remaining = Set(TestFiles.entries(directory.path))
        #expect(remaining.contains((foreign as NSString).lastPathComponent), "someone else's file")
        #expect(!remaining.contains((chownedOwn as NSString).lastPathComponent), "ours, already chowned to the target owner")

        // The same rule when a failed write sweeps: the target's owner counts, for its own temp files only.
        try TestFiles.write("partial", to: chownedOwn)
        #expect(chown(chownedOwn, ids.user.rawValue, ids.group.rawValue) == 0)
        var options = Self.options0600
        options.owner = ids.user
        let failing = AtomicFileWriter(hooks: .init(beforeStep: { step, _ in step == .rename ? .ioError : nil }))
        #expect(throws: OutputError.self) { try failing.write(Array("new".utf8), to: directory.file("secret"), options: options) }
        #expect(TestFiles.entries(directory.path) == [(foreign as NSString).lastPathComponent])
    }

    @Test(
        "mode, owner and group are exact after the write and never wider during it",
        .enabled(if: TestAccounts.isRoot, "needs root to chown to another user")
    )
    func ownershipAndModeNeverWider() throws {
        let ids = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        let finalMode: UInt32 = 0o640
        let allowed = finalMode | 0o600

        // Observer 1, deterministic: before every step, stat the temp file by path, from outside.
        let seen = Locked<[(AtomicFileWriter.Step, UInt32, uid_t, gid_t)]>([])
        let directoryPath = directory.path
        let observed = AtomicFileWriter(hooks: .init(beforeStep: { step, name in
            if let name, let status = TestFiles.lstatOf((directoryPath as NSString).appendingPathComponent(name)) {
                seen.withLock { $0.append((step, permissions(status), status.st_uid, status.st_gid)) }
            }
            return nil
        }))
        // Observer 2, concurrent: a thread scanning the directory for temp files while we write.
        let stop = Locked(false)
        let concurrent = Locked<(count: Int, wider: [UInt32])>((0, []))
        let thread = TestThread {
            while !stop.current {
                for name in TestFiles.temporaries(directoryPath) {
                    guard let status = TestFiles.lstatOf((directoryPath as NSString).appendingPathComponent(name)) else { continue }
                    let mode = permissions(status)
                    concurrent.withLock {
                        $0.count += 1
                        if mode & ~allowed != 0 { $0.wider.append(mode) }
                    }
                }
            }
        }
        let options = AtomicWriteOptions(mode: FilePermissions(rawValue: mode_t(finalMode)), owner: ids.user, group: ids.group)
        var writes = 0
        // Write until the concurrent observer has caught temp files in flight (bounded). Not a
        // wait: each turn writes, back to back, so the observer has temp files to catch.
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        var caught = false
        while !caught && ContinuousClock.now < deadline {
            try? observed.write(Array("secret \(writes)".utf8), to: target, options: options)
            writes += 1
            caught = writes >= 200 && concurrent.withLock { $0.count } >= 5
        }
        stop.withLock { $0 = true }
        thread.join()

        let status = try #require(TestFiles.lstatOf(target))
        #expect(permissions(status) == finalMode)
        #expect(status.st_uid == ids.user.rawValue)
        #expect(status.st_gid == ids.group.rawValue)
        #expect(TestFiles.readString(target)?.hasPrefix("secret ") == true)

        let steps = seen.withLock { $0 }
        #expect(Set(steps.map(\.0)) == [.writeContent, .setOwner, .setMode, .syncFile, .rename])
        for (step, mode, _, _) in steps {
            #expect(mode & ~allowed == 0, "temp mode \(String(mode, radix: 8)) at \(step) is wider than \(String(allowed, radix: 8))")
        }
        // Before the owner change the file is 0600 and ours; group bits only appear after it.
        for (step, mode, uid, _) in steps where step == .writeContent || step == .setOwner {
            #expect(mode == 0o600 && uid == geteuid())
        }
        let concurrentResult = concurrent.withLock { $0 }
        #expect(caught, "the concurrent observer saw \(concurrentResult.count) temp files in \(writes) writes")
        #expect(concurrentResult.wider.isEmpty)
        print("ownership test: \(writes) writes; concurrent observer saw \(concurrentResult.count) temp files, \(concurrentResult.wider.count) wider than 0\(String(allowed, radix: 8)); hook saw \(steps.count) step states")
    }

    @Test("a failure at any step leaves the old file intact, no temp file, and a clear error", arguments: AtomicFileWriter.Step.allCases)
    func faultAtEveryStep(step: AtomicFileWriter.Step) throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        // A group change (to our own group, allowed for anyone) so the setOwner step runs too.
        let options = AtomicWriteOptions(mode: FilePermissions(rawValue: 0o640), group: GroupID(rawValue: getegid()))
        try writer.write(Array("old".utf8), to: target, options: options)
        let faulty = AtomicFileWriter(hooks: .init(beforeStep: { current, _ in current == step ? Errno.ioError : nil }))
        var thrown: OutputError?
        do {
            try faulty.write(Array("new".utf8), to: target, options: options)
        } catch {
            thrown = error
        }
        let error = try #require(thrown)
        #expect(error.path == target)
        #expect(error.errno == .ioError)
        #expect(error.description.contains("EIO"))
        #expect(error.description.contains(target))
        if step == .syncDirectory {
            #expect(error.targetReplaced)
            #expect(TestFiles.readString(target) == "new")
        } else {
            #expect(!error.targetReplaced)
            #expect(TestFiles.readString(target) == "old")
        }
        #expect(TestFiles.entries(directory.path) == ["secret"])
    }

    @Test("writers in one directory never sweep each other's temp files in flight")
    func concurrentWritersShareADirectory() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let failures = Locked<[String]>([])
        let threads = (0..<3).map { index in
            TestThread {
                let target = directory.file("secret-\(index)")
                for round in 0..<1_000 {
                    do {
                        try AtomicFileWriter().write(Array("\(index)/\(round)".utf8), to: target, options: Self.options0600)
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        threads.forEach { $0.join() }
        #expect(failures.current.isEmpty, "\(failures.current.prefix(3))")
        #expect(TestFiles.entries(directory.path) == ["secret-0", "secret-1", "secret-2"])
        #expect(TestFiles.readString(directory.file("secret-2")) == "2/999")
    }

    @Test("a writer without permission reports EACCES with the path", .enabled(if: TestAccounts.isRoot, "needs root to switch user"))
    func permissionDenied() throws {
        _ = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }
        #expect(chmod(directory.path, 0o755) == 0)  // root's, not writable by the test user
        let target = directory.file("secret")
        let result = try TestProcess.run(
            "/usr/sbin/runuser",
            ["-u", TestAccounts.userName, "--", TestProcess.writeLoopBinary, "--path", target, "--value", "x", "--count", "1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("EACCES"), "\(result.stderr)")
        #expect(result.stderr.contains(target))
        #expect(TestFiles.entries(directory.path).isEmpty)
    }

    @Test("a missing parent directory is ENOENT with the path")
    func missingParent() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("missing/secret")
        #expect {
            try writer.write(Array("x".utf8), to: target, options: Self.options0600)
        } throws: { error in
            guard let error = error as? OutputError else { return false }
            return error.code == .directoryUnavailable && error.errno == .noSuchFileOrDirectory
                && error.description.contains("ENOENT") && error.description.contains(target)
        }
    }

    @Test("ENOSPC and EROFS on a real small filesystem: clear error, old file intact")
    func fullAndReadOnlyFilesystem() throws {
        let directory = try TestDirectory(fast: false)
        defer { directory.remove() }
        let mountPoint = directory.file("mnt")
        #expect(mkdir(mountPoint, 0o700) == 0)
        let target = (mountPoint as NSString).appendingPathComponent("secret")
        let mounted = (try? TestProcess.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mountPoint]))?.status == 0
        // Runs before directory.remove(): never delete through a live mount.
        defer {
            if mounted { _ = try? TestProcess.run("/usr/bin/umount", [mountPoint]) }
        }
        let old = "old secret\n"
        let new = String(repeating: "n", count: 16 * 1024)
        guard mounted else {
            // CI sets SECRET_ROTATOR_REQUIRE_REAL_MOUNTS=1: there, injected errors would let
            // this test pass without ever meeting a real full or read-only file system.
            if ProcessInfo.processInfo.environment["SECRET_ROTATOR_REQUIRE_REAL_MOUNTS"] == "1" {
                Issue.record("cannot mount a tmpfs at \(mountPoint), and SECRET_ROTATOR_REQUIRE_REAL_MOUNTS=1 forbids falling back to injected errors")
                return
            }
            print("cannot mount a tmpfs here (not root or no CAP_SYS_ADMIN); using injected ENOSPC and EROFS instead")
            try writer.write(Array(old.utf8), to: target, options: Self.options0600)
            for (step, errno) in [(AtomicFileWriter.Step.writeContent, Errno.noSpace), (.createTemporary, .readOnlyFileSystem)] {
                let faulty = AtomicFileWriter(hooks: .init(beforeStep: { current, _ in current == step ? errno : nil }))
                #expect(throws: OutputError.self) { try faulty.write(Array(new.utf8), to: target, options: Self.options0600) }
                #expect(TestFiles.readString(target) == old)
            }
            return
        }
        try writer.write(Array(old.utf8), to: target, options: Self.options0600)
        // Fill every remaining page.
        let filler = open((mountPoint as NSString).appendingPathComponent("filler"), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(filler >= 0)
        let chunk = [UInt8](repeating: 0x66, count: 4096)
        var fillError: Int32 = 0
        while fillError == 0 {
            if chunk.withUnsafeBytes({ Glibc.write(filler, $0.baseAddress, $0.count) }) < 0 { fillError = errno }
        }
        close(filler)
        #expect(fillError == ENOSPC)

        #expect {
            try writer.write(Array(new.utf8), to: target, options: Self.options0600)
        } throws: { error in
            guard let error = error as? OutputError else { return false }
            print("ENOSPC case: \(error)")
            return error.errno == .noSpace && error.description.contains("ENOSPC") && error.description.contains(target)
        }
        #expect(TestFiles.readString(target) == old)
        #expect(TestFiles.temporaries(mountPoint).isEmpty)

        #expect(try TestProcess.run("/usr/bin/mount", ["-o", "remount,ro", mountPoint]).status == 0)
        #expect {
            try writer.write(Array("tiny".utf8), to: target, options: Self.options0600)
        } throws: { error in
            guard let error = error as? OutputError else { return false }
            print("EROFS case: \(error)")
            return error.errno == .readOnlyFileSystem && error.description.contains("EROFS") && error.description.contains(target)
        }
        #expect(TestFiles.readString(target) == old)
    }

    @Test("a missing drop directory is created 0750 with the configured group", .enabled(if: TestAccounts.isRoot, "needs root to chgrp"))
    func createsDropDirectory() throws {
        let ids = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }
        let drop = directory.file("secrets")
        let spec = OutputSpec.dropDirectory(drop, name: "billing", group: ids.group)
        try writer.write(Array("s".utf8), to: spec.path, options: spec.writeOptions)
        let status = try #require(TestFiles.lstatOf(drop))
        #expect(fileType(status) == UInt32(S_IFDIR))
        #expect(permissions(status) == 0o750)
        #expect(status.st_gid == ids.group.rawValue)
        let file = try #require(TestFiles.lstatOf(spec.path))
        #expect(permissions(file) == 0o640)
        #expect(file.st_gid == ids.group.rawValue)
        #expect(TestFiles.readString(spec.path) == "s")
    }
}
