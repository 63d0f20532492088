import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite("Directory listing", .tags(.addressSanitizer))
struct DirectoryListingTests {
    /// `count` distinct names whose lengths cycle through 1...255 bytes: the first byte says
    /// which round of lengths a name belongs to, so names of one length never collide.
    static func names(count: Int) -> [String] {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-".utf8)
        precondition(count <= 255 * alphabet.count)
        return (0..<count).map { index in
            let length = 1 + index % 255
            var bytes = [alphabet[index / 255]]
            bytes += (1..<length).map { alphabet[($0 * 7 + index) % alphabet.count] }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    static func create(_ names: [String], in directory: String) throws {
        for name in names {
            let fd = open((directory as NSString).appendingPathComponent(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Errno(rawValue: errno) }
            close(fd)
        }
    }

    @Test(
        "5,000 entries with names of 1 to 255 bytes: listed exactly, new files written and stale temp files swept among them",
        arguments: [true, false]  // tmpfs and the disk's file system lay records out differently
    )
    func thousandsOfEntries(onTmpfs: Bool) throws {
        let directory = try TestDirectory(fast: onTmpfs)
        defer { directory.remove() }
        let names = Self.names(count: 5_000)
        #expect(Set(names).count == 5_000)
        #expect(Set(names.map(\.utf8.count)) == Set(1...255))
        try Self.create(names, in: directory.path)

        let byPath = try DirectoryListing.entries(atPath: directory.path)
        #expect(byPath.count == 5_000, "no entry twice, none missing, no . or ..")
        #expect(Set(byPath.map(\.name)) == Set(names))
        #expect(byPath.allSatisfy { $0.isExactName && ($0.type == nil || $0.type == .regular) })

        let descriptor = try FileDescriptor.open(directory.path, .readOnly, options: [.directory, .closeOnExec])
        defer { try? descriptor.close() }
        let byDescriptor = try DirectoryListing.entries(in: descriptor)
        #expect(Set(byDescriptor.map(\.name)) == Set(names))
        // The caller's descriptor is untouched: a second listing through it sees everything again.
        #expect(try DirectoryListing.entries(in: descriptor).count == 5_000)

        // Writes into the crowded directory, including a target with the longest legal name.
        let writer = AtomicFileWriter()
        let longest = String(repeating: "L", count: 255)
        let written = ["new-secret", longest]
        for name in written {
            try writer.write(Array("value of \(name.count)".utf8), to: directory.file(name), options: AtomicWriteOptions())
            #expect(TestFiles.readString(directory.file(name)) == "value of \(name.count)")
        }
        let stale = [
            TemporaryFileName.make(for: "new-secret", random: 1), TemporaryFileName.make(for: longest, random: 2),
            TemporaryFileName.make(for: names[4_999], random: 3),
        ]
        try Self.create(stale, in: directory.path)
        let sweep = writer.sweepStaleTemporaries(inDirectory: directory.path)
        #expect(sweep.error == nil)
        #expect(Set(sweep.removed) == Set(stale))
        #expect(Set(try DirectoryListing.entries(atPath: directory.path).map(\.name)) == Set(names + written))
    }

    /// The reported SIGSEGV, made deterministic: a short record placed so that it ends exactly
    /// where readable memory ends. Copying the 256-byte `d_name` tuple out of it (the old
    /// `withUnsafeBytes(of: entry.pointee.d_name)`) touches the guard page and kills the test
    /// process; reading up to the NUL stays inside the record.
    @Test("a name is read up to its NUL, never past the record: short records that end at a guard page")
    func recordEndingAtGuardPage() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let mapping = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(Int(bitPattern: mapping) != -1, "mmap: \(errno)")
        defer { munmap(mapping, 2 * page) }
        try #require(mprotect(mapping + page, page, PROT_NONE) == 0)

        let nameOffset = try #require(MemoryLayout<dirent>.offset(of: \dirent.d_name))
        let reclenOffset = try #require(MemoryLayout<dirent>.offset(of: \dirent.d_reclen))
        let typeOffset = try #require(MemoryLayout<dirent>.offset(of: \dirent.d_type))
        for (name, type) in [("a", DT_REG), ("ab", DT_DIR), ("exactly-8", DT_LNK), (String(repeating: "n", count: 255), DT_FIFO)] {
            let bytes = Array(name.utf8)
            // Like getdents64: header, name, NUL, rounded up to 8 bytes.
            let recordLength = (nameOffset + bytes.count + 1 + 7) & ~7
            let record = mapping + page - recordLength
            record.initializeMemory(as: UInt8.self, repeating: 0, count: recordLength)
            record.storeBytes(of: UInt16(recordLength), toByteOffset: reclenOffset, as: UInt16.self)
            record.storeBytes(of: UInt8(type), toByteOffset: typeOffset, as: UInt8.self)
            for (index, byte) in bytes.enumerated() {
                record.storeBytes(of: byte, toByteOffset: nameOffset + index, as: UInt8.self)
            }
            let entry = DirectoryListing.entry(at: record.bindMemory(to: dirent.self, capacity: 1))
            #expect(entry.name == name)
            #expect(entry.isExactName)
            #expect(entry.type == FileType(rawValue: mode_t(type) << 12))
        }
    }

    @Test("types from d_type; . and .. skipped; a name that is not UTF-8 is marked inexact")
    func typesAndNames() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        try TestFiles.write("x", to: directory.file("file"))
        #expect(mkdir(directory.file("dir"), 0o700) == 0)
        #expect(symlink("/nonexistent", directory.file("link")) == 0)
        #expect(mkfifo(directory.file("fifo"), 0o600) == 0)
        // "bad-\xff": a byte no UTF-8 string contains.
        let raw: [CChar] = Array("\(directory.path)/bad-".utf8CString.dropLast()) + [CChar(bitPattern: 0xff), 0]
        let fd = open(raw, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        close(fd)

        let entries = try DirectoryListing.entries(atPath: directory.path)
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        #expect(entries.count == 5)
        #expect(byName["file"]?.type == .regular)
        #expect(byName["dir"]?.type == .directory)
        #expect(byName["link"]?.type == .symbolicLink)
        #expect(byName["fifo"]?.type == .fifo)
        #expect(byName["bad-\u{FFFD}"]?.isExactName == false)
        #expect(entries.filter { !$0.isExactName }.count == 1)
    }

    @Test("the end of the directory is not an error, whatever errno held before; open errors carry their errno")
    func endAndErrors() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        try TestFiles.write("x", to: directory.file("only"))
        var listing = try DirectoryListing(path: directory.path)
        errno = EINVAL
        #expect(try listing.next()?.name == "only")
        errno = EIO
        #expect(try listing.next() == nil)
        #expect(try listing.next() == nil)

        #expect(throws: Errno.noSuchFileOrDirectory) { try DirectoryListing.entries(atPath: directory.file("missing")) }
        #expect(throws: Errno.notDirectory) { try DirectoryListing.entries(atPath: directory.file("only")) }
        #expect(try DirectoryListing.entries(atPath: directory.path).map(\.name) == ["only"])
    }
}
