import Foundation
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// sudo's and sshd's rule for what the daemon trusts (Architecture, Trust boundary and threat model), and outputs that would
/// overwrite what the daemon reads. Each case is run through `check-config`, which must exit
/// 78 with a reason, as an operator would meet it.
@Suite struct ConfigTrustTests {
    static let keySecret = "trust-test-access-key-secret-5c5c"

    /// A directory with a valid config (0600), a key file (0600) and a state directory.
    final class Setup: Sendable {
        let root: String
        var config: String { root + "/rotator.toml" }
        var keyFile: String { root + "/key" }
        var state: String { root + "/state" }
        var outputs: String { root + "/out" }

        init() throws {
            root = try ConfigFixtures.temporaryDirectory().path
            #expect(chmod(root, 0o755) == 0)
            try ConfigFixtures.write(ConfigTrustTests.keySecret + "\n", to: URL(fileURLWithPath: keyFile))
            #expect(mkdir(outputs, 0o755) == 0)
        }

        func writeConfig(outputs extra: String = "", mode: Int = 0o600) throws {
            let text = """
                [genauth]
                access_key_id = "ak-trust"
                access_key_secret_file = "\(keyFile)"
                [defaults]
                state_directory = "\(state)"
                directory = "\(outputs)"
                [[app]]
                id = "app-1"
                name = "one"
                \(extra)
                """
            try ConfigFixtures.write(text, to: URL(fileURLWithPath: config), mode: mode)
        }

        var runtime: String { root + "/run" }

        func check(config path: String? = nil) throws -> CLI.Result {
            try CLI.run(["check-config", "--config", path ?? config], environment: ["RUNTIME_DIRECTORY": runtime])
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    private func expectRefused(_ setup: Setup, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try setup.check()
        #expect(result.status == 78, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(fragment), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains(Self.keySecret) && !result.stdout.contains(Self.keySecret), sourceLocation: sourceLocation)
    }

    @Test func baselineIsAccepted() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig()
        let result = try setup.check()
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test(arguments: [0o666, 0o620, 0o602])
    func writableConfigIsRefused(mode: Int) throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig(mode: mode)
        try expectRefused(setup, "refusing config file \(setup.config): writable by group or others")
    }

    @Test func configInAWorldWritableDirectoryIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig()
        #expect(chmod(setup.root, 0o777) == 0)
        try expectRefused(setup, "refusing the directory \(setup.root) of config file")
    }

    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give files away"))
    func configOwnedByAnotherUserIsRefused() throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig()
        #expect(chown(setup.config, ids.user.rawValue, ids.group.rawValue) == 0)
        try expectRefused(setup, "owned by uid \(ids.user.rawValue), not by root or by the daemon's user")
    }

    @Test func symlinkedConfigIsJudgedByItsTarget() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig()
        let link = setup.root + "/link.toml"
        #expect(symlink(setup.config, link) == 0)
        #expect(try CLI.run(["check-config", "--config", link]).status == 0)
        #expect(chmod(setup.config, 0o646) == 0)
        let result = try CLI.run(["check-config", "--config", link])
        #expect(result.status == 78 && result.stderr.contains("writable by group or others"), "\(result.stderr)")
    }

    private func templateOutput(_ template: String) -> String {
        "[[app.output]]\npath = \"\(root(of: template))/out/t.conf\"\nformat = \"template\"\ntemplate = \"\(template)\"\n"
    }

    private func root(of template: String) -> String { ConfigFileReader.parentDirectory(of: template) }

    @Test func writableTemplateIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let template = setup.root + "/t.tmpl"
        try ConfigFixtures.write("s={{secret}}\n", to: URL(fileURLWithPath: template), mode: 0o666)
        try setup.writeConfig(outputs: templateOutput(template))
        try expectRefused(setup, "refusing template \(template): writable by group or others")
    }

    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give files away"))
    func templateOwnedByAnotherUserIsRefused() throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        let template = setup.root + "/t.tmpl"
        try ConfigFixtures.write("s={{secret}}\n", to: URL(fileURLWithPath: template), mode: 0o644)
        #expect(chown(template, ids.user.rawValue, ids.group.rawValue) == 0)
        try setup.writeConfig(outputs: templateOutput(template))
        try expectRefused(setup, "refusing template \(template): owned by uid \(ids.user.rawValue)")
    }

    /// The reported attack: the key file (root's, 0600) passes the owner rule, so a link to it
    /// would have copied the access key secret into an output.
    @Test func templateLinkedToTheKeyFileIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let symbolic = setup.root + "/sym.tmpl"
        #expect(symlink(setup.keyFile, symbolic) == 0)
        try setup.writeConfig(outputs: templateOutput(symbolic))
        try expectRefused(setup, "\(symbolic) is a symbolic link")

        let hard = setup.root + "/hard.tmpl"
        #expect(link(setup.keyFile, hard) == 0)
        try setup.writeConfig(outputs: templateOutput(hard))
        // The key file is not a valid template either; the identity check says why it matters.
        let result = try setup.check()
        #expect(result.status == 78)
        #expect(!result.stderr.contains(Self.keySecret))
    }

    @Test(arguments: ["config", "key", "lock", "record", "database", "wal", "template"])
    func outputOverAFileTheDaemonReadsIsRefused(_ which: String) throws {
        let setup = try Setup()
        defer { setup.remove() }
        let template = setup.root + "/t.tmpl"
        try ConfigFixtures.write("s={{secret}}\n", to: URL(fileURLWithPath: template), mode: 0o644)
        let (path, fragment): (String, String) =
            switch which {
            case "config": (setup.config, "is the config file")
            case "key": (setup.keyFile, "is the access key secret file")
            case "lock": (setup.state + "/lock", "is inside the state directory")
            case "record": (setup.state + "/apps/app-1.json", "is inside the state directory")
            case "database": (setup.state + "/state.sqlite", "is inside the state directory")
            case "wal": (setup.state + "/state.sqlite-wal", "is inside the state directory")
            default: (template, "is the template")
            }
        var extra = "[[app.output]]\npath = \"\(path)\"\nformat = \"raw\"\n"
        if which == "template" { extra += templateOutput(template) }
        try setup.writeConfig(outputs: extra)
        try expectRefused(setup, fragment)
    }

    /// The per-app lock file as an output let a second writer in.
    @Test func outputInTheLockDirectoryIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        #expect(mkdir(setup.runtime, 0o755) == 0 && mkdir(setup.runtime + "/apps", 0o755) == 0)
        try setup.writeConfig(outputs: "[[app.output]]\npath = \"\(setup.runtime)/apps/app-1.lock\"\nformat = \"raw\"\n")
        try expectRefused(setup, "is inside a directory only the daemon writes (the per-app locks")
    }

    /// The state directory through a bind mount, compared by path, was missed.
    @Test func stateDirectoryReachedThroughABindMountIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        #expect(mkdir(setup.state, 0o700) == 0 && mkdir(setup.state + "/current", 0o700) == 0)
        let alias = setup.root + "/alias"
        try TestMount.withBind(setup.state, at: alias) {
            for path in ["\(alias)/current/app-9.json", "\(alias)/lock"] {
                try setup.writeConfig(outputs: "[[app.output]]\npath = \"\(path)\"\nformat = \"raw\"\n")
                try expectRefused(setup, "is inside the state directory (reached as \(alias))")
            }
        }
    }

    @Test func templateInsideTheStateDirectoryIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        #expect(mkdir(setup.state, 0o700) == 0 && mkdir(setup.state + "/current", 0o700) == 0)
        let record = setup.state + "/current/app-2.json"
        try ConfigFixtures.write("{\"secret\":\"x\"}", to: URL(fileURLWithPath: record))
        try setup.writeConfig(outputs: templateOutput(record))
        try expectRefused(setup, "template \(record) is inside the state directory")
    }

    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give directories away"))
    func stateDirectoryBelowAStrangersDirectoryIsRefused() throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        let theirs = setup.root + "/theirs"
        #expect(mkdir(theirs, 0o755) == 0 && chown(theirs, ids.user.rawValue, ids.group.rawValue) == 0)
        #expect(mkdir(theirs + "/state", 0o700) == 0)
        try setup.writeConfig()
        let text = try String(contentsOfFile: setup.config, encoding: .utf8)
            .replacingOccurrences(of: "state_directory = \"\(setup.state)\"", with: "state_directory = \"\(theirs)/state\"")
        try ConfigFixtures.write(text, to: URL(fileURLWithPath: setup.config))
        try expectRefused(setup, "directory \(theirs) is owned by uid \(ids.user.rawValue)")
        let once = try CLI.run(["run", "--once", "--config", setup.config], environment: ["RUNTIME_DIRECTORY": setup.runtime])
        #expect(once.status == 78, "\(once.stderr)")
    }

    /// A link in a stranger's directory to a trusted config was accepted; the
    /// stranger could point it at another config.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give directories away"))
    func configLinkInAStrangersDirectoryIsRefused() throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig()
        let theirs = setup.root + "/theirs"
        #expect(mkdir(theirs, 0o755) == 0 && chown(theirs, ids.user.rawValue, ids.group.rawValue) == 0)
        #expect(symlink(setup.config, theirs + "/link.toml") == 0)
        let result = try setup.check(config: theirs + "/link.toml")
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("refusing the directory \(theirs) of config file"), "\(result.stderr)")
    }

    /// Hook programs were not checked at all; a stranger's script ran as root.
    @Test(arguments: ["owned", "writable", "strangers-dir", "missing", "directory", "not-executable", "name-off-path"])
    func untrustedHookProgramIsRefused(_ how: String) throws {
        let ids = TestAccounts.ids
        if ["owned", "strangers-dir"].contains(how) && ids == nil { return }
        let setup = try Setup()
        defer { setup.remove() }
        var program = setup.root + "/hook.sh"
        try ConfigFixtures.write("#!/bin/sh\nexit 0\n", to: URL(fileURLWithPath: program), mode: 0o755)
        var fragment = ""
        switch how {
        case "owned":
            #expect(chown(program, ids!.user.rawValue, ids!.group.rawValue) == 0)
            fragment = "owned by uid \(ids!.user.rawValue)"
        case "writable":
            #expect(chmod(program, 0o777) == 0)
            fragment = "writable by group or others"
        case "strangers-dir":
            let theirs = setup.root + "/theirs"
            #expect(mkdir(theirs, 0o755) == 0 && chown(theirs, ids!.user.rawValue, ids!.group.rawValue) == 0)
            program = theirs + "/hook.sh"
            try ConfigFixtures.write("#!/bin/sh\nexit 0\n", to: URL(fileURLWithPath: program), mode: 0o755)
            fragment = "refusing the directory \(theirs) of program"
        case "missing":
            program = setup.root + "/nope.sh"
            fragment = "cannot be used: ENOENT"
        case "directory":
            program = setup.root
            fragment = "is not an executable regular file"
        case "not-executable":
            #expect(chmod(program, 0o644) == 0)
            fragment = "is not an executable regular file"
        default:
            program = "sr-no-such-program-9"
            fragment = "is not found on PATH"
        }
        try setup.writeConfig(outputs: "on_rotate = [\"\(program)\"]\n")
        try expectRefused(setup, fragment)
    }

    @Test func trustedHookProgramByNameIsAccepted() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig(outputs: "on_rotate = [\"true\"]\n")
        let result = try setup.check()
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// A directory component that is a stranger's link (u/l2 -> etc)
    /// let them choose which config, template or key file was read.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give directories away"))
    func linkedDirectoryComponentInAStrangersDirectoryIsRefused() throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        try setup.writeConfig()
        let theirs = setup.root + "/theirs"
        #expect(mkdir(theirs, 0o755) == 0 && chown(theirs, ids.user.rawValue, ids.group.rawValue) == 0)
        #expect(symlink(setup.root, theirs + "/l2") == 0)
        let result = try setup.check(config: theirs + "/l2/rotator.toml")
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("refusing the directory \(theirs) of config file"), "\(result.stderr)")
    }

    /// `ca_file` and `access_key_secret_file` were read whoever owned them.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give files away"), arguments: ["key", "ca"])
    func keyAndCAFilesMustBeTrusted(_ which: String) throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        if which == "key" {
            try setup.writeConfig()
            #expect(chown(setup.keyFile, ids.user.rawValue, ids.group.rawValue) == 0)
            try expectRefused(setup, "refusing access key secret file \(setup.keyFile): owned by uid")
        } else {
            let ca = setup.root + "/ca.pem"
            try ConfigFixtures.write("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", to: URL(fileURLWithPath: ca), mode: 0o666)
            try setup.writeConfig()
            let text = try String(contentsOfFile: setup.config, encoding: .utf8)
                .replacingOccurrences(of: "access_key_id = \"ak-trust\"", with: "access_key_id = \"ak-trust\"\nca_file = \"\(ca)\"")
            try ConfigFixtures.write(text, to: URL(fileURLWithPath: setup.config))
            try expectRefused(setup, "refusing CA file \(ca): writable by group or others")
        }
    }

    /// A bind mount of `<state>/current` alone (not the whole state
    /// directory) let an output overwrite the daemon's own secret record.
    @Test func outputThroughABindMountOfAStateEntryIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        #expect(mkdir(setup.state, 0o700) == 0 && mkdir(setup.state + "/current", 0o700) == 0)
        let alias = setup.root + "/cur"
        try TestMount.withBind(setup.state + "/current", at: alias) {
            try setup.writeConfig(outputs: "[[app.output]]\npath = \"\(alias)/app-1.json\"\nformat = \"raw\"\n")
            try expectRefused(setup, "only the daemon writes")
        }
    }

    /// An id spelling another id's SHA-256 state name passed check-config.
    @Test func idsSharingAStateRecordAreRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let long = String(repeating: ".", count: 60)
        try setup.writeConfig(outputs: "[[app]]\nid = \"\(long)\"\nname = \"dots\"\n[[app]]\nid = \"\(StateDirectory.fileName(for: long))\"\nname = \"spelled\"\n")
        try expectRefused(setup, "duplicate state record name")
    }

    /// The package's layout checked from a root shell: the daemon runs as its own user, which
    /// owns the state directory and the directories it writes. root's `check-config` trusts
    /// that user (found by the e2e under systemd), and no other.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to give directories away"))
    func rootTrustsTheDaemonUserWhoOwnsTheStateDirectory() throws {
        let ids = try #require(TestAccounts.ids)
        let setup = try Setup()
        defer { setup.remove() }
        #expect(mkdir(setup.state, 0o711) == 0 && chown(setup.state, ids.user.rawValue, ids.group.rawValue) == 0)
        #expect(chown(setup.outputs, ids.user.rawValue, ids.group.rawValue) == 0)
        try setup.writeConfig()
        let result = try setup.check()
        #expect(result.status == 0, "\(result.stderr)")
        // A directory of someone else is still refused.
        #expect(chown(setup.outputs, 65_534, 65_534) == 0)
        try expectRefused(setup, "is owned by uid 65534")
    }

    @Test func twoSpellingsOfOneFileAreRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        // Through a symlinked directory: every write there would be refused, so is the config.
        #expect(symlink(setup.outputs, setup.root + "/alias") == 0)
        try setup.writeConfig(outputs: "[[app.output]]\npath = \"\(setup.root)/alias/one\"\nformat = \"raw\"\n")
        try expectRefused(setup, "\(setup.root)/alias is a symbolic link")

        // Through a bind mount: one directory, two paths, no link to see.
        let bound = setup.root + "/bound"
        try TestMount.withBind(setup.outputs, at: bound) {
            try setup.writeConfig(
                outputs: """
                    [[app.output]]
                    path = "\(setup.outputs)/same"
                    format = "raw"
                    [[app]]
                    id = "app-2"
                    name = "two"
                    [[app.output]]
                    path = "\(bound)/same"
                    format = "raw"
                    """)
            try expectRefused(setup, "is the same file as \(setup.outputs)/same, spelled differently")
        }
    }
}
