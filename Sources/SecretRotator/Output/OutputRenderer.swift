#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns a document into the bytes of one output. Pure: no file system access.
public enum OutputRenderer {
    public static func render(_ document: SecretDocument, for spec: OutputSpec) throws(OutputError) -> [UInt8] {
        switch spec.format {
        case .raw:
            let text = document.secret.exposed + (spec.trailingNewline ? "\n" : "")
            return Array(text.utf8)
        case .env:
            guard let key = spec.envKey else {
                throw OutputError(.invalidSpec, path: spec.path, reason: "format env needs env_key")
            }
            return Array(try envLine(key: key, value: document.secret.exposed, path: spec.path).utf8)
        case .json:
            return try json(document, path: spec.path)
        case .template:
            guard let text = spec.template else {
                throw OutputError(.invalidSpec, path: spec.path, reason: "format template needs a template")
            }
            return Array(try TemplateRenderer.render(text, document: document, path: spec.path).utf8)
        }
    }

    /// `KEY="value"\n`, read identically by bash (`set -a; . FILE`) and systemd's
    /// `EnvironmentFile=`: inside double quotes both treat exactly `\ " $ `` ` as escapable
    /// (systemd's SHELL_NEED_ESCAPE), so escaping those four makes every other character literal.
    ///
    /// Control characters are refused rather than written: a newline is legal inside the
    /// quotes for bash and systemd, but line-based readers (docker --env-file, many dotenv
    /// libraries) would take the next line as a second assignment. NUL cannot live in an
    /// environment at all.
    static func envLine(key: String, value: String, path: String) throws(OutputError) -> String {
        guard isValidEnvKey(key) else {
            throw OutputError(.invalidSpec, path: path, reason: "env_key \"\(key)\" is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
        }
        var quoted = "\""
        for scalar in value.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                // The position, not the character: the value is the secret.
                throw OutputError(
                    .unrepresentable, path: path,
                    reason: "the secret contains a control character (U+\(String(scalar.value, radix: 16, uppercase: true))), which an env file cannot carry safely"
                )
            }
            switch scalar {
            case "\\", "\"", "$", "`":
                quoted.unicodeScalars.append("\\")
                quoted.unicodeScalars.append(scalar)
            default:
                quoted.unicodeScalars.append(scalar)
            }
        }
        quoted += "\""
        return "\(key)=\(quoted)\n"
    }

    public static func isValidEnvKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return key.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
    }

    private struct JSONDocument: Encodable {
        var appId: String
        var appName: String
        var secret: String
        var rotatedAt: String
        var version: Int
    }

    /// JSONEncoder does the escaping (quotes, backslashes, control characters); keys are sorted
    /// so identical documents give identical bytes.
    static func json(_ document: SecretDocument, path: String) throws(OutputError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let payload = JSONDocument(
            appId: document.appId, appName: document.appName, secret: document.secret.exposed,
            rotatedAt: document.rotatedAtISO8601, version: document.version
        )
        do {
            return Array(try encoder.encode(payload)) + [UInt8(ascii: "\n")]
        } catch {
            throw OutputError(.unrepresentable, path: path, reason: "cannot encode the JSON document")
        }
    }
}
