#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The engine's blocking file work, on the I/O threads (`fileIO`): writing outputs, inspecting
/// them, the pre-flight before a refresh and the trusted read of templates.
extension RotationEngine {
    /// An output to write: as configured (its template read and trust-checked on the I/O
    /// thread), or already resolved (a repair of drift an inspection found).
    enum OutputTarget: Sendable {
        case configured(OutputConfig)
        case resolved(OutputSpec)

        func resolve() -> Result<OutputSpec, OutputError> {
            switch self {
            case .configured(let output): RotationEngine.spec(output)
            case .resolved(let spec): .success(spec)
            }
        }

        /// The spec a failure is reported against when there is no resolved one.
        var reportedSpec: OutputSpec {
            switch self {
            case .configured(let output): output.outputSpec(template: nil)
            case .resolved(let spec): spec
            }
        }
    }

    /// Runs blocking file I/O on `fileIO`; `fallback` if the pool is shut down (process exit).
    func onFileIO<T: Sendable>(default fallback: T, _ body: @escaping @Sendable () -> T) async -> T {
        (try? await fileIO.runIfActive(body)) ?? fallback
    }

    /// Writes every output of one app (the one atomic write on the pool), each on its own I/O
    /// thread: no invariant orders the outputs of one secret among themselves, only all of
    /// them after the secret is durable in the state database (which the caller did) and
    /// before the state records them.
    func writeOutputs(_ document: SecretDocument, _ outputs: [OutputConfig]) async -> WriteReport {
        await write(document, outputs.map(OutputTarget.configured))
    }

    /// Rewrites the outputs an inspection found drifted.
    func rewrite(_ document: SecretDocument, _ specs: [OutputSpec]) async -> WriteReport {
        await write(document, specs.map(OutputTarget.resolved))
    }

    private func write(_ document: SecretDocument, _ targets: [OutputTarget]) async -> WriteReport {
        let writer = writer
        let fileIO = fileIO
        let results = await withTaskGroup(of: (Int, [WriteReport.Result]).self) { group in
            for (index, target) in targets.enumerated() {
                group.addTask {
                    let results: [WriteReport.Result]? = try? await fileIO.runIfActive {
                        switch target.resolve() {
                        case .success(let spec): return writer.write(document, to: [spec]).results
                        case .failure(let error): return [WriteReport.Result(spec: target.reportedSpec, outcome: .failed(error))]
                        }
                    }
                    return (index, results ?? Self.notRun(document, [target.reportedSpec]).results)
                }
            }
            var collected: [(Int, [WriteReport.Result])] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        return WriteReport(appId: document.appId, version: document.version, results: results)
    }

    /// Each output compared with `document`: the ones that drifted, and how.
    func inspect(_ document: SecretDocument, _ outputs: [OutputConfig]) async -> [(OutputSpec, OutputDrift)] {
        let writer = writer
        return await onFileIO(default: []) { () -> [(OutputSpec, OutputDrift)] in
            var drifted: [(OutputSpec, OutputDrift)] = []
            for output in outputs {
                switch Self.spec(output) {
                case .success(let spec):
                    if let drift = writer.inspect(document, at: spec) {
                        drifted.append((spec, drift))
                    }
                case .failure(let error):
                    drifted.append((output.outputSpec(template: nil), .invalidOutput(error)))
                }
            }
            return drifted
        }
    }

    /// A report of outputs not written because the I/O threads are gone (shutdown).
    static func notRun(_ document: SecretDocument, _ specs: [OutputSpec]) -> WriteReport {
        WriteReport(
            appId: document.appId, version: document.version,
            results: specs.map {
                WriteReport.Result(
                    spec: $0, outcome: .failed(OutputError(.notWritten, path: $0.path, reason: "not written: shutting down")))
            })
    }

    /// The writer's view of `output`, its template read now (an edited template is used
    /// without a restart) under the same trust rule as at load: not a link, owned by root or
    /// us, writable by nobody else.
    static func spec(_ output: OutputConfig) -> Result<OutputSpec, OutputError> {
        guard output.format == .template, let path = output.templatePath else { return .success(output.outputSpec(template: nil)) }
        do {
            let text = try ConfigFileReader.readTrusted(path, what: "template", followSymlinks: false).text
            return .success(output.outputSpec(template: text))
        } catch {
            return .failure(OutputError(.invalidSpec, path: output.path, reason: "template: \(error.message)"))
        }
    }

    /// Pre-flight before a refresh: for every output, its owner and group still resolve to
    /// the ids the config was loaded with, its template is trusted and renders, and its
    /// directory takes a temp file (`OutputWriter.preflight`). Nil when all pass.
    func preflight(_ app: AppConfig) async -> AppTransitions.Failure? {
        let writer = writer
        let failure = AppTransitions.Failure(.local, "not rotating: the file I/O threads are shut down")
        return await onFileIO(default: failure) { Self.preflight(app, writer: writer) }
    }

    private static func preflight(_ app: AppConfig, writer: OutputWriter) -> AppTransitions.Failure? {
        for output in app.outputs {
            let problem: OutputError?
            if let accounts = Self.accountProblem(output) {
                problem = OutputError(.accountUnresolved, path: output.path, reason: accounts)
            } else {
                switch Self.spec(output) {
                case .success(let spec): problem = writer.preflight(spec, appId: app.id, appName: app.name)
                case .failure(let error): problem = error
                }
            }
            guard let problem else { continue }
            var fields = ["event": "preflight_failed", "target_path": output.path, "error": problem.description]
            if let errno = problem.errno { fields["errno"] = OutputError.name(of: errno) }
            return AppTransitions.Failure(
                .local, "not rotating: \(problem) (found before the refresh: GenAuth kills the old secret when it answers)",
                fields: fields)
        }
        return nil
    }

    /// Owner and group names are resolved when the config loads; an account deleted or
    /// renumbered since then would leave files owned by a stale id.
    static func accountProblem(_ output: OutputConfig) -> String? {
        for (account, kind) in [(output.owner, AccountLookup.Kind.user), (output.group, .group)] {
            guard let account, account.name != String(account.id) else { continue }
            guard let now = try? AccountLookup.resolve(account.name, kind: kind) else {
                return "\(kind.rawValue) \"\(account.name)\" no longer resolves (it was id \(account.id) when the config was loaded)"
            }
            if now.id != account.id {
                return "\(kind.rawValue) \"\(account.name)\" is now id \(now.id), not \(account.id) as when the config was loaded; reload the config"
            }
        }
        return nil
    }
}
