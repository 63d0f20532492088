import ArgumentParser
import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Writes the polkit rule that lets the daemon's user manage exactly its consumer units.
/// Run as root by the shipped unit (`ExecStartPre=-+` and `ExecReload=-+`), so the rule always
/// matches the config the daemon loads next.
struct PolkitRuleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polkit-rule",
        abstract: "Print or install the polkit rule that lets the daemon reload its consumer units.",
        discussion: """
            The daemon tells each app's consumers (systemd units named in `consumers`) of a new \
            secret over D-Bus, as its own unprivileged user. systemd asks polkit whether that \
            user may manage the unit; this rule says yes for exactly the units the config names, \
            with exactly the verb their consumer_action needs (reload-or-try-restart, \
            try-restart or kill), and for nothing else: not another unit, not start or stop.

            Without --write the rule is printed. With --write the file is replaced atomically \
            (0644; polkitd reloads it by itself). The shipped unit runs \
            `secret-rotator polkit-rule --write` as root before every start and reload. When \
            polkitd is not installed (no /etc/polkit-1/rules.d) nothing is written and a \
            warning says so: install polkitd (the package recommends it). When the config is \
            invalid the rule is removed, so it never grants what an old config named.

            Exit status: 0 written or printed (or polkitd absent), 73 the rule cannot be \
            written (EX_CANTCREAT), 78 invalid config (the rule was removed).
            """)

    @OptionGroup var configOption: ConfigOption

    @Option(help: ArgumentHelp("The daemon's user, as the unit's User= names it.", valueName: "name"))
    var user = "secret-rotator"

    @Option(help: ArgumentHelp("Install the rule at this path instead of printing it.", valueName: "path"))
    var write: String?

    @Flag(help: "Install the rule at \(PolkitRule.defaultPath).")
    var install = false

    func validate() throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        if user.isEmpty || user.count > 32 || user.hasPrefix("-") || !user.allSatisfy(allowed.contains) {
            throw ValidationError("--user: \"\(user)\" is not a user name (1 to 32 letters, digits, '_', '-', '.')")
        }
        if install && write != nil { throw ValidationError("--install and --write cannot be combined; --install writes \(PolkitRule.defaultPath)") }
    }

    func run() throws {
        let target = install ? PolkitRule.defaultPath : write
        let loaded: LoadedConfig
        do {
            // Never read the access key secret: the rule does not need it, and under the unit
            // (ExecStartPre=+, ExecReload=+) $CREDENTIALS_DIRECTORY names a credential owned by
            // the daemon's user, which this root process refuses (or that does not exist yet at
            // ExecStartPre=): the config was judged invalid and the rule removed at every start.
            loaded = try ConfigLoader.withoutAccessKeySecret().load(path: configOption.path)
        } catch {
            for diagnostic in error.errors { StandardError.write(diagnostic.description) }
            if let target, FileManager.default.fileExists(atPath: target) {
                try? FileManager.default.removeItem(atPath: target)
                StandardError.write("removed \(target): with an invalid config it grants nothing")
            }
            throw ExitCode(78)
        }
        let text = PolkitRule.text(user: user, apps: loaded.config.apps, source: configOption.path)
        guard let target else {
            print(text, terminator: "")
            return
        }
        let directory = target.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var info = stat()
        guard stat(directory.isEmpty ? "." : directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            let units = loaded.config.apps.reduce(0) { $0 + $1.consumers.count }
            if units > 0 {
                StandardError.write(
                    "warning: \(directory) does not exist (polkitd is not installed): the daemon's user cannot reload its \(units) consumer unit(s); install polkitd")
            }
            return
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: target), options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target)
        } catch {
            StandardError.write("cannot write \(target): \(error.localizedDescription)")
            throw ExitCode(73)
        }
        let units = Set(loaded.config.apps.flatMap(\.consumers)).count
        print("wrote \(target): user \(user) may manage \(units) consumer unit\(units == 1 ? "" : "s")")
    }
}
