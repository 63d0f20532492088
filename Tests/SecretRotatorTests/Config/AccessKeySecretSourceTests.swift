import Foundation
import Testing

@testable import SecretRotator

@Suite struct AccessKeySecretSourceTests {
    private let base = "[genauth]\naccess_key_id = \"ak\"\n"

    @Test func credentialWinsAndTrailingNewlineIsStripped() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try ConfigFixtures.write("from-credential\n", to: directory.appendingPathComponent("genauth-key"))
        try ConfigFixtures.write("from-file\n", to: directory.appendingPathComponent("file-secret"))
        let text = base + """
            access_key_secret_credential = "genauth-key"
            access_key_secret_file = "\(directory.path)/file-secret"
            access_key_secret = "inline"
            """
        let environment = ["CREDENTIALS_DIRECTORY": directory.path, ConfigSchema.accessKeySecretVariable: "from-env"]
        let loaded = try ConfigFixtures.load(text, environment: environment, mode: FileMode(rawValue: 0o600))
        #expect(loaded.config.genauth.accessKeySecret.exposed == "from-credential")
        #expect(
            loaded.config.genauth.accessKeySecretSource
                == .credential(name: "genauth-key", path: "\(directory.path)/genauth-key"))
        #expect(loaded.warnings.filter { $0.keyPath.hasPrefix("genauth") }.isEmpty)
    }

    @Test func precedenceFileThenEnvironmentThenInline() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try ConfigFixtures.write("from-file\r\n", to: directory.appendingPathComponent("secret"))
        let variable = ConfigSchema.accessKeySecretVariable

        let withFile = base + "access_key_secret_file = \"\(directory.path)/secret\"\naccess_key_secret = \"inline\"\n"
        let fromFile = try ConfigFixtures.load(withFile, environment: [variable: "from-env"], mode: FileMode(rawValue: 0o600))
        #expect(fromFile.config.genauth.accessKeySecret.exposed == "from-file")

        let withInline = base + "access_key_secret = \"inline\"\n"
        let fromEnvironment = try ConfigFixtures.load(withInline, environment: [variable: "from-env"], mode: FileMode(rawValue: 0o600))
        #expect(fromEnvironment.config.genauth.accessKeySecret.exposed == "from-env")
        #expect(fromEnvironment.config.genauth.accessKeySecretSource == .environment(variable: variable))

        let fromInline = try ConfigFixtures.load(withInline, environment: [:], mode: FileMode(rawValue: 0o600))
        #expect(fromInline.config.genauth.accessKeySecret.exposed == "inline")
        #expect(fromInline.config.genauth.accessKeySecretSource == .inline)
    }

    @Test func credentialOutsideSystemdFallsBackToTheNextConfiguredSource() throws {
        let text = base + "access_key_secret_credential = \"genauth-key\"\n"
        let loaded = try ConfigFixtures.load(text, environment: [ConfigSchema.accessKeySecretVariable: "from-env"])
        #expect(loaded.config.genauth.accessKeySecret.exposed == "from-env")
    }

    /// The packaged config names only the credential, so from a root shell the daemon cannot
    /// get its key (error), but `check-config` and `status`, which never call GenAuth, work.
    @Test func credentialOnlyOutsideSystemdStopsTheDaemonButNotTheCommandsThatOnlyLook() throws {
        let text = base + "access_key_secret_credential = \"genauth-key\"\n"
        let errors = ConfigFixtures.diagnostics(text, environment: [:]).filter { $0.keyPath.hasPrefix("genauth") }
        #expect(errors.map(\.keyPath) == ["genauth.access_key_secret_credential"])
        #expect(errors.first?.severity == .error)
        #expect(errors.first?.message.contains("$CREDENTIALS_DIRECTORY is not set") == true)

        let looking = try ConfigLoader(environment: [:], accessKeySecretNeeded: false).load(text: text, path: "rotator.toml")
        #expect(looking.warnings.map(\.keyPath).filter { $0.hasPrefix("genauth") } == ["genauth.access_key_secret_credential"])
        #expect(looking.warnings.first?.message.contains("not checked") == true)
        #expect(looking.config.genauth.accessKeySecretSource == .credential(name: "genauth-key", path: "$CREDENTIALS_DIRECTORY/genauth-key"))
        // Only the missing directory is forgiven: a credential that is there must be readable.
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: ConfigError.self) {
            try ConfigLoader(environment: ["CREDENTIALS_DIRECTORY": directory.path], accessKeySecretNeeded: false)
                .load(text: text, path: "rotator.toml")
        }
    }

    @Test func missingCredentialFileUnderSystemdIsAnErrorNotAFallback() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = base + "access_key_secret_credential = \"genauth-key\"\n"
        let environment = ["CREDENTIALS_DIRECTORY": directory.path, ConfigSchema.accessKeySecretVariable: "from-env"]
        let error = ConfigFixtures.diagnostics(text, environment: environment).first
        #expect(error?.keyPath == "genauth.access_key_secret_credential")
        #expect(error?.message.contains("ENOENT") == true)
    }

    @Test func inlineSecretInReadableFileWarnsButLoads() throws {
        let text = base + "access_key_secret = \"inline-secret-value\"\n"
        let loaded = try ConfigFixtures.load(text, environment: [:], mode: FileMode(rawValue: 0o644))
        let warning = loaded.warnings.first { $0.keyPath == "genauth.access_key_secret" }
        #expect(warning?.severity == .warning)
        #expect(warning?.line == 3)
        #expect(warning?.message.contains("mode 0644") == true)
        #expect(warning?.description.contains("inline-secret-value") == false)

        let strict = try ConfigFixtures.load(text, environment: [:], mode: FileMode(rawValue: 0o600))
        #expect(strict.warnings.allSatisfy { $0.keyPath != "genauth.access_key_secret" })
    }

    /// The daemon runs as its own user, so a key file others can read gains nothing and exposes
    /// the key to every local user; existing installs must keep starting, hence a warning.
    @Test func keyFileReadableByOthersWarnsButLoads() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("secret")
        let text = base + "access_key_secret_file = \"\(path.path)\"\n"

        try ConfigFixtures.write("file-secret-value\n", to: path, mode: 0o644)
        let open = try ConfigFixtures.load(text, environment: [:])
        #expect(open.config.genauth.accessKeySecret.exposed == "file-secret-value")
        let warning = open.warnings.first { $0.keyPath == "genauth.access_key_secret_file" }
        #expect(warning?.severity == .warning)
        #expect(warning?.message.contains("mode 644") == true)
        #expect(warning?.description.contains("file-secret-value") == false)

        for mode in [0o600, 0o640] {
            try ConfigFixtures.write("file-secret-value\n", to: path, mode: mode)
            let closed = try ConfigFixtures.load(text, environment: [:])
            #expect(closed.warnings.allSatisfy { $0.keyPath != "genauth.access_key_secret_file" })
        }
    }

    @Test func secretWithWhitespaceIsRefusedWithoutEchoingIt() {
        let text = base + "access_key_secret = \"two words\"\n"
        let error = ConfigFixtures.diagnostics(text, environment: [:]).first { $0.keyPath == "genauth.access_key_secret" }
        #expect(error?.message.contains("whitespace") == true)
        #expect(error?.description.contains("two words") == false)
    }
}

@Suite struct ConfigResolutionTests {
    @Test func appsInheritDefaultsAndGetDropDirectoryOutputs() throws {
        let text = """
            [genauth]
            access_key_id = "ak"
            host = "http://127.0.0.1:8080/"
            flavour = "authing"
            [defaults]
            interval = "1d"
            jitter = "1h"
            mode = "0600"
            group = "0"
            directory = "/srv/drop"
            [[app]]
            id = "a1"
            name = "alpha"
            [[app]]
            id = "b2"
            interval = "2h"
            jitter = "0s"
              [[app.output]]
              format = "json"
              [[app.output]]
              path = "/srv/b.env"
              format = "env"
              mode = "0640"
              owner = 0
            """
        let config = try ConfigFixtures.load(text).config
        #expect(config.genauth.host == "http://127.0.0.1:8080")
        #expect(config.genauth.flavour == .authing)
        #expect(config.genauth.requestTimeout == .seconds(10))
        let alpha = try #require(config.app(named: "alpha"))
        #expect(alpha.interval == .seconds(86_400))
        #expect(alpha.jitter == .seconds(3_600))
        #expect(alpha.action == .rotate)
        #expect(alpha.firstStart == .fetch)
        #expect(alpha.outputs.count == 1)
        #expect(alpha.outputs[0].path == "/srv/drop/alpha")
        #expect(alpha.outputs[0].inDropDirectory)
        #expect(alpha.outputs[0].mode == FileMode(rawValue: 0o600))
        #expect(alpha.outputs[0].group?.id == 0)
        let beta = try #require(config.app(named: "b2"))
        #expect(beta.name == "b2")
        #expect(beta.interval == .seconds(7_200))
        #expect(beta.jitter == .zero)
        #expect(beta.outputs.map(\.path) == ["/srv/drop/b2.json", "/srv/b.env"])
        #expect(beta.outputs[1].envKey == "GENAUTH_APP_SECRET")
        #expect(beta.outputs[1].owner?.id == 0)
        #expect(beta.outputs[1].group?.id == 0)
        #expect(!beta.outputs[1].inDropDirectory)
    }

    @Test func defaultHostFollowsFlavour() throws {
        let text = "[genauth]\naccess_key_id = \"ak\"\nflavour = \"authing\"\n"
        #expect(try ConfigFixtures.load(text).config.genauth.host == "https://api.authing.cn")
        let genauth = "[genauth]\naccess_key_id = \"ak\"\n"
        #expect(try ConfigFixtures.load(genauth).config.genauth.host == "https://api.genauth.ai")
    }
}
