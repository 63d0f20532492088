import Foundation
import SecretRotatorTestKit
import Testing

/// A metrics textfile as a real Prometheus text-format parser reads it: the Python
/// `prometheus_client` package's `text_string_to_metric_families` (Debian's
/// python3-prometheus-client, installed by .ci/run), run by Debian's own /usr/bin/python3.
/// A file it cannot parse is a test failure, not a skip.
struct ParsedMetrics: Sendable {
    struct Sample: Decodable, Sendable {
        /// The family as the parser names it (a counter's without `_total`).
        let family: String
        /// `counter`, `gauge`, `histogram`, ... from the `# TYPE` line.
        let type: String
        /// The sample's own name (`..._total`, `..._bucket`, `..._count`).
        let name: String
        let labels: [String: String]
        let value: Double
    }

    let samples: [Sample]

    /// The value of the one sample named `name` whose labels are exactly `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The type of the family a sample named `name` belongs to.
    func type(of name: String) -> String? {
        samples.first { $0.name == name }?.type
    }

    static let python = "/usr/bin/python3"
    static let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        with open(sys.argv[1], encoding="utf-8") as f:
            text = f.read()
        out = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
        print(json.dumps(out))
        """

    /// Parses the file at `path`; throws with the parser's own message when it refuses it.
    static func parse(file path: String) throws -> ParsedMetrics {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script, path]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ParseError(
                message: message.contains("No module named 'prometheus_client'")
                    ? "the parser is missing: apt-get install python3-prometheus-client (.ci/run does)" : message)
        }
        return ParsedMetrics(samples: try JSONDecoder().decode([Sample].self, from: data))
    }

    struct ParseError: Error, CustomStringConvertible {
        let message: String
        var description: String { "prometheus_client could not parse the textfile: \(message)" }
    }

    /// The first parse of `path` for which `condition` holds (the writer runs on its own), with
    /// the file's last text in the timeout's message. A file the parser refuses throws at once.
    static func firstParse(
        of path: String, deadline: Duration = .seconds(30), fileID: String = #fileID, line: Int = #line,
        where condition: (ParsedMetrics) -> Bool
    ) async throws -> ParsedMetrics {
        var met: ParsedMetrics?
        try await waitUntil(
            deadline: deadline,
            "the textfile never met the condition; last text:\n\((try? String(contentsOfFile: path, encoding: .utf8)) ?? "(no file)")",
            fileID: fileID, line: line
        ) {
            guard FileManager.default.fileExists(atPath: path) else { return false }
            let parsed = try parse(file: path)
            if condition(parsed) { met = parsed }
            return met != nil
        }
        guard let met else { throw ParseError(message: "no parse met the condition") }
        return met
    }
}
