import Foundation
import SystemPackage
import Testing

@testable import SecretRotator

@Suite("Output formats")
struct OutputRendererTests {
    static let rotatedAt = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18T11:06:40Z

    static func document(secret: String, appName: String = "billing") -> SecretDocument {
        SecretDocument(
            secret: SecretValue(secret), appId: "6229ffaxxxxxxxxcade3e3d9", appName: appName, version: 7,
            rotatedAt: rotatedAt)
    }

    /// Values an env or json writer must carry through unchanged; the last ones try to inject.
    static let trickyValues: [String] = [
        "0123456789abcdef0123456789abcdef",
        "with \"double\" quotes",
        "with 'single' quotes and '\\'' shell trick",
        "$HOME ${HOME} $(id) `id` $$ $1",
        "back\\slash \\\\ \\n \\\" \\$ trailing\\",
        "ünïcødé 秘密 🔑 \u{2028} \u{00A0}nbsp",
        "  leading and trailing spaces  ",
        "a=b=c # not a comment ; nor this",
        "x\"; export INJECTED=1; echo \"",
        "x' INJECTED=1 '",
        "\\",
        "\"",
        "",
    ]

    @Test("raw: the secret, with a trailing newline unless turned off")
    func raw() throws {
        let doc = Self.document(secret: "s3cr3t")
        #expect(try OutputRenderer.render(doc, for: OutputSpec(path: "/x/y")) == Array("s3cr3t\n".utf8))
        #expect(
            try OutputRenderer.render(doc, for: OutputSpec(path: "/x/y", trailingNewline: false)) == Array("s3cr3t".utf8))
    }

    @Test("env: every tricky value is exactly one variable for bash and for systemd", arguments: trickyValues)
    func envRoundTrip(value: String) throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let path = directory.file("app.env")
        let spec = OutputSpec(path: path, format: .env, envKey: "GENAUTH_APP_SECRET")
        let bytes = try OutputRenderer.render(Self.document(secret: value), for: spec)
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let systemd = SystemdEnvironmentFileParser.parse(bytes)
        #expect(systemd.count == 1)
        #expect(systemd.first?.key == "GENAUTH_APP_SECRET")
        #expect(systemd.first?.value == value)

        // Environment after sourcing the file minus environment after sourcing an empty file:
        // must be exactly our one assignment.
        let empty = directory.file("empty.env")
        try Data().write(to: URL(fileURLWithPath: empty))
        let script = "set -a; . \"$1\"; exec /usr/bin/env -0"
        let with = try TestProcess.run("/usr/bin/env", ["-i", "/bin/bash", "--norc", "--noprofile", "-c", script, "bash", path])
        let without = try TestProcess.run("/usr/bin/env", ["-i", "/bin/bash", "--norc", "--noprofile", "-c", script, "bash", empty])
        #expect(with.status == 0, "bash failed: \(with.stderr)")
        #expect(with.stderr.isEmpty)
        let added = Set(with.stdout.split(separator: "\0", omittingEmptySubsequences: false).map(String.init))
            .subtracting(without.stdout.split(separator: "\0", omittingEmptySubsequences: false).map(String.init))
        #expect(added == ["GENAUTH_APP_SECRET=\(value)"])
    }

    @Test("env: control characters and NUL are refused without showing the secret", arguments: [
        "line1\nINJECTED=1", "carriage\rreturn", "nul\0byte", "escape\u{1B}[31m", "tab\tinside", "del\u{7F}", "c1\u{85}",
    ])
    func envRefusesControlCharacters(value: String) {
        let spec = OutputSpec(path: "/x/app.env", format: .env, envKey: "KEY")
        #expect {
            try OutputRenderer.render(Self.document(secret: value), for: spec)
        } throws: { error in
            guard let error = error as? OutputError else { return false }
            return error.code == .unrepresentable && !error.description.contains(value)
                && error.description.contains("/x/app.env")
        }
    }

    @Test("env: an invalid env_key is refused", arguments: ["", "1ABC", "A-B", "A B", "A=B", "ÄÖ"])
    func envKeyValidation(key: String) {
        let spec = OutputSpec(path: "/x/app.env", format: .env, envKey: key)
        #expect(throws: OutputError.self) { try OutputRenderer.render(Self.document(secret: "s"), for: spec) }
        #expect(!spec.problems().isEmpty)
    }

    @Test("json: every field parses back exactly, for any secret and app name",
        arguments: trickyValues + ["new\nline", "tab\t", "nul\0", "\u{1}\u{1F}\u{7F}", "</script>"])
    func jsonRoundTrip(value: String) throws {
        let doc = Self.document(secret: value, appName: "name " + value)
        let bytes = try OutputRenderer.render(doc, for: OutputSpec(path: "/x/app.json", format: .json))
        #expect(bytes.last == UInt8(ascii: "\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(object.count == 5)
        #expect(object["secret"] as? String == value)
        #expect(object["appName"] as? String == "name " + value)
        #expect(object["appId"] as? String == "6229ffaxxxxxxxxcade3e3d9")
        #expect(object["rotatedAt"] as? String == "2026-11-18T11:06:40Z")
        #expect(object["version"] as? Int == 7)
        // One line: a newline in the secret must be escaped, not written.
        #expect(bytes.dropLast().contains(UInt8(ascii: "\n")) == false)
    }

    @Test("template: placeholders are filled verbatim, never HTML-escaped")
    func templateVerbatim() throws {
        let secret = "a&b<c>\"d'e`f{{secret}}"
        let text = "\n# leading newline kept\nSECRET={{secret}}\nRAW={{{secret}}}\nAMP={{& secret}}\nAPP={{app_id}} {{app_name}} v{{version}} at {{rotated_at}}{{! comment }}\n"
        let spec = OutputSpec(path: "/x/t.conf", format: .template, template: text)
        #expect(spec.problems().isEmpty)
        let rendered = String(decoding: try OutputRenderer.render(Self.document(secret: secret, appName: "<b>&"), for: spec), as: UTF8.self)
        #expect(
            rendered
                == "\n# leading newline kept\nSECRET=\(secret)\nRAW=\(secret)\nAMP=\(secret)\nAPP=6229ffaxxxxxxxxcade3e3d9 <b>& v7 at 2026-11-18T11:06:40Z\n"
        )
    }

    @Test("template: a template without placeholders or newline renders unchanged")
    func templatePlain() throws {
        for text in ["", "plain", "{ not a tag }", "{single} } {{!only a comment}}"] {
            let spec = OutputSpec(path: "/x/t", format: .template, template: text)
            let expected = text.replacingOccurrences(of: "{{!only a comment}}", with: "")
            #expect(String(decoding: try OutputRenderer.render(Self.document(secret: "s"), for: spec), as: UTF8.self) == expected)
        }
    }
}

@Suite("Template validation")
struct TemplateValidatorTests {
    @Test("known placeholders in every allowed form pass")
    func valid() {
        #expect(TemplateValidator.problems(in: "{{secret}} {{ app_id }} {{{app_name}}} {{&rotated_at}} {{version}} {{! hi }}").isEmpty)
    }

    @Test("problems name the line, the column and the offending tag", arguments: [
        ("ok\nx={{secrt}}", "line 2, column 3: unknown placeholder {{secrt}}"),
        ("{{{password}}}", "line 1, column 1: unknown placeholder {{{password}}}"),
        ("{{#secret}}x{{/secret}}", "line 1, column 1: sections"),
        ("{{^secret}}x{{/secret}}", "sections"),
        ("{{> other}}", "partials"),
        ("{{=<% %>=}}<%secret%>", "changing delimiters"),
        ("{{%CONTENT_TYPE:HTML}}{{secret}}", "pragmas"),
        ("{{secret.length}}", "unknown placeholder {{secret.length}}"),
        ("{{upper(secret)}}", "unknown placeholder"),
        ("{{}}", "empty placeholder"),
        ("x {{secret", "unclosed tag"),
    ])
    func problems(template: String, expected: String) {
        let problems = TemplateValidator.problems(in: template)
        #expect(problems.contains { $0.contains(expected) }, "\(problems)")
    }

    @Test("rendering refuses a template that validation refuses")
    func renderRefusesInvalid() {
        let spec = OutputSpec(path: "/x/t", format: .template, template: "{{password}}")
        #expect(throws: OutputError.self) {
            try OutputRenderer.render(OutputRendererTests.document(secret: "s"), for: spec)
        }
    }
}

@Suite("Output spec validation")
struct OutputSpecTests {
    @Test("modes: world-readable needs consent, world-writable and special bits never pass")
    func modes() {
        #expect(OutputSpec(path: "/etc/x", mode: FilePermissions(rawValue: 0o640)).problems().isEmpty)
        #expect(OutputSpec(path: "/etc/x", mode: FilePermissions(rawValue: 0o660)).problems().isEmpty)
        #expect(!OutputSpec(path: "/etc/x", mode: FilePermissions(rawValue: 0o644)).problems().isEmpty)
        #expect(OutputSpec(path: "/etc/x", mode: FilePermissions(rawValue: 0o644), allowWorldReadable: true).problems().isEmpty)
        #expect(!OutputSpec(path: "/etc/x", mode: FilePermissions(rawValue: 0o646), allowWorldReadable: true).problems().isEmpty)
        #expect(!OutputSpec(path: "/etc/x", mode: FilePermissions(rawValue: 0o4640)).problems().isEmpty)
    }

    @Test("paths must be absolute, normalized file paths", arguments: [
        "relative/x", "/etc/", "/etc/../x", "/etc/./x", "/etc//x", "/", "/etc/.x.sr-tmp.0123456789abcdef",
    ])
    func badPaths(path: String) {
        #expect(!OutputSpec(path: path).problems().isEmpty)
    }

    @Test("format-specific keys are required where needed and refused elsewhere")
    func formatKeys() {
        #expect(!OutputSpec(path: "/x/y", format: .env).problems().isEmpty)
        #expect(!OutputSpec(path: "/x/y", format: .template).problems().isEmpty)
        #expect(!OutputSpec(path: "/x/y", format: .raw, envKey: "K").problems().isEmpty)
        #expect(!OutputSpec(path: "/x/y", format: .json, template: "{{secret}}").problems().isEmpty)
        #expect(OutputSpec(path: "/x/y", format: .env, envKey: "K").problems().isEmpty)
    }

    @Test("drop directory outputs are <directory>/<name>, raw, creating the directory 0750")
    func dropDirectory() {
        let spec = OutputSpec.dropDirectory("/var/lib/secret-rotator/secrets", name: "billing", group: GroupID(rawValue: 42))
        #expect(spec.path == "/var/lib/secret-rotator/secrets/billing")
        #expect(spec.format == .raw)
        #expect(spec.createParent == DirectoryCreation(mode: FilePermissions(rawValue: 0o750), group: GroupID(rawValue: 42)))
        #expect(OutputSpec.isValidDropName("billing"))
        #expect(!OutputSpec.isValidDropName("../etc"))
        #expect(!OutputSpec.isValidDropName(".hidden"))
    }
}
