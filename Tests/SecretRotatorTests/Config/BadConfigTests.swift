import Foundation
import Testing

@testable import SecretRotator

/// One broken config and the diagnostic it must produce.
struct BadConfigCase: CustomTestStringConvertible, Sendable {
    let name: String
    let toml: String
    let keyPath: String
    let line: Int?
    let fragment: String
    var environment: [String: String] = ConfigFixtures.environment

    var testDescription: String { name }
}

// The first five lines of most cases: a minimal valid config that the case then breaks.
private let head = """
    [genauth]
    access_key_id = "ak-1"
    [[app]]
    id = "app-1"
    name = "one"

    """

private let missingTemplateFile = "/nonexistent/secret-rotator/test.tmpl"

@Suite struct BadConfigTests {
    static let cases: [BadConfigCase] = [
        BadConfigCase(
            name: "TOML syntax error", toml: "[genauth\naccess_key_id = \"x\"\n", keyPath: "", line: 1,
            fragment: "TOML syntax error"),
        BadConfigCase(
            name: "duplicate key is a syntax error",
            toml: "[genauth]\naccess_key_id = \"a\"\naccess_key_id = \"b\"\n", keyPath: "", line: 3,
            fragment: "TOML syntax error"),
        BadConfigCase(
            name: "unknown top-level table", toml: head + "[genauht]\nhost = \"x\"\n", keyPath: "genauht", line: 6,
            fragment: "did you mean `genauth`?"),
        BadConfigCase(
            name: "unknown genauth key", toml: "[genauth]\naccess_key_id = \"ak\"\nflavor = \"authing\"\n",
            keyPath: "genauth.flavor", line: 3, fragment: "did you mean `flavour`?"),
        BadConfigCase(
            name: "missing genauth table", toml: "[[app]]\nid = \"a\"\n", keyPath: "genauth", line: nil,
            fragment: "missing [genauth] table"),
        BadConfigCase(
            name: "missing access_key_id", toml: "[genauth]\nflavour = \"genauth\"\n", keyPath: "genauth.access_key_id",
            line: 1, fragment: "missing"),
        BadConfigCase(
            name: "genauth table defined twice", toml: head + "[genauth]\n",
            keyPath: "", line: 6, fragment: "TOML syntax error"),
        BadConfigCase(
            name: "request_timeout integer",
            toml: "[genauth]\naccess_key_id = \"ak\"\nrequest_timeout = 10\n", keyPath: "genauth.request_timeout", line: 3,
            fragment: "a bare number without a unit"),
        BadConfigCase(
            name: "request_timeout zero", toml: "[genauth]\naccess_key_id = \"ak\"\nrequest_timeout = \"0s\"\n",
            keyPath: "genauth.request_timeout", line: 3, fragment: "must be more than 0s"),
        BadConfigCase(
            name: "plain http to a remote host",
            toml: "[genauth]\naccess_key_id = \"ak\"\nhost = \"http://api.genauth.ai\"\n", keyPath: "genauth.host", line: 3,
            fragment: "plain http:// is allowed only for a loopback host"),
        BadConfigCase(
            name: "host with another scheme", toml: "[genauth]\naccess_key_id = \"ak\"\nhost = \"ftp://x.example\"\n",
            keyPath: "genauth.host", line: 3, fragment: "is not an https:// URL"),
        BadConfigCase(
            name: "host with credentials",
            toml: "[genauth]\naccess_key_id = \"ak\"\nhost = \"https://u:p@x.example\"\n", keyPath: "genauth.host", line: 3,
            fragment: "credentials never go in the URL"),
        BadConfigCase(
            name: "host with bad port", toml: "[genauth]\naccess_key_id = \"ak\"\nhost = \"https://x.example:99999\"\n",
            keyPath: "genauth.host", line: 3, fragment: "invalid port"),
        BadConfigCase(
            name: "unknown flavour", toml: "[genauth]\naccess_key_id = \"ak\"\nflavour = \"okta\"\n",
            keyPath: "genauth.flavour", line: 3, fragment: "\"okta\" is not one of \"genauth\", \"authing\""),
        BadConfigCase(
            name: "relative access key secret file",
            toml: "[genauth]\naccess_key_id = \"ak\"\naccess_key_secret_file = \"secret.txt\"\n",
            keyPath: "genauth.access_key_secret_file", line: 3, fragment: "relative path"),
        BadConfigCase(
            name: "missing access key secret file",
            toml: "[genauth]\naccess_key_id = \"ak\"\naccess_key_secret_file = \"/nonexistent/sr/secret\"\n",
            keyPath: "genauth.access_key_secret_file", line: 3, fragment: "ENOENT"),
        BadConfigCase(
            name: "credential outside systemd",
            toml: "[genauth]\naccess_key_id = \"ak\"\naccess_key_secret_credential = \"genauth-key\"\n",
            keyPath: "genauth.access_key_secret_credential", line: 3, fragment: "$CREDENTIALS_DIRECTORY is not set",
            environment: [:]),
        BadConfigCase(
            name: "no access key secret at all", toml: "[genauth]\naccess_key_id = \"ak\"\n",
            keyPath: "genauth.access_key_secret_credential", line: 1, fragment: "no access key secret", environment: [:]),
        BadConfigCase(
            name: "empty inline secret", toml: "[genauth]\naccess_key_id = \"ak\"\naccess_key_secret = \"\"\n",
            keyPath: "genauth.access_key_secret", line: 3, fragment: "is empty", environment: [:]),
        BadConfigCase(
            name: "missing ca file", toml: "[genauth]\naccess_key_id = \"ak\"\nca_file = \"/nonexistent/ca.pem\"\n",
            keyPath: "genauth.ca_file", line: 3, fragment: "cannot open /nonexistent/ca.pem: ENOENT"),
        BadConfigCase(
            name: "interval below one minute", toml: head + "[defaults]\ninterval = \"30s\"\n",
            keyPath: "defaults.interval", line: 7, fragment: "shorter than the minimum interval of 1m"),
        BadConfigCase(
            name: "interval without unit", toml: head + "interval = \"7\"\n", keyPath: "app[0].interval", line: 6,
            fragment: "has no unit"),
        BadConfigCase(
            name: "interval in years", toml: head + "interval = \"1y\"\n", keyPath: "app[0].interval", line: 6,
            fragment: "unknown unit \"y\""),
        BadConfigCase(
            name: "negative jitter", toml: head + "jitter = \"-1h\"\n", keyPath: "app[0].jitter", line: 6,
            fragment: "is negative"),
        BadConfigCase(
            name: "default jitter not below default interval",
            toml: head + "[defaults]\ninterval = \"1h\"\njitter = \"1h\"\n", keyPath: "defaults.jitter", line: 8,
            fragment: "is not smaller than the interval 1h"),
        BadConfigCase(
            name: "app jitter not below app interval", toml: head + "interval = \"10m\"\njitter = \"2h\"\n",
            keyPath: "app[0].jitter", line: 7, fragment: "jitter 2h is not smaller than the interval 10m"),
        BadConfigCase(
            name: "inherited jitter not below app interval",
            toml: "[genauth]\naccess_key_id = \"ak\"\n[defaults]\njitter = \"2h\"\n[[app]]\nid = \"a\"\ninterval = \"1h\"\n",
            keyPath: "app[0].interval", line: 7, fragment: "(inherited from [defaults])"),
        BadConfigCase(
            name: "max_concurrent zero", toml: head + "[defaults]\nmax_concurrent = 0\n",
            keyPath: "defaults.max_concurrent", line: 7, fragment: "out of range; use 1 to 64"),
        BadConfigCase(
            name: "max_concurrent as string", toml: head + "[defaults]\nmax_concurrent = \"4\"\n",
            keyPath: "defaults.max_concurrent", line: 7, fragment: "expected a whole number (without quotes), found a string"),
        BadConfigCase(
            name: "retry max below initial", toml: head + "[defaults]\nretry = { initial = \"10s\", max = \"5s\" }\n",
            keyPath: "defaults.retry.max", line: 7, fragment: "max must be at least initial"),
        BadConfigCase(
            name: "retry multiplier below one", toml: head + "[defaults.retry]\nmultiplier = 0.5\n",
            keyPath: "defaults.retry.multiplier", line: 7, fragment: "use 1.0 (constant) to 10.0"),
        BadConfigCase(
            name: "unknown retry key", toml: head + "[defaults]\nretry = { inital = \"1s\" }\n",
            keyPath: "defaults.retry.inital", line: 7, fragment: "did you mean `initial`?"),
        BadConfigCase(
            name: "world-readable default mode", toml: head + "[defaults]\nmode = \"0644\"\n", keyPath: "defaults.mode",
            line: 7, fragment: "0644 lets every user on the host access the secret"),
        BadConfigCase(
            name: "world-readable output mode",
            toml: head + "[[app.output]]\npath = \"/srv/a/secret\"\nmode = \"0604\"\n", keyPath: "app[0].output[0].mode",
            line: 8, fragment: "set allow_world_readable = true on this output"),
        BadConfigCase(
            name: "world-writable mode even when world-readable is allowed",
            toml: head + "[[app.output]]\npath = \"/srv/a/secret\"\nmode = \"0666\"\nallow_world_readable = true\n",
            keyPath: "app[0].output[0].mode", line: 8, fragment: "makes the secret writable by everyone"),
        BadConfigCase(
            name: "path that looks like a temp file",
            toml: head + "[[app.output]]\npath = \"/srv/a/.secret.sr-tmp.0123456789abcdef\"\n",
            keyPath: "app[0].output[0].path", line: 7, fragment: "looks like one of secret-rotator's temporary files"),
        BadConfigCase(
            name: "mode as decimal integer", toml: head + "[[app.output]]\npath = \"/srv/a/secret\"\nmode = 640\n",
            keyPath: "app[0].output[0].mode", line: 8, fragment: "TOML reads unquoted numbers as decimal"),
        BadConfigCase(
            name: "mode not octal", toml: head + "[[app.output]]\npath = \"/srv/a/secret\"\nmode = \"0999\"\n",
            keyPath: "app[0].output[0].mode", line: 8, fragment: "is not octal"),
        BadConfigCase(
            name: "unknown owner", toml: head + "[defaults]\nowner = \"no-such-user-sr-test\"\n", keyPath: "defaults.owner",
            line: 7, fragment: "unknown user \"no-such-user-sr-test\""),
        BadConfigCase(
            name: "unknown group on an output",
            toml: head + "[[app.output]]\npath = \"/srv/a/secret\"\ngroup = \"no-such-group-sr-test\"\n",
            keyPath: "app[0].output[0].group", line: 8, fragment: "unknown group \"no-such-group-sr-test\""),
        BadConfigCase(
            name: "relative drop directory", toml: head + "[defaults]\ndirectory = \"secrets\"\n",
            keyPath: "defaults.directory", line: 7, fragment: "relative path"),
        BadConfigCase(
            name: "duplicate app id", toml: head + "[[app]]\nid = \"app-1\"\nname = \"two\"\n", keyPath: "app[1].id",
            line: 7, fragment: "duplicate app id \"app-1\"; already used by app[0].id (line 4)"),
        BadConfigCase(
            name: "duplicate app name", toml: head + "[[app]]\nid = \"app-2\"\nname = \"one\"\n", keyPath: "app[1].name",
            line: 8, fragment: "duplicate app name \"one\"; already used by app[0].name (line 5)"),
        BadConfigCase(
            name: "two outputs with the same path",
            toml: head + "[[app.output]]\npath = \"/srv/s\"\n[[app]]\nid = \"app-2\"\n[[app.output]]\npath = \"/srv/s\"\n",
            keyPath: "app[1].output[0].path", line: 11, fragment: "duplicate output path \"/srv/s\""),
        BadConfigCase(
            name: "app output collides with drop directory file",
            toml: head + "[[app]]\nid = \"app-2\"\n[[app.output]]\npath = \"/var/lib/secret-rotator/secrets/one\"\n",
            keyPath: "app[1].output[0].path", line: 9, fragment: "already used by app[0] (line 3)"),
        BadConfigCase(
            name: "relative output path", toml: head + "[[app.output]]\npath = \"secret.env\"\n",
            keyPath: "app[0].output[0].path", line: 7, fragment: "relative path"),
        BadConfigCase(
            name: "output path with dot-dot", toml: head + "[[app.output]]\npath = \"/etc/a/../shadow\"\n",
            keyPath: "app[0].output[0].path", line: 7, fragment: "contains \".\" or \"..\" components"),
        BadConfigCase(
            name: "name with slash", toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a\"\nname = \"../etc\"\n",
            keyPath: "app[0].name", line: 5, fragment: "contains '/'"),
        BadConfigCase(
            name: "name dot-dot", toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a\"\nname = \"..\"\n",
            keyPath: "app[0].name", line: 5, fragment: "cannot be a file name"),
        BadConfigCase(
            name: "hidden name", toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a\"\nname = \".hidden\"\n",
            keyPath: "app[0].name", line: 5, fragment: "starts with '.'"),
        BadConfigCase(
            name: "empty name", toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a\"\nname = \"\"\n",
            keyPath: "app[0].name", line: 5, fragment: "empty name"),
        BadConfigCase(
            name: "name with control character",
            toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a\"\nname = \"bell\\u0007\"\n", keyPath: "app[0].name",
            line: 5, fragment: "control characters"),
        BadConfigCase(
            name: "app without id", toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nname = \"x\"\n", keyPath: "app[0].id",
            line: 3, fragment: "missing; every [[app]] needs the GenAuth application id"),
        BadConfigCase(
            name: "app id with spaces", toml: "[genauth]\naccess_key_id = \"ak\"\n[[app]]\nid = \"a b\"\n",
            keyPath: "app[0].id", line: 4, fragment: "printable ASCII without spaces"),
        BadConfigCase(
            name: "unknown action", toml: head + "action = \"delete\"\n", keyPath: "app[0].action", line: 6,
            fragment: "\"delete\" is not one of \"rotate\", \"follow\""),
        BadConfigCase(
            name: "mode used for the action", toml: head + "mode = \"follow\"\n", keyPath: "app[0].mode", line: 6,
            fragment: "the rotate/follow choice is `action`"),
        BadConfigCase(
            name: "follow app asked to rotate first",
            toml: head + "action = \"follow\"\nfirst_start = \"rotate\"\n", keyPath: "app[0].first_start", line: 7,
            fragment: "contradicts action = \"follow\""),
        BadConfigCase(
            name: "hook as a shell string", toml: head + "on_rotate = \"systemctl reload x\"\n",
            keyPath: "app[0].on_rotate", line: 6, fragment: "expected an array of strings"),
        BadConfigCase(
            name: "hook with relative program", toml: head + "on_rotate = [\"./reload.sh\"]\n",
            keyPath: "app[0].on_rotate", line: 6, fragment: "is a relative path"),
        BadConfigCase(
            name: "hook with a number argument", toml: head + "on_rotate = [\"systemctl\", 5]\n",
            keyPath: "app[0].on_rotate[1]", line: 6, fragment: "expected a string, found integer 5"),
        BadConfigCase(
            name: "hook timeout zero", toml: head + "hook_timeout = \"0s\"\n", keyPath: "app[0].hook_timeout", line: 6,
            fragment: "out of range; use 1s to 1h"),
        BadConfigCase(
            name: "env_key on a raw output", toml: head + "[[app.output]]\npath = \"/srv/s\"\nenv_key = \"X\"\n",
            keyPath: "app[0].output[0].env_key", line: 8, fragment: "only applies to format = \"env\""),
        BadConfigCase(
            name: "invalid env_key",
            toml: head + "[[app.output]]\npath = \"/srv/s\"\nformat = \"env\"\nenv_key = \"1-BAD\"\n",
            keyPath: "app[0].output[0].env_key", line: 9, fragment: "not a valid environment variable name"),
        BadConfigCase(
            name: "unknown format", toml: head + "[[app.output]]\npath = \"/srv/s\"\nformat = \"yaml\"\n",
            keyPath: "app[0].output[0].format", line: 8, fragment: "\"yaml\" is not one of \"raw\", \"env\", \"json\", \"template\""),
        BadConfigCase(
            name: "template output without template",
            toml: head + "[[app.output]]\npath = \"/srv/s\"\nformat = \"template\"\n", keyPath: "app[0].output[0].template",
            line: 6, fragment: "needs template = "),
        BadConfigCase(
            name: "template file missing",
            toml: head + "[[app.output]]\npath = \"/srv/s\"\nformat = \"template\"\ntemplate = \"\(missingTemplateFile)\"\n",
            keyPath: "app[0].output[0].template", line: 9, fragment: "ENOENT"),
        BadConfigCase(
            name: "trailing_newline on json", toml: head + "[[app.output]]\npath = \"/srv/s\"\nformat = \"json\"\ntrailing_newline = false\n",
            keyPath: "app[0].output[0].trailing_newline", line: 9, fragment: "only applies to format = \"raw\""),
        BadConfigCase(
            name: "unknown output key", toml: head + "[[app.output]]\npath = \"/srv/s\"\nfromat = \"raw\"\n",
            keyPath: "app[0].output[0].fromat", line: 8, fragment: "did you mean `format`?"),
        BadConfigCase(
            name: "app as a string", toml: "app = \"billing\"\n[genauth]\naccess_key_id = \"ak\"\n", keyPath: "app",
            line: 1, fragment: "expected an array of tables written as [[app]]"),
        BadConfigCase(
            name: "boolean as string", toml: head + "[[app.output]]\npath = \"/srv/s\"\nallow_unsafe_directory = \"yes\"\n",
            keyPath: "app[0].output[0].allow_unsafe_directory", line: 8, fragment: "expected true or false"),
        BadConfigCase(
            name: "requests_per_second zero", toml: "[genauth]\naccess_key_id = \"ak\"\nrequests_per_second = 0\n",
            keyPath: "genauth.requests_per_second", line: 3, fragment: "more than 0 and at most 1000"),
        BadConfigCase(
            name: "window with an unknown day", toml: head + "window = \"Mon..Fry 02:00-04:00\"\n", keyPath: "app[0].window",
            line: 6, fragment: "unknown day \"Fry\"; use Mon, Tue"),
        BadConfigCase(
            name: "window with a bad time", toml: head + "window = \"Mon 25:00-04:00\"\n", keyPath: "app[0].window", line: 6,
            fragment: "\"25:00\" is not a time of day"),
        BadConfigCase(
            name: "window with an unknown time zone", toml: head + "window = \"02:00-04:00 Europe/Berln\"\n",
            keyPath: "app[0].window", line: 6, fragment: "unknown time zone \"Europe/Berln\""),
        BadConfigCase(
            name: "zero-length window", toml: head + "window = \"* 02:00-02:00\"\n", keyPath: "app[0].window", line: 6,
            fragment: "zero-length"),
        BadConfigCase(
            name: "empty default window", toml: head + "[defaults]\nwindow = \"\"\n", keyPath: "defaults.window", line: 7,
            fragment: "empty window; give one such as \"Mon..Fri 02:00-04:00 Europe/Berlin\", or \"always\""),
        BadConfigCase(
            name: "window as a table", toml: head + "window = { from = \"02:00\" }\n", keyPath: "app[0].window", line: 6,
            fragment: "expected a string such as \"Mon..Fri 02:00-04:00 Europe/Berlin\""),
    ]

    @Test(arguments: cases)
    func reportsKeyLineAndMessage(_ badCase: BadConfigCase) {
        let diagnostics: [ConfigDiagnostic]
        do {
            let loaded = try ConfigFixtures.load(badCase.toml, environment: badCase.environment)
            Issue.record("config was accepted; warnings: \(loaded.warnings)")
            return
        } catch {
            diagnostics = error.diagnostics
        }
        let match = diagnostics.first { $0.keyPath == badCase.keyPath && $0.severity == .error }
        guard let match else {
            Issue.record("no error for key \(badCase.keyPath); got:\n\(diagnostics.map(\.description).joined(separator: "\n"))")
            return
        }
        #expect(match.line == badCase.line, "\(match)")
        #expect(match.message.contains(badCase.fragment), "\(match)")
        #expect(match.file == "rotator.toml")
        #expect(!match.description.contains(ConfigFixtures.accessKeySecret))
    }

    @Test func thereAreAtLeastThirtyCases() {
        #expect(Self.cases.count >= 30)
    }

    @Test func misspelledIntervalSuggestsTheRightKey() {
        let text = head + "[defaults]\nintervall = \"1d\"\n"
        let diagnostics = ConfigFixtures.diagnostics(text)
        let typo = diagnostics.first { $0.keyPath == "defaults.intervall" }
        #expect(typo?.line == 7)
        #expect(typo?.column == 1)
        #expect(typo?.message.contains("did you mean `interval`?") == true)
        #expect(typo?.description == "rotator.toml:7:1: error: defaults.intervall: unknown key \"intervall\"; did you mean `interval`?")
    }

    @Test func collectsEveryErrorInOnePass() {
        let text = head + "interval = \"7\"\naction = \"nope\"\n[defaults]\nmode = \"0666\"\nmax_concurrent = 0\n"
        let errors = ConfigFixtures.diagnostics(text).filter { $0.severity == .error }
        #expect(Set(errors.map(\.keyPath)) == ["app[0].interval", "app[0].action", "defaults.mode", "defaults.max_concurrent"])
    }

    @Test func unknownTemplatePlaceholderIsAConfigError() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let template = directory.appendingPathComponent("app.tmpl")
        try ConfigFixtures.write("secret={{secret}}\nname={{app_nmae}}\n", to: template)
        let text = head + "[[app.output]]\npath = \"/srv/s\"\nformat = \"template\"\ntemplate = \"\(template.path)\"\n"
        let error = ConfigFixtures.diagnostics(text).first { $0.keyPath == "app[0].output[0].template" }
        #expect(error?.line == 9)
        #expect(error?.message.contains("line 2, column 6: unknown placeholder {{app_nmae}} (did you mean {{app_name}}?)") == true, "\(String(describing: error))")
    }
}
