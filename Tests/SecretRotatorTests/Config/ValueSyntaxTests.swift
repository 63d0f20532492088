import Testing

@testable import SecretRotator

@Suite struct DurationSyntaxTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)),
        ("90s", .seconds(90)),
        ("15m", .seconds(900)),
        ("24h", .seconds(86_400)),
        ("30d", .seconds(30 * 86_400)),
        ("1h30m", .seconds(5_400)),
        ("1d2h3m4s5ms", .milliseconds(93_784_005)),
        ("0s", .zero),
        ("007m", .seconds(420)),
    ])
    func parsesValidDurations(text: String, expected: Duration) throws {
        #expect(try DurationSyntax.parse(text) == expected)
    }

    @Test(arguments: [
        ("7", "has no unit"),
        ("-1h", "is negative"),
        ("+1h", "has a sign"),
        ("1y", "unknown unit \"y\""),
        ("1w", "unknown unit \"w\""),
        ("", "empty duration"),
        (" 90s", "contains whitespace"),
        ("90s ", "contains whitespace"),
        ("1h 30m", "contains whitespace"),
        ("1.5h", "has a fraction"),
        ("h", "is not a number"),
        ("30m1h", "misorders units"),
        ("1h1h", "repeats or misorders"),
        ("99999999999999999999d", "too large"),
        ("9223372036854775807d", "too large"),
        ("106751991167d", "too large"),
        ("36501d", "at most 36500d"),
        ("1hh", "unknown unit \"hh\""),
        ("1H", "unknown unit \"H\""),
        ("ten minutes", "contains whitespace"),
    ])
    func rejectsGarbage(text: String, fragment: String) {
        #expect {
            try DurationSyntax.parse(text)
        } throws: { error in
            guard let error = error as? ValueSyntaxError else { return false }
            return error.message.contains(fragment)
        }
    }

    @Test(arguments: ["500ms", "1m30s", "15m", "1h30m", "30d", "1d2h3m4s5ms", "0s"])
    func formatRoundTrips(text: String) throws {
        #expect(DurationSyntax.format(try DurationSyntax.parse(text)) == text)
    }

    @Test func formatPicksLargestUnits() {
        #expect(DurationSyntax.format(.seconds(90)) == "1m30s")
        #expect(DurationSyntax.format(.seconds(86_400 * 7)) == "7d")
    }
}

@Suite struct FileModeTests {
    @Test(arguments: [("0600", UInt16(0o600)), ("0640", 0o640), ("640", 0o640), ("0000", 0), ("0777", 0o777), ("0750", 0o750)])
    func parsesOctal(text: String, expected: UInt16) throws {
        #expect(try FileMode.parse(text).rawValue == expected)
    }

    @Test(arguments: [
        ("0999", "not octal"),
        ("0648", "not octal"),
        ("rw-r-----", "is not an octal string"),
        ("06400", "is not an octal string"),
        ("64", "is not an octal string"),
        ("", "is not an octal string"),
        ("4755", "setuid"),
        ("1640", "sticky"),
        (" 640", "not octal"),
        ("0x1a0", "is not an octal string"),
        ("-640", "not octal"),
    ])
    func rejectsGarbage(text: String, fragment: String) {
        #expect {
            try FileMode.parse(text)
        } throws: { error in
            (error as? ValueSyntaxError)?.message.contains(fragment) ?? false
        }
    }

    @Test func describesAsFourDigitOctal() throws {
        #expect(try FileMode.parse("640").description == "0640")
        #expect(FileMode(rawValue: 0o7).description == "0007")
        #expect(FileMode(rawValue: 0o604).hasWorldBits)
        #expect(!FileMode(rawValue: 0o640).hasWorldBits)
        #expect(FileMode(rawValue: 0o600).isOwnerOnly)
        #expect(!FileMode(rawValue: 0o640).isOwnerOnly)
    }
}

@Suite struct KeySuggesterTests {
    @Test func suggestsNearKeys() {
        #expect(KeySuggester.suggestion(for: "intervall", among: ConfigSchema.defaults) == "interval")
        #expect(KeySuggester.suggestion(for: "jiter", among: ConfigSchema.defaults) == "jitter")
        #expect(KeySuggester.suggestion(for: "acess_key_id", among: ConfigSchema.genauth) == "access_key_id")
        #expect(KeySuggester.suggestion(for: "fromat", among: ConfigSchema.output) == "format")
        #expect(KeySuggester.suggestion(for: "zzzzzz", among: ConfigSchema.output) == nil)
    }
}

@Suite struct SourceLocatorTests {
    @Test func findsKeysInHeadersInlineTablesAndAfterMultilineValues() {
        let text = """
            # comment with key = "value"
            [genauth]
            host = "https://x" # trailing = comment
            "access_key_id" = "a"

            [defaults]
            retry = { initial = "2s", max = "1m" }
            directory = '''
            [[app]]
            not = "a key"
            '''
            mode = "0640"

            [[app]]
            id = "a"
            on_rotate = [
              "x",
              "[y]",
            ]
            name = "n"
              [[app.output]]
              path = "/a"
              [[app.output]]
              path = "/b"

            [[app]]
            id = "b"
            """
        let locator = SourceLocator(text: text)
        #expect(locator.position(of: "genauth")?.line == 2)
        #expect(locator.position(of: "genauth.host") == .init(line: 3, column: 1))
        #expect(locator.position(of: "genauth.access_key_id")?.line == 4)
        #expect(locator.position(of: "defaults.retry.initial") == .init(line: 7, column: 11))
        #expect(locator.position(of: "defaults.retry.max") == .init(line: 7, column: 27))
        #expect(locator.position(of: "defaults.mode")?.line == 12)
        #expect(locator.position(of: "app[0].id")?.line == 15)
        #expect(locator.position(of: "app[0].name")?.line == 20)
        #expect(locator.position(of: "app[0].output[1].path") == .init(line: 24, column: 3))
        #expect(locator.position(of: "app[1].id")?.line == 27)
        // A key that is not written falls back to its table header.
        #expect(locator.position(of: "app[1].interval")?.line == 26)
        #expect(locator.position(of: "app[0].output[0].mode")?.line == 21)
        #expect(locator.position(of: "nowhere") == nil)
    }
}
