import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite("Output writer (all outputs of an app)", .tags(.addressSanitizer))
struct OutputWriterTests {
    static func document(_ secret: String = "0123456789abcdef0123456789abcdef", version: Int = 3) -> SecretDocument {
        SecretDocument(
            secret: SecretValue(secret), appId: "app-1", appName: "billing", version: version,
            rotatedAt: Date(timeIntervalSince1970: 1_795_000_000))
    }

    @Test("one failing output does not stop the others, and only it is retried, from the same document")
    func partialFailureAndRetry() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let raw = OutputSpec(path: directory.file("secret"))
        let env = OutputSpec(path: directory.file("app.env"), format: .env, envKey: "GENAUTH_APP_SECRET")
        let blocked = directory.file("app.json")
        #expect(mkdir(blocked, 0o700) == 0)  // a directory where the json file should go
        let json = OutputSpec(path: blocked, format: .json)
        let writer = OutputWriter()
        let document = Self.document()

        let report = writer.write(document, to: [raw, json, env])
        #expect(!report.allWritten)
        #expect(report.written.map(\.path) == [raw.path, env.path])
        #expect(report.failed.map(\.path) == [json.path])
        #expect(report.failed.first?.error?.code == .notRegularFile)
        #expect(report.failedSpecs == [json])
        #expect(report.versionsByPath == [raw.path: 3, env.path: 3])
        #expect(TestFiles.readString(raw.path) == "0123456789abcdef0123456789abcdef\n")
        #expect(TestFiles.readString(env.path) == "GENAUTH_APP_SECRET=\"0123456789abcdef0123456789abcdef\"\n")
        // The error names the path and never contains the secret.
        let message = try #require(report.failed.first?.error?.description)
        #expect(message.contains(json.path) && !message.contains(document.secret.exposed))

        #expect(rmdir(blocked) == 0)
        let retry = writer.write(document, to: report.failedSpecs)
        #expect(retry.allWritten)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json.path))) as? [String: Any])
        #expect(object["secret"] as? String == document.secret.exposed)
        #expect(object["version"] as? Int == 3)
    }

    @Test("an output the secret cannot be represented in fails alone; invalid settings fail alone")
    func unrepresentableAndInvalid() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let raw = OutputSpec(path: directory.file("secret"), trailingNewline: false)
        let env = OutputSpec(path: directory.file("app.env"), format: .env, envKey: "K")
        let worldReadable = OutputSpec(path: directory.file("open"), mode: FilePermissions(rawValue: 0o644))
        let report = OutputWriter().write(Self.document("multi\nline"), to: [raw, env, worldReadable])
        #expect(report.written.map(\.path) == [raw.path])
        #expect(report.failed.map { $0.error?.code } == [.unrepresentable, .invalidSpec])
        #expect(TestFiles.readString(raw.path) == "multi\nline")
        #expect(TestFiles.entries(directory.path) == ["secret"])
    }

    @Test("drop-directory outputs: each app's file is created, raw, in a directory created on first write")
    func dropDirectory() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let drop = directory.file("secrets")
        let writer = OutputWriter()
        for (name, secret) in [("billing", "b-secret"), ("shipping", "s-secret")] {
            let spec = OutputSpec.dropDirectory(drop, name: name, mode: FilePermissions(rawValue: 0o640))
            let report = writer.write(Self.document(secret), to: [spec])
            #expect(report.allWritten, "\(report.failed.map { $0.error?.description ?? "" })")
        }
        #expect(TestFiles.entries(drop) == ["billing", "shipping"])
        #expect(TestFiles.readString((drop as NSString).appendingPathComponent("shipping")) == "s-secret\n")
        #expect(permissions(try #require(TestFiles.lstatOf(drop))) == 0o750)
    }

    @Test("sweeping for a set of outputs visits each directory once, with each output's owner for its own temp files")
    func sweepForOutputs() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let first = directory.file("first")
        let second = directory.file("second")
        for path in [first, second] { #expect(mkdir(path, 0o700) == 0) }
        func inFirst(_ name: String) -> String { (first as NSString).appendingPathComponent(name) }
        func inSecond(_ name: String) -> String { (second as NSString).appendingPathComponent(name) }
        let outputs = [
            OutputSpec(path: inFirst("a")), OutputSpec(path: inSecond("c.env"), format: .env, envKey: "K"),
            OutputSpec(path: inFirst("b.json"), format: .json), OutputSpec.dropDirectory(directory.file("not-yet"), name: "d"),
        ]
        let stale = [
            inFirst(TemporaryFileName.make(for: "a", random: 1)), inFirst(TemporaryFileName.make(for: "b.json", random: 2)),
            inSecond(TemporaryFileName.make(for: "c.env", random: 3)),
        ]
        for path in stale { try TestFiles.write("partial", to: path) }

        let sweeps = OutputWriter().sweepStaleTemporaries(for: outputs)
        #expect(sweeps.map(\.directory) == [first, second, directory.file("not-yet")])
        #expect(sweeps.allSatisfy { $0.error == nil })
        #expect(sweeps.map { Set($0.removed) } == [
            [(stale[0] as NSString).lastPathComponent, (stale[1] as NSString).lastPathComponent],
            [(stale[2] as NSString).lastPathComponent], [],
        ])
        #expect(TestFiles.entries(first).isEmpty && TestFiles.entries(second).isEmpty)
    }

    @Test("sweeping for outputs honours each output's owner and leaves other users' temp files", .enabled(if: TestAccounts.isRoot, "needs root to chown"))
    func sweepForOutputsRespectsOwners() throws {
        let ids = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }
        let owned = OutputSpec(path: directory.file("owned"), owner: ids.user)
        let plain = OutputSpec(path: directory.file("plain"))
        let ownedTemporary = directory.file(TemporaryFileName.make(for: "owned", random: 1))
        let plainTemporary = directory.file(TemporaryFileName.make(for: "plain", random: 2))
        for path in [ownedTemporary, plainTemporary] {
            try TestFiles.write("partial", to: path)
            #expect(chown(path, ids.user.rawValue, ids.group.rawValue) == 0)
        }
        let sweeps = OutputWriter().sweepStaleTemporaries(for: [owned, plain])
        #expect(sweeps.count == 1)
        #expect(sweeps.first?.removed == [(ownedTemporary as NSString).lastPathComponent])
        #expect(TestFiles.entries(directory.path) == [(plainTemporary as NSString).lastPathComponent], "plain's temp file is not ours")
    }
}
