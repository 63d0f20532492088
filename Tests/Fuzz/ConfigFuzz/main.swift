// libFuzzer target for the config loader: TOML text in, `LoadedConfig` or `ConfigError` out.
// Built only with SECRET_ROTATOR_FUZZ=1 (see Package.swift); run by Tests/Fuzz/run.sh.
//
// Besides "never crash", it checks what the loader promises today:
// - an inline access_key_secret never shows up in a diagnostic, a warning or the plan that
//   `check-config` prints (when the value is distinctive enough to tell, see `distinctive`);
// - the secret read from a file never shows up either;
// - every diagnostic names the file it came from and, with a line, one inside the text;
// - failure carries at least one error; success carries only warnings.
// Not checked (not promised): that TOML syntax errors never quote the input (toml++ writes
// them), and which of two duplicate keys wins (TOML forbids them; toml++ reports an error).
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
@testable import SecretRotator

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TOMLKit

private let configPath = "/etc/secret-rotator/rotator.toml"
/// Text after a line `#%apps.d` is an apps.d file: its own parser path and
/// diagnostics, and the rules that span files.
private let appsPath = "/etc/secret-rotator/apps.d/10-fuzz.toml"
private let appsSeparator = "\n#%apps.d\n"
/// The access key secret the in-memory host returns for any readable secret file or credential.
private let fileSecret = "FileSecret-Canary-7Qz"

/// The files and accounts the config may name, in memory: the loader must do no I/O here.
private let files: [String: String] = [
    "/etc/secret-rotator/access-key-secret": fileSecret + "\n",
    "/etc/ssl/private-ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "/etc/secret-rotator/billing.conf.tmpl": "secret={{secret}}\napp={{app_id}}\n",
    "/etc/secret-rotator/bad.tmpl": "secret={{#secret}}\n",
]

private let host = ConfigHost(
    readText: { path throws(ValueSyntaxError) in
        guard let text = files[path] else { throw ValueSyntaxError("cannot open \(path): ENOENT (No such file or directory)") }
        return text
    },
    readTrustedText: { path, what, _ throws(ValueSyntaxError) in
        guard let text = files[path] else { throw ValueSyntaxError("cannot open \(what) \(path): ENOENT (No such file or directory)") }
        return text
    },
    accountID: { name, _ in ["root": 0, "secret-rotator": 990, "billing": 1001][name] },
    resolveProgram: { program throws(ValueSyntaxError) in program.hasPrefix("/") ? program : "/usr/bin/" + program })

private func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fatalError("ConfigFuzz property violated: \(message())")
    }
}

/// Every key and value in the tree except the inline secret itself (`genauth.access_key_secret`
/// at the top level): a message may legitimately quote any of these.
private func otherStrings(_ table: TOMLTable, isGenAuth: Bool, into out: inout [String]) {
    for key in table.keys {
        out.append(key)
        guard let value = table[key], !(isGenAuth && key == "access_key_secret") else { continue }
        collect(value, into: &out)
    }
}

private func collect(_ value: any TOMLValueConvertible, into out: inout [String]) {
    if let text = value.string {
        out.append(text)
    } else if let table = value.table {
        otherStrings(table, isGenAuth: false, into: &out)
    } else if let array = value.array {
        for element in array { collect(element, into: &out) }
    } else {
        out.append("\(value)")
    }
}

/// A value we can search for in messages without false alarms: long, mixed case and digits
/// (no fixed message or formatted number has that), and quoted by nothing else in the input.
private func distinctive(_ secret: String, others: [String]) -> Bool {
    secret.utf8.count >= 12 && secret.contains(where: \.isUppercase) && secret.contains(where: \.isLowercase)
        && secret.contains(where: \.isNumber) && !others.contains { $0.contains(secret) }
        && !files.values.contains { $0.contains(secret) } && !configPath.contains(secret)
}

/// One input (-1 keeps it out of the corpus). Also exported as LLVMFuzzerTestOneInput:
/// libFuzzer's main(), linked in but never called, refers to it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // The loader takes a String: load(path:) refuses invalid UTF-8 before parsing, so only
    // valid UTF-8 reaches the parser in production as well.
    guard let whole = String(validating: bytes, as: UTF8.self) else { return -1 }
    var text = whole
    var appsFiles: [ConfigLoader.AppsFile] = []
    if let split = whole.range(of: appsSeparator) {
        text = String(whole[..<split.lowerBound])
        appsFiles = [ConfigLoader.AppsFile(path: appsPath, text: String(whole[split.upperBound...]))]
    }

    var loader = ConfigLoader(environment: [:], accessKeySecretNeeded: size % 2 == 0)
    loader.host = host
    func lineCount(_ text: String) -> Int { text.utf8.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) } }
    let lineCounts = [configPath: lineCount(text), appsPath: appsFiles.first.map { lineCount($0.text) } ?? 0]

    // Reported text: diagnostics, warnings and, on success, the plan in both renderings.
    var reported: [String] = []
    do {
        let loaded = try loader.load(text: text, path: configPath, fileMode: FileMode(rawValue: 0o644), appsFiles: appsFiles)
        for warning in loaded.warnings {
            require(warning.severity == .warning, "a loaded config carries an error: \(warning)")
        }
        reported += loaded.warnings.map(\.description)
        let plan = ConfigPlan(loaded)
        reported.append(plan.renderTable())
        if let json = try? JSONEncoder().encode(plan) {
            reported.append(String(decoding: json, as: UTF8.self))
        }
    } catch {
        require(!error.errors.isEmpty, "ConfigError without an error diagnostic: \(error)")
        for diagnostic in error.diagnostics {
            let lines = lineCounts[diagnostic.file] ?? 0
            require(lines > 0, "diagnostic names \(diagnostic.file)")
            if let line = diagnostic.line {
                require(line >= 1 && line <= lines, "line \(line) outside the text's \(lines) lines: \(diagnostic)")
            }
            if let column = diagnostic.column {
                require(column >= 1, "column \(column): \(diagnostic)")
            }
        }
        reported += error.diagnostics.map(\.description)
        reported.append(error.description)
    }

    for message in reported {
        require(!message.contains(fileSecret), "the secret read from a file leaked: \(message)")
    }
    // The inline secret, as the loader sees it. Only text that passed the loader's input
    // checks is parsed here: toml++ aborts on some text those checks refuse.
    guard ConfigInputLimits.check(text) == nil, let root = try? TOMLTable(string: text),
        let genauth = root["genauth"]?.table,
        let secret = genauth["access_key_secret"]?.string
    else { return 0 }
    var others: [String] = []
    for key in root.keys {
        others.append(key)
        if key == "genauth" {
            otherStrings(genauth, isGenAuth: true, into: &others)
        } else if let value = root[key] {
            collect(value, into: &others)
        }
    }
    guard distinctive(secret, others: others) else { return 0 }
    for message in reported {
        require(!message.contains(secret), "the inline access_key_secret leaked: \(message)")
    }
    return 0
}

// libFuzzer's main(), with its flags (-max_total_time, -runs, corpus directories, ...).
var arguments = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argv) { data, size in fuzz(data, size) })
