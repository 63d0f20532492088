import Foundation
import Testing

@testable import SecretRotator

/// Hostile or absurd config text: each is a clear error with a position, never a crash.
/// The dotted header of 30,000 parts killed a debug build's `check-config` with SIGSEGV
/// (toml++ recursion); the same cases run against the release build in the systemd e2e.
@Suite struct ConfigInputLimitsTests {
    private static func dottedHeader(bytes: Int) -> String {
        let parts = Array(repeating: "a", count: bytes / 2)
        return "[" + parts.joined(separator: ".") + "]\nx = 1\n"
    }

    @Test(arguments: [60_000, 600_000])
    func deepDottedHeaderIsAnErrorNotACrash(bytes: Int) {
        let diagnostics = ConfigFixtures.diagnostics(Self.dottedHeader(bytes: bytes))
        let error = diagnostics.first { $0.severity == .error }
        #expect(error?.line == 1)
        #expect(error?.message.contains("dotted parts") == true, "\(diagnostics)")
    }

    @Test func deepDottedKeyInsideATableIsAnError() {
        let key = Array(repeating: "k", count: 5_000).joined(separator: ".")
        let diagnostics = ConfigFixtures.diagnostics("[genauth]\naccess_key_id = \"a\"\n\(key) = 1\n")
        #expect(diagnostics.first?.line == 3)
        #expect(diagnostics.first?.message.contains("dotted parts") == true)
    }

    @Test func dotsInStringsAndCommentsDoNotCount() throws {
        let dots = String(repeating: ".", count: 500)
        let text = """
            [genauth]
            access_key_id = "ak-1"  # \(dots)
            [[app]]
            id = "app-1"
            name = "one"
            on_rotate = ["/bin/true", "\(dots)", '\(dots)']
            hook_timeout = \"\"\"30s\"\"\"

            """
        let loaded = try ConfigFixtures.load(text)
        #expect(loaded.config.apps.count == 1)
    }

    @Test func deepNestingIsAnError() {
        let diagnostics = ConfigFixtures.diagnostics("x = " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "\n")
        #expect(diagnostics.first?.message.contains("nested more than") == true, "\(diagnostics)")
    }

    @Test func tooManyAppsIsAnErrorBeforeValidation() {
        // 100,000 minimal entries fit the 1 MiB file limit; the count is what refuses them.
        let text = "[genauth]\naccess_key_id = \"a\"\n" + String(repeating: "[[app]]\n", count: 100_000)
        #expect(text.utf8.count < ConfigFileReader.sizeLimit)
        let diagnostics = ConfigFixtures.diagnostics(text)
        #expect(diagnostics.count == 1, "\(diagnostics.prefix(3))")
        #expect(diagnostics.first?.message.contains("100000 [[app]] entries; one config holds at most 20000") == true)
    }

    @Test func tenMegabyteFileIsRefusedBeforeParsing() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("big.toml")
        try ConfigFixtures.write("# " + String(repeating: "x", count: 10 << 20) + "\n", to: file)
        do {
            _ = try ConfigLoader(environment: ConfigFixtures.environment).load(path: file.path)
            Issue.record("a 10 MB config was accepted")
        } catch {
            #expect(error.diagnostics.first?.message.contains("larger than 1024 KiB") == true, "\(error.diagnostics)")
        }
    }

    @Test func longUnknownKeyIsNotEchoedWhole() {
        let key = String(repeating: "q", count: 100_000)
        let diagnostics = ConfigFixtures.diagnostics("[genauth]\naccess_key_id = \"a\"\n\(key) = 1\n")
        let error = diagnostics.first { $0.message.contains("unknown key") }
        #expect(error?.message.contains("unknown key of 100000 bytes") == true)
        #expect((error?.description.utf8.count ?? .max) < 400)
    }

    /// Every TOML type, and syntax errors, as the value of `access_key_secret`: no message
    /// quotes it. The values are distinctive so a partial echo is caught too.
    @Test(arguments: [
        "90210555123456", "9021055.5123456", "true", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00",
        "[\"s3cr3tArr\"]", "{ v = \"s3cr3tTbl\" }", "\"s3cr3t with space\"", "s3cr3tBare", "\"s3cr3t\" s3cr3tTail",
        "\"s3cr3tUnterminated", "'s3cr3tLit' x", "0x90210555", "1e9021055",
        // Multi-line values report their errors on a later line than the key.
        "\"\"\"\ns3cr3tML\\q\"\"\"", "\"\"\"\ns3cr3tML\\uZZZZ\"\"\"", "'''\ns3cr3tML\n",
    ])
    func secretValueIsNeverEchoed(_ value: String) {
        let text = "[genauth]\naccess_key_id = \"a\"\naccess_key_secret = \(value)\n"
        let diagnostics = ConfigFixtures.diagnostics(text, environment: [:])
        #expect(diagnostics.contains { $0.severity == .error }, "\(diagnostics)")
        let output = diagnostics.map(\.description).joined(separator: "\n")
        if value.contains("\"\"\"") || value.contains("'''") {
            // The old check looked at the key's line only and printed one character of these.
            #expect(output.contains("details not shown"), "\(output)")
        }
        for fragment in ["90210555", "9021055", "s3cr3t", "1979", "07:32", "true"] where value.contains(fragment) {
            #expect(!output.contains(fragment), "\(fragment) echoed in:\n\(output)")
        }
    }

    /// toml++ stops at a NUL as at the end: a NUL before the second app silently dropped it.
    @Test func nulByteIsAnError() {
        let text = "[genauth]\naccess_key_id = \"a\"\n[[app]]\nid = \"one\"\u{0}\n[[app]]\nid = \"two\"\n"
        let diagnostics = ConfigFixtures.diagnostics(text)
        #expect(diagnostics.first?.message.contains("NUL byte") == true, "\(diagnostics)")
        #expect(diagnostics.first?.line == 4)
    }

    /// `\u0000` in a string: TOMLKit passes strings on as C strings, so the value ended there
    /// (`path = "/a\u0000.disabled"` wrote `/a`).
    @Test(arguments: [#"path = "/srv/a\u0000.disabled""#, #"x = "a\U00000000b""#, "x = \"\"\"\nab\\u0000c\"\"\""])
    func escapedNULIsAnError(_ line: String) {
        let diagnostics = ConfigFixtures.diagnostics("[genauth]\naccess_key_id = \"a\"\n" + line + "\n")
        #expect(diagnostics.first?.message.contains("\\u0000 escape") == true, "\(diagnostics)")
    }

    @Test func bomAndUnicodeInsideStringsAndCommentsAreFine() throws {
        let text = "\u{FEFF}[genauth] # caf\u{E9} \u{2028}\naccess_key_id = \"ak-\u{E9}\u{2028}\"\n[[app]]\nid = \"app-1\"\nname = \"one\"\n"
        #expect(ConfigInputLimits.check(text) == nil)
    }

    @Test func limitsScanIsLinearOnLongInput() {
        // 1 MiB of quotes and brackets in strings: the scan ends, nothing counted.
        let line = "x = \"" + String(repeating: "[.{", count: 300_000) + "\"\n"
        #expect(ConfigInputLimits.check(line) == nil)
    }
}

/// Ids that pass validation must be storable: 128 dots once escaped to a 389-byte file name.
@Suite struct StateFileNameTests {
    @Test func everyValidIdFitsAFileName() throws {
        let ids = [String(repeating: ".", count: 128), String(repeating: "%", count: 128), String(repeating: "a", count: 128), "x"]
        for id in ids {
            #expect(ValueRules.identifierProblem(id, what: "app id") == nil)
            let name = StateDirectory.fileName(for: id)
            #expect(name.utf8.count + ".json".count <= 200, "\(id): \(name)")
        }
        #expect(StateDirectory.fileName(for: "6229ffaxxxxxxxxcade3e3d9") == "6229ffaxxxxxxxxcade3e3d9")
        #expect(StateDirectory.fileName(for: String(repeating: ".", count: 128)) != StateDirectory.fileName(for: String(repeating: ".", count: 127)))
    }

    @Test func longIdSavesAndLoads() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = StateDirectory(path: directory.path)
        try state.prepare()
        let id = String(repeating: ".", count: 128)
        var record = AppState(appID: id)
        record.version = 3
        try state.saveState(record)
        #expect(state.loadState(appID: id, now: Date()).state?.version == 3)
    }
}
