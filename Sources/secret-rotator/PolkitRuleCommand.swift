import ArgumentParser
import SecretRotator
import SystemPackage

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

            Without --install or --write the rule is printed. With either the file is replaced \
            atomically (0644; polkitd reloads it by itself). The shipped unit runs \
            `secret-rotator polkit-rule --install` as root before every start and every \
            `systemctl reload` (a bare SIGHUP to the daemon does not run it). When \
            polkitd is not installed (no /etc/polkit-1/rules.d) --install writes nothing and a \
            warning says so: install polkitd (the package recommends it). When the config is \
            invalid the rule is left as it is (the daemon keeps running the config it was made \
            from, or refuses to start) and the exit status is 78.

            It trusts the config files the daemon trusts: owned by root or by --user. Keep the \
            config and apps.d/ owned by root (0644, or 0640 root:secret-rotator): whoever can \
            write them chooses the units this rule lets the daemon's user restart or kill.

            Exit status: 0 written or printed (or, with --install, polkitd absent), 73 the rule \
            cannot be written (EX_CANTCREAT), 78 invalid config or unknown --user (the rule is \
            left unchanged).
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
        guard let account = getpwnam(user) else {
            StandardError.write("secret-rotator: --user: no user \"\(user)\" on this host (the unit's User= creates it: sysusers)")
            throw ExitCode(78)
        }
        // Trust the files the daemon trusts: root's and its user's (a config owned by the
        // daemon's user is the daemon's to read, and root running this must not refuse it).
        ConfigLoader.judgeFiles(asDaemonUser: account.pointee.pw_uid)
        let loaded: LoadedConfig
        do {
            // Never read the access key secret: the rule does not need it, and under the unit
            // (ExecStartPre=+, ExecReload=+) $CREDENTIALS_DIRECTORY names a credential owned by
            // the daemon's user, which this root process refuses (or that does not exist yet at
            // ExecStartPre=): the config was judged invalid and the rule removed at every start.
            loaded = try ConfigLoader.withoutAccessKeySecret().load(path: configOption.path)
        } catch {
            for diagnostic in error.errors { StandardError.write(diagnostic.description) }
            // The rule stays as it is: on a reload with a broken config the daemon keeps the
            // config in force, which the rule was made from (removing it left every consumer
            // refused), and on a start the daemon refuses the config and runs nothing.
            if target != nil { StandardError.write("secret-rotator: the polkit rule was left unchanged") }
            throw ExitCode(78)
        }
        let text = PolkitRule.text(user: user, apps: loaded.config.apps, source: configOption.path)
        guard let target else {
            print(text, terminator: "")
            return
        }
        let units = Set(loaded.config.apps.flatMap(\.consumers)).count
        let directory = target.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var info = stat()
        guard stat(directory.isEmpty ? "." : directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            guard install else {
                StandardError.write("secret-rotator: cannot write \(target): \(directory) is not a directory")
                throw ExitCode(73)
            }
            if units > 0 {
                StandardError.write(
                    "warning: \(directory) does not exist (polkitd is not installed): the daemon's user cannot reload its \(units) consumer unit\(units == 1 ? "" : "s"); install polkitd")
            }
            return
        }
        // Written as the outputs are (AtomicFileWriter): a temp file given its mode by its own
        // descriptor, fsynced, renamed over the target, never following a link on the way; the
        // rules directory belongs to polkitd, trusted beside root.
        let polkitd = getpwnam("polkitd").map { UserID(rawValue: $0.pointee.pw_uid) }
        let options = AtomicWriteOptions(mode: FilePermissions(rawValue: 0o644), trustedOwner: polkitd)
        do throws(OutputError) {
            try AtomicFileWriter().write(Array(text.utf8), to: target, options: options)
        } catch {
            StandardError.write("secret-rotator: cannot write \(target): \(error)")
            throw ExitCode(73)
        }
        print("wrote \(target): user \(user) may manage \(units) consumer unit\(units == 1 ? "" : "s")")
    }
}
