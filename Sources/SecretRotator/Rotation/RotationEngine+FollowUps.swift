#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What follows a new version on every output: the `on_rotate` hook and the consumer units.
/// Both wait outside `max_concurrent` (`withoutSlot`), each turned into the event its outcome is.
extension RotationEngine {
    /// Runs `body` while the app holds its one-step turn but not a `max_concurrent` slot: a
    /// slow hook or a unit that takes its whole start timeout must not hold back other apps'
    /// API work.
    private func withoutSlot<T>(_ appID: String, _ body: () async -> T) async -> T {
        inHook.insert(appID)
        slotFreed()
        let result = await body()
        inHook.remove(appID)
        return result
    }

    func runHook(_ app: AppConfig, version: Int) async -> StepEvent? {
        guard var argv = app.onRotate, let program = argv.first else { return nil }
        // Checked again now, as templates are: the program may have changed hands since the
        // config was loaded. The resolved path is what runs, so PATH cannot differ from the check.
        do {
            argv[0] = try ConfigFileReader.trustedProgram(program, searchPath: ProcessEnvironment.current["PATH"])
        } catch {
            appLogger(app).error(
                "hook not run: \(error.message)", metadata: ["event": "hook_untrusted", "version": "\(version)"])
            metrics.hookFinished(app, succeeded: false)
            return StepEvent(.hookFinished(version: version, succeeded: false, detail: "not run: \(error.message)"))
        }
        let invocation = HookInvocation(
            argv: argv,
            environment: HookInvocation.environment(
                appID: app.id, appName: app.name, version: version, outputs: app.outputs.map(\.path)),
            timeout: app.hookTimeout)
        let hooks = hooks
        let outcome = await withoutSlot(app.id) { await hooks.run(invocation) }
        metrics.hookFinished(app, succeeded: outcome.succeeded)
        // A hook may print what it read (a config check echoing the file): never log the secret,
        // nor the piece of it a cut leaves (the runner keeps the output's last 64 KiB, the log
        // its last 2,000 characters: a secret across either edge showed its second half).
        let output = redacted(outcome.output, app: app, keepingLast: 2_000)
        // A failure's MESSAGE says why: the exit status and the first line the hook printed
        // (e.g. systemctl's "Interactive authentication required."), not only HOOK_OUTPUT.
        let detail = outcome.succeeded ? output : HookOutcome.failureDetail(status: outcome.status, output: output)
        if !outcome.succeeded && !output.isEmpty {
            appLogger(app).warning("hook output", metadata: ["hook_output": "\(output)", "version": "\(version)"])
        }
        return StepEvent(.hookFinished(version: version, succeeded: outcome.succeeded, detail: detail))
    }

    /// Tells the app's consumer units of `version` over D-Bus, all at once, and turns what
    /// systemd showed for each into one event. `onlyUnsettled`: a retry tells only the units
    /// that have not settled on `version`; after a write or a repair every unit is told.
    func notifyConsumers(_ app: AppConfig, version: Int, onlyUnsettled: Bool) async -> StepEvent {
        let records = states[app.id]?.consumers ?? []
        let targets = app.consumers.filter { unit in
            !onlyUnsettled || !(records.first { $0.unit == unit }?.isSettled(at: version) ?? false)
        }
        let notifiedAt = now()
        let units = units
        let action = app.consumerAction
        let timeout = app.hookTimeout
        let outcomes = await withoutSlot(app.id) {
            await withTaskGroup(of: (Int, ConsumerOutcome).self) { group in
                for (index, unit) in targets.enumerated() {
                    group.addTask {
                        let report = await units.notify(unit: unit, action: action, timeout: timeout)
                        return (index, ConsumerPickup.judge(report, action: action, unit: unit, notifiedAt: notifiedAt))
                    }
                }
                var collected: [(Int, ConsumerOutcome)] = []
                for await outcome in group { collected.append(outcome) }
                return collected.sorted { $0.0 < $1.0 }.map(\.1)
            }
        }
        metrics.consumersNotified(app, outcomes, at: now())
        return StepEvent(.consumersNotified(version: version, outcomes: outcomes))
    }

    func redacted(_ text: String, app: AppConfig, keepingLast limit: Int) -> String {
        guard !text.isEmpty, let secret = heldSecret(app)?.secretValue.exposed, !secret.isEmpty else {
            return String(text.suffix(limit))
        }
        // Every piece of 8 characters or more, in any case: a hook may split or uppercase it.
        let whole = SecretRedaction.redacting(secret, in: Self.droppingSecretTail(text, of: secret))
        return Self.droppingSecretTail(String(whole.suffix(limit)), of: secret)
    }

    /// `text` without a leading piece (4 characters or more) that is the end of `secret`: what
    /// is left of a secret when a cut fell inside it.
    static func droppingSecretTail(_ text: String, of secret: String) -> String {
        let characters = Array(secret)
        guard characters.count > 4 else { return text }
        for length in stride(from: characters.count - 1, through: 4, by: -1) {
            let piece = String(characters[(characters.count - length)...])
            if text.hasPrefix(piece) { return "<redacted>" + text.dropFirst(piece.count) }
        }
        return text
    }
}
