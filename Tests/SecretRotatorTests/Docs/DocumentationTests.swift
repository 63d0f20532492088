import Foundation
import Testing

@testable import SecretRotator

/// The operator's documentation stays true of the code: every config key has its entry in
/// rotator.toml(5), every command and option in secret-rotator(8), every journal MESSAGE_ID in
/// the Troubleshooting guide; every internal link resolves, and no comment cites a numbered
/// section of a document the repository does not hold. Each check is a pure function of the
/// texts, so the tests below also show it failing on an entry added without documentation.
@Suite struct DocumentationTests {
    static let root = RepositoryFiles.root
    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }
    static let docc = "Sources/SecretRotator/SecretRotator.docc"

    // MARK: rotator.toml(5)

    /// Every table of the schema, with the heading its keys are listed under in the man page.
    static var schemaTables: [(heading: String, keys: [String])] {
        [
            ("[genauth]", ConfigSchema.genauth), ("[defaults]", ConfigSchema.defaults),
            ("[defaults.retry]", ConfigSchema.retry), ("[[app]]", ConfigSchema.app),
            ("[[app.output]]", ConfigSchema.output), ("[metrics]", ConfigSchema.metrics),
            ("[cluster]", ConfigSchema.cluster),
        ]
    }

    @Test func everyConfigKeyHasItsEntryInRotatorToml5() throws {
        let page = try Self.text("packaging/man/rotator.toml.5")
        let problems = DocumentationCheck.configKeyProblems(tables: Self.schemaTables, page: page)
        #expect(problems.isEmpty, "packaging/man/rotator.toml.5: \(problems.joined(separator: "; "))")
    }

    @Test func everyTopLevelTableHasItsSection() throws {
        let page = try Self.text("packaging/man/rotator.toml.5")
        let headings = Set(DocumentationCheck.manSections(page).map(\.heading))
        for table in ConfigSchema.topLevel {
            let heading = table == "app" ? "[[app]]" : "[\(table)]"
            #expect(headings.contains(heading), "rotator.toml(5) has no .Ss \"\(heading)\"")
        }
    }

    @Test func aKeyAddedWithoutItsEntryFails() throws {
        let page = try Self.text("packaging/man/rotator.toml.5")
        var tables = Self.schemaTables
        tables[1].keys.append("rotation_budget")
        let problems = DocumentationCheck.configKeyProblems(tables: tables, page: page)
        #expect(problems == ["[defaults] rotation_budget has no entry"])
        // And an entry whose key the schema no longer has.
        var shorter = Self.schemaTables
        shorter[6].keys.removeAll { $0 == "lease_ttl" }
        #expect(DocumentationCheck.configKeyProblems(tables: shorter, page: page) == ["[cluster] lease_ttl is documented but not in the schema"])
    }

    // MARK: secret-rotator(8)

    @Test func everyCommandAndOptionHasItsEntryInSecretRotator8() throws {
        let dump = try CLI.run(["--experimental-dump-help"])
        #expect(dump.status == 0, "\(dump.stderr)")
        let commands = try DocumentationCheck.commands(fromDumpHelp: Data(dump.stdout.utf8))
        #expect(commands.count >= 8, "the dump lists \(commands.map(\.name))")
        let page = try Self.text("packaging/man/secret-rotator.8")
        let problems = DocumentationCheck.commandProblems(commands: commands, page: page)
        #expect(problems.isEmpty, "packaging/man/secret-rotator.8: \(problems.joined(separator: "; "))")
    }

    @Test func anOptionOrCommandAddedWithoutItsEntryFails() throws {
        let page = try Self.text("packaging/man/secret-rotator.8")
        let commands = [
            DocumentationCheck.Command(name: "status", options: ["--grace", "--json", "--since"], arguments: ["app"]),
            DocumentationCheck.Command(name: "prune", options: [], arguments: []),
        ]
        #expect(DocumentationCheck.commandProblems(commands: commands, page: page) == [
            "status: option --since has no entry", "command prune has no .Ss section",
        ])
    }

    // MARK: the journal catalog and the Troubleshooting guide

    @Test func everyMessageIDHasItsCauseAndFixInTroubleshooting() throws {
        let catalog = try Self.text("packaging/secret-rotator.catalog")
        let ids = DocumentationCheck.catalogMessageIDs(catalog)
        #expect(ids.count >= 10)
        let guide = try Self.text("\(Self.docc)/Troubleshooting.md")
        let missing = DocumentationCheck.messageIDProblems(ids: ids, guide: guide)
        #expect(missing.isEmpty, "Troubleshooting.md: \(missing.joined(separator: "; "))")
        #expect(!DocumentationCheck.messageIDProblems(ids: ids + ["0123456789abcdef0123456789abcdef"], guide: guide).isEmpty)
    }

    /// Every MESSAGE_ID the code logs is in the catalog, so the two checks above cover the code.
    @Test func everyMessageIDTheCodeLogsIsInTheCatalog() throws {
        let code = try Self.text("Sources/SecretRotator/Systemd/JournalEvent.swift")
        let logged = Set(DocumentationCheck.hexIDs(code))
        let catalog = Set(DocumentationCheck.catalogMessageIDs(try Self.text("packaging/secret-rotator.catalog")))
        #expect(!logged.isEmpty)
        #expect(logged.subtracting(catalog).isEmpty, "not in the catalog: \(logged.subtracting(catalog).sorted())")
    }

    // MARK: links and references

    static var markdownFiles: [String] {
        get throws {
            let articles = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(docc).path)
                .filter { $0.hasSuffix(".md") }.sorted().map { "\(docc)/\($0)" }
            return ["README.md", "Tests/README.md"] + articles
        }
    }

    @Test func everyInternalLinkResolves() throws {
        var problems: [String] = []
        for file in try Self.markdownFiles {
            problems += DocumentationCheck.linkProblems(in: file, text: try Self.text(file), root: Self.root, doccDirectory: Self.docc)
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    @Test func aBrokenLinkIsFound() {
        let text = "See [the guide](Sources/SecretRotator/SecretRotator.docc/Operations.md#no-such-heading), <doc:Nowhere> and [x](missing.md)."
        let problems = DocumentationCheck.linkProblems(in: "README.md", text: text, root: Self.root, doccDirectory: Self.docc)
        #expect(problems.count == 3, "\(problems)")
    }

    @Test func noCitationOfASectionOutsideTheRepository() throws {
        let enumerator = FileManager.default.enumerator(atPath: Self.root.path)
        var problems: [String] = []
        let kept = ["swift", "md", "sh", "py", "c", "toml", "service", "catalog"]
        while let path = enumerator?.nextObject() as? String {
            if path.hasPrefix(".build") || path.hasPrefix(".git") || path.hasPrefix("out/") || path.contains("/corpus/") {
                enumerator?.skipDescendants()
                continue
            }
            guard kept.contains((path as NSString).pathExtension) || path == ".ci/run" else { continue }
            // This file's own examples of what the check finds.
            if path.hasSuffix("Docs/DocumentationTests.swift") { continue }
            guard let text = try? Self.text(path) else { continue }
            problems += DocumentationCheck.danglingCitations(in: path, text: text)
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    @Test func aDanglingCitationIsFound() {
        let text = "// Fencing (Architecture §8).\n// see reference/genauth-api.md\n// RFC 9110 §10.2.3 is fine\n"
        #expect(DocumentationCheck.danglingCitations(in: "x.swift", text: text) == [
            "x.swift:1: Fencing (Architecture §8).", "x.swift:2: see reference/genauth-api.md",
        ])
    }
}

/// The checks, as pure functions of the texts.
enum DocumentationCheck {
    struct Section {
        let heading: String
        let body: String
    }

    /// The `.Ss` (and `.Sh`) sections of an mdoc page, heading without quotes.
    static func manSections(_ page: String) -> [Section] {
        var sections: [Section] = []
        var heading = ""
        var body: [Substring] = []
        for line in page.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(".Ss ") || line.hasPrefix(".Sh ") {
                sections.append(Section(heading: heading, body: body.joined(separator: "\n")))
                heading = line.dropFirst(4).trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
                body = []
            } else {
                body.append(line)
            }
        }
        sections.append(Section(heading: heading, body: body.joined(separator: "\n")))
        return sections
    }

    /// The keys of `.It Cm KEY [, KEY...] [Pq type]` items.
    static func documentedKeys(_ body: String) -> [String] {
        body.split(separator: "\n").filter { $0.hasPrefix(".It Cm ") }.flatMap { line -> [String] in
            var keys: [String] = []
            for word in line.dropFirst(".It Cm ".count).split(separator: " ") {
                if word == "Pq" || word == "Ar" { break }
                if word != "," { keys.append(String(word)) }
            }
            return keys
        }
    }

    /// For each item, the problems `check` finds in its section of the page, or `missing` when
    /// the page has no section of that heading.
    static func problemsPerSection<Item>(
        _ items: [Item], page: String, heading: (Item) -> String, missing: (Item) -> String,
        check: (Item, Section) -> [String]
    ) -> [String] {
        let sections = manSections(page)
        return items.flatMap { item -> [String] in
            guard let section = sections.first(where: { $0.heading == heading(item) }) else { return [missing(item)] }
            return check(item, section)
        }
    }

    static func configKeyProblems(tables: [(heading: String, keys: [String])], page: String) -> [String] {
        problemsPerSection(tables, page: page, heading: { $0.heading }, missing: { "no section .Ss \"\($0.heading)\"" }) { table, section in
            let documented = documentedKeys(section.body)
            return table.keys.filter { !documented.contains($0) }.map { "\(table.heading) \($0) has no entry" }
                + documented.filter { !table.keys.contains($0) }.map { "\(table.heading) \($0) is documented but not in the schema" }
        }
    }

    struct Command: Equatable {
        let name: String
        let options: [String]
        let arguments: [String]
    }

    /// The subcommands of `--experimental-dump-help` (argument-parser's ToolInfoV0), each with
    /// its displayed options (`--long`, else `-s`) and positional value names.
    static func commands(fromDumpHelp data: Data) throws -> [Command] {
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let root = try #require(document["command"] as? [String: Any])
        let builtIn: Set<String> = ["--help", "--version", "--experimental-dump-help", "--generate-completion-script"]
        return (root["subcommands"] as? [[String: Any]] ?? []).compactMap { command -> Command? in
            guard let name = command["commandName"] as? String, name != "help" else { return nil }
            var options: [String] = []
            var arguments: [String] = []
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                guard argument["shouldDisplay"] as? Bool ?? true else { continue }
                if argument["kind"] as? String == "positional" {
                    if let value = argument["valueName"] as? String { arguments.append(value) }
                    continue
                }
                let names = argument["names"] as? [[String: Any]] ?? []
                let long = names.first { ($0["kind"] as? String) == "long" }.flatMap { $0["name"] as? String }.map { "--\($0)" }
                let short = names.first { ($0["kind"] as? String) == "short" }.flatMap { $0["name"] as? String }.map { "-\($0)" }
                if let option = long ?? short, !builtIn.contains(option) { options.append(option) }
            }
            return Command(name: name, options: options, arguments: arguments)
        }
    }

    /// Each command has a `.Ss NAME` section naming every option as `Fl -long` and every
    /// positional argument as `Ar value`.
    static func commandProblems(commands: [Command], page: String) -> [String] {
        problemsPerSection(commands, page: page, heading: { $0.name }, missing: { "command \($0.name) has no .Ss section" }) { command, section in
            let words = Set(section.body.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            let flags = section.body.components(separatedBy: "Fl ").dropFirst()
                .compactMap { $0.split(whereSeparator: { $0 == " " || $0 == "\n" }).first.map { "-\($0)" } }
            return command.options.filter { !flags.contains($0) }.map { "\(command.name): option \($0) has no entry" }
                + command.arguments.filter { !words.contains($0) }.map { "\(command.name): argument \($0) has no entry" }
        }
    }

    static func hexIDs(_ text: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: "\\b[0-9a-f]{32}\\b")
        let range = NSRange(text.startIndex..., in: text)
        return pattern.matches(in: text, range: range).compactMap { Range($0.range, in: text).map { String(text[$0]) } }
    }

    static func catalogMessageIDs(_ catalog: String) -> [String] {
        catalog.split(separator: "\n").filter { $0.hasPrefix("-- ") }.flatMap { hexIDs(String($0)) }
    }

    /// Each id heads a `### ID: ...` section of the guide.
    static func messageIDProblems(ids: [String], guide: String) -> [String] {
        let headings = guide.split(separator: "\n").filter { $0.hasPrefix("### ") }
        return ids.filter { id in !headings.contains { $0.contains(id) } }.map { "MESSAGE_ID \($0) has no ### section" }
    }

    /// GitHub's anchor of a heading (lower case, punctuation dropped, spaces to hyphens), and
    /// DocC's (punctuation runs to one hyphen), compared case-insensitively.
    static func anchors(ofHeadingsIn text: String) -> Set<String> {
        var anchors: Set<String> = []
        var fenced = false
        for line in text.split(separator: "\n") {
            if line.hasPrefix("```") { fenced.toggle() }
            guard !fenced, line.hasPrefix("#") else { continue }
            let title = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
            let github = String(title.compactMap { character -> Character? in
                if character == " " { return "-" }
                return character.isLetter || character.isNumber || character == "-" || character == "_" ? character : nil
            })
            let docc = title.split(whereSeparator: { !($0.isLetter || $0.isNumber) }).joined(separator: "-")
            anchors.insert(github)
            anchors.insert(docc)
        }
        return anchors
    }

    static func linkProblems(in file: String, text: String, root: URL, doccDirectory: String) -> [String] {
        var problems: [String] = []
        var prose = ""
        var fenced = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { fenced.toggle(); continue }
            if !fenced { prose += line + "\n" }
        }
        let directory = (file as NSString).deletingLastPathComponent
        func check(path: String, anchor: String?, shown: String) {
            let url = path.isEmpty ? root.appendingPathComponent(file) : root.appendingPathComponent(path).standardizedFileURL
            guard FileManager.default.fileExists(atPath: url.path) else {
                problems.append("\(file): \(shown): no such file")
                return
            }
            guard let anchor, url.pathExtension == "md" else { return }
            let target = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
            if !anchors(ofHeadingsIn: target).contains(anchor.lowercased()) {
                problems.append("\(file): \(shown): no heading for #\(anchor)")
            }
        }
        let markdown = try! NSRegularExpression(pattern: "\\]\\(([^)\\s]+)\\)")
        for match in markdown.matches(in: prose, range: NSRange(prose.startIndex..., in: prose)) {
            guard let range = Range(match.range(at: 1), in: prose) else { continue }
            let target = String(prose[range])
            if target.contains("://") || target.hasPrefix("mailto:") { continue }
            let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let path = parts[0].isEmpty ? "" : (directory as NSString).appendingPathComponent(String(parts[0]))
            check(path: path, anchor: parts.count > 1 ? String(parts[1]) : nil, shown: target)
        }
        let doc = try! NSRegularExpression(pattern: "<doc:([A-Za-z0-9_-]+)(?:#([^>]+))?>")
        for match in doc.matches(in: prose, range: NSRange(prose.startIndex..., in: prose)) {
            guard let name = Range(match.range(at: 1), in: prose).map({ String(prose[$0]) }) else { continue }
            let anchor = Range(match.range(at: 2), in: prose).map { String(prose[$0]) }
            check(path: "\(doccDirectory)/\(name).md", anchor: anchor, shown: "<doc:\(name)\(anchor.map { "#\($0)" } ?? "")>")
        }
        return problems
    }

    /// A numbered section (`§N`) is cited only of an RFC (on the same line), and no path into a
    /// `reference/` folder, which lives outside the repository.
    static func danglingCitations(in file: String, text: String) -> [String] {
        var problems: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let section = line.contains("§") && !line.contains("RFC")
            let reference = line.range(of: "reference/[A-Za-z0-9_.-]+\\.md", options: .regularExpression) != nil
            if section || reference {
                problems.append("\(file):\(index + 1): \(line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "// ", with: ""))")
            }
        }
        return problems
    }
}
