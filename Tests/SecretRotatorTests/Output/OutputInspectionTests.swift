import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

@Suite("Output drift inspection", .tags(.addressSanitizer))
struct OutputInspectionTests {
    static let secret = "0123456789abcdef0123456789abcdef"
    let writer = OutputWriter()
    let document = OutputWriterTests.document(Self.secret)

    /// Writes `spec` and checks the writer's own result inspects as exact.
    func written(_ spec: OutputSpec) throws -> OutputSpec {
        let report = writer.write(document, to: [spec])
        try #require(report.allWritten, "\(report.failed.map { $0.error?.description ?? "" })")
        #expect(writer.inspect(document, at: spec) == nil)
        return spec
    }

    @Test("what the writer just wrote inspects as exact, in every format")
    func exactOutputs() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let specs = [
            OutputSpec(path: directory.file("raw")),
            OutputSpec(path: directory.file("bare"), trailingNewline: false),
            OutputSpec(path: directory.file("app.env"), format: .env, envKey: "GENAUTH_APP_SECRET", mode: FilePermissions(rawValue: 0o640)),
            OutputSpec(path: directory.file("app.json"), format: .json, mode: FilePermissions(rawValue: 0o400)),
            OutputSpec(path: directory.file("app.conf"), format: .template, template: "secret={{secret}} v{{version}}\n"),
            OutputSpec.dropDirectory(directory.file("drop"), name: "billing", group: GroupID(rawValue: getegid())),
        ]
        for spec in specs { _ = try written(spec) }
        // Inspecting changes nothing, and a second look agrees.
        for spec in specs { #expect(writer.inspect(document, at: spec) == nil) }
    }

    @Test("a missing file or a missing directory is missing")
    func missing() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        #expect(writer.inspect(document, at: OutputSpec(path: directory.file("absent"))) == .missing)
        #expect(writer.inspect(document, at: OutputSpec.dropDirectory(directory.file("drop"), name: "x")) == .missing)
        #expect(OutputDrift.missing.cause == "missing")
    }

    @Test("different bytes are content drift: same length, other length, another document's version")
    func content() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let raw = try written(OutputSpec(path: directory.file("raw")))
        let flipped = String(Self.secret.dropLast()) + "0\n"
        for text in [flipped, Self.secret, Self.secret + "\n\n", ""] {
            try TestFiles.write(text, to: raw.path)
            #expect(writer.inspect(document, at: raw) == .content, "\(text.count) bytes")
        }
        let json = try written(OutputSpec(path: directory.file("app.json"), format: .json))
        #expect(writer.inspect(OutputWriterTests.document(Self.secret, version: 4), at: json) == .content)
        #expect(OutputDrift.content.cause == "content")
    }

    @Test("a mode other than the spec's is mode drift, with the mode found")
    func mode() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let spec = try written(OutputSpec(path: directory.file("raw"), mode: FilePermissions(rawValue: 0o640)))
        #expect(chmod(spec.path, 0o600) == 0)
        let drift = writer.inspect(document, at: spec)
        #expect(drift == .mode(found: FilePermissions(rawValue: 0o600)))
        #expect(drift?.cause == "mode")
        #expect(drift?.description == "mode 0600")
    }

    @Test("owner and group: the spec's, else the writer's uid and gid, else a setgid parent's group", .enabled(if: TestAccounts.isRoot, "needs root to chown"))
    func ownerAndGroup() throws {
        let ids = try #require(TestAccounts.ids)
        let directory = try TestDirectory()
        defer { directory.remove() }

        let owned = try written(OutputSpec(path: directory.file("owned"), mode: FilePermissions(rawValue: 0o640), owner: ids.user, group: ids.group))
        #expect(chown(owned.path, 0, ids.group.rawValue) == 0)
        #expect(writer.inspect(document, at: owned) == .owner(found: UserID(rawValue: 0)))
        #expect(chown(owned.path, ids.user.rawValue, 0) == 0)
        let drift = writer.inspect(document, at: owned)
        #expect(drift == .group(found: GroupID(rawValue: 0)))
        #expect(drift?.cause == "group")

        // No owner or group in the spec: the writer's own ids are what a write would leave.
        let plain = try written(OutputSpec(path: directory.file("plain")))
        #expect(chown(plain.path, ids.user.rawValue, UInt32.max) == 0)
        #expect(writer.inspect(document, at: plain) == .owner(found: ids.user))
        #expect(writer.inspect(document, at: plain)?.cause == "owner")
        #expect(chown(plain.path, geteuid(), ids.group.rawValue) == 0)
        #expect(writer.inspect(document, at: plain) == .group(found: ids.group))

        // A setgid parent gives new files its group; that is what a write leaves, so no drift.
        let setgid = directory.file("setgid")
        #expect(mkdir(setgid, 0o700) == 0)
        #expect(chown(setgid, geteuid(), ids.group.rawValue) == 0)
        #expect(chmod(setgid, 0o2750) == 0)
        let inherited = try written(OutputSpec(path: (setgid as NSString).appendingPathComponent("secret"), mode: FilePermissions(rawValue: 0o640)))
        #expect(TestFiles.lstatOf(inherited.path)?.st_gid == ids.group.rawValue)
        #expect(chown(inherited.path, geteuid(), getegid()) == 0)
        #expect(writer.inspect(document, at: inherited) == .group(found: GroupID(rawValue: getegid())))
    }

    @Test("a symlink, a directory or a FIFO at the path is notRegularFile and is not followed or opened")
    func notRegularFile() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        // The symlink points at a file with exactly the expected content: following it would say "exact".
        let real = try written(OutputSpec(path: directory.file("real")))
        let link = directory.file("link")
        #expect(symlink(real.path, link) == 0)
        #expect(writer.inspect(document, at: OutputSpec(path: link)) == .notRegularFile(found: .symbolicLink))
        let folder = directory.file("folder")
        #expect(mkdir(folder, 0o700) == 0)
        #expect(writer.inspect(document, at: OutputSpec(path: folder)) == .notRegularFile(found: .directory))
        // Opening a FIFO for reading would block without O_NONBLOCK; it is not opened at all.
        let fifo = directory.file("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let drift = writer.inspect(document, at: OutputSpec(path: fifo))
        #expect(drift == .notRegularFile(found: .fifo))
        #expect(drift?.cause == "not-regular-file")
    }

    @Test("an unreadable path reports its errno; an invalid spec or unrepresentable secret is invalid-output")
    func unreadableAndInvalid() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let file = try written(OutputSpec(path: directory.file("file")))
        // A regular file used as a directory: ENOTDIR.
        let below = OutputSpec(path: (file.path as NSString).appendingPathComponent("secret"))
        #expect(writer.inspect(document, at: below) == .unreadable(.notDirectory))
        #expect(writer.inspect(document, at: below)?.description == "unreadable: ENOTDIR")

        let worldReadable = OutputSpec(path: directory.file("open"), mode: FilePermissions(rawValue: 0o644))
        #expect(writer.inspect(document, at: worldReadable)?.cause == "invalid-output")
        let env = OutputSpec(path: directory.file("app.env"), format: .env, envKey: "K")
        let drift = writer.inspect(OutputWriterTests.document("multi\nline"), at: env)
        guard case .invalidOutput(let error) = drift else {
            Issue.record("expected invalid-output, got \(String(describing: drift))")
            return
        }
        #expect(error.code == .unrepresentable)
    }

    @Test("no drift, cause or description ever contains the secret")
    func neverTheSecret() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let spec = try written(OutputSpec(path: directory.file("raw")))
        try TestFiles.write(Self.secret + "tampered", to: spec.path)
        let drifts: [OutputDrift] = [
            writer.inspect(document, at: spec), .missing, .notRegularFile(found: .symbolicLink), .content,
            .mode(found: FilePermissions(rawValue: 0o644)), .owner(found: UserID(rawValue: 0)), .group(found: GroupID(rawValue: 0)),
            .unreadable(.permissionDenied),
            writer.inspect(OutputWriterTests.document("multi\nline"), at: OutputSpec(path: directory.file("e"), format: .env, envKey: "K")),
        ].compactMap { $0 }
        #expect(drifts.count == 9)
        for drift in drifts {
            for text in [drift.cause, drift.description, "\(drift)", String(reflecting: drift)] {
                #expect(!text.contains(Self.secret) && !text.contains("multi"), "\(text)")
            }
        }
    }
}
