import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite("Control requests", .tags(.addressSanitizer))
struct ControlRequestsTests {
    @Test("submit then drain: each request once, its file gone, a crashed submitter's temp file cleared by the next submit")
    func submitAndDrain() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let requests = ControlRequests(stateDirectory: StateDirectory(path: directory.path))
        try requests.submit(appID: "app-1", kind: .rotate)
        let stale = (requests.directory as NSString).appendingPathComponent(TemporaryFileName.make(for: "app-2.fetch", random: 7))
        try TestFiles.write("app-2", to: stale)
        try requests.submit(appID: "app/2", kind: .fetch)
        #expect(!FileManager.default.fileExists(atPath: stale))

        let drained = requests.drain()
        #expect(Set(drained.map { "\($0.kind.rawValue) \($0.appID)" }) == ["rotate app-1", "fetch app/2"])
        #expect(TestFiles.entries(requests.directory).isEmpty)
        #expect(requests.drain().isEmpty)
    }

    @Test("10,000 apps at once: a few files of at most batchBytes, each app drained exactly once")
    func submitsManyAppsInAFewFiles() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let requests = ControlRequests(stateDirectory: StateDirectory(path: directory.path))
        // Ids of 1 to 128 bytes, the longest the config allows.
        let ids = (0..<10_000).map { index in "app-\(index)-" + String(repeating: "x", count: index % 120) }
        try requests.submit(appIDs: ids, kind: .rotate)
        let files = TestFiles.entries(requests.directory)
        // 10,000 ids of 66 bytes on average with their newlines: 660 KB, three files of 256 KiB.
        #expect(files.count == 3, "\(files)")
        for file in files {
            let size = try FileManager.default.attributesOfItem(atPath: "\(requests.directory)/\(file)")[.size] as? Int
            #expect((size ?? .max) <= ControlRequests.batchBytes)
        }
        let drained = requests.drain()
        #expect(drained.count == ids.count)
        #expect(Set(drained.map(\.appID)) == Set(ids))
        #expect(drained.allSatisfy { $0.kind == .rotate })
        #expect(TestFiles.entries(requests.directory).isEmpty)
    }

    @Test("drain takes every request among thousands of entries with names of 1 to 255 bytes")
    func drainsACrowdedDirectory() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let requests = ControlRequests(stateDirectory: StateDirectory(path: directory.path))
        #expect(mkdir(requests.directory, 0o700) == 0)

        // 2,000 requests whose file names (escaped id + "." + kind) run from 8 to 255 bytes,
        // and 3,000 entries drain must leave alone: names of 1 to 255 bytes without a kind,
        // hidden files, and directories named like requests.
        var expected: Set<String> = []
        for index in 0..<2_000 {
            let kind: ControlRequests.Kind = index.isMultiple(of: 2) ? .rotate : .fetch
            let nameLength = 8 + index % 248
            let stem = "\(index)-"
            let idLength = nameLength - kind.rawValue.utf8.count - 1
            let appID = stem + String(repeating: "x", count: max(0, idLength - stem.utf8.count))
            let name = "\(StateDirectory.fileName(for: appID)).\(kind.rawValue)"
            try #require(name.utf8.count <= 255)
            try TestFiles.write(appID, to: (requests.directory as NSString).appendingPathComponent(name))
            expected.insert("\(kind.rawValue) \(appID)")
        }
        #expect(expected.count == 2_000)
        let ignored = DirectoryListingTests.names(count: 2_800)
        let hidden = (0..<100).map { ".hidden-\($0).rotate" }
        let folders = (0..<100).map { "folder-\($0).fetch" }
        try DirectoryListingTests.create(ignored + hidden, in: requests.directory)
        for folder in folders {
            #expect(mkdir((requests.directory as NSString).appendingPathComponent(folder), 0o700) == 0)
        }

        let drained = requests.drain()
        #expect(drained.count == 2_000)
        #expect(Set(drained.map { "\($0.kind.rawValue) \($0.appID)" }) == expected)
        let left = Set(TestFiles.entries(requests.directory))
        #expect(left == Set(ignored + hidden + folders))
        #expect(requests.drain().isEmpty)
    }
}
