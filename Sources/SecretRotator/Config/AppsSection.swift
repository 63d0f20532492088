/// Reads every `[[app]]` with its `[[app.output]]` entries, applies `[defaults]`, and checks
/// the rules that span apps: unique ids, unique names, one writer per output path.
struct AppsSection {
    let defaults: DefaultSettings
    let minimumInterval: Duration
    let host: ConfigHost

    private struct Claim {
        let keyPath: String
        let line: Int?
        /// The file of the claim, shown when a later file repeats it (apps.d).
        let file: String
    }

    /// Every app of the main file and of apps.d, in that order; each reader carries the sink
    /// of its own file, so each error is reported with its own file:line. The rules that span
    /// apps (unique ids, names, output paths) span all files.
    ///
    /// - Returns: the apps, each with `sourceFile` set, in reading order.
    func read(_ readers: [TableReader], sink: DiagnosticCollector) -> [AppConfig] {
        guard !readers.isEmpty else {
            sink.warning("app", "no [[app]] entries; there is nothing to rotate")
            return []
        }
        var apps: [AppConfig] = []
        var ids: [String: Claim] = [:]
        var names: [String: Claim] = [:]
        var paths: [String: Claim] = [:]
        var stateNames: [String: Claim] = [:]
        for reader in readers {
            guard var app = readApp(reader, sink: reader.sink) else { continue }
            app.source = AppSource(file: reader.sink.file, keyPath: reader.path, line: reader.sink.line(of: reader.path))
            let newID = ids[app.id] == nil
            claim(app.id, in: &ids, keyPath: reader.keyPath("id"), what: "app id", sink: reader.sink)
            // Long ids are stored under their SHA-256: two ids must not meet on one record.
            if newID {
                claim(
                StateDirectory.fileName(for: app.id), in: &stateNames, keyPath: reader.keyPath("id"),
                    what: "state record name (app ids are stored under this name)", sink: reader.sink)
            }
            let nameKey = reader.contains("name") ? reader.keyPath("name") : reader.keyPath("id")
            claim(app.name, in: &names, keyPath: nameKey, what: "app name", sink: reader.sink)
            for (index, output) in app.outputs.enumerated() {
                let outputKey: String
                if reader.contains("output") {
                    outputKey = "\(reader.keyPath("output"))[\(index)].path"
                } else {
                    outputKey = reader.path
                }
                claim(output.path, in: &paths, keyPath: outputKey, what: "output path", sink: reader.sink)
            }
            apps.append(app)
        }
        return apps
    }

    private func claim(
        _ value: String, in claims: inout [String: Claim], keyPath: String, what: String, sink: DiagnosticCollector
    ) {
        if let first = claims[value] {
            var place = first.line.map { " (line \($0))" } ?? ""
            if first.file != sink.file { place = " (\(first.file)\(first.line.map { ":\($0)" } ?? ""))" }
            sink.error(keyPath, "duplicate \(what) \"\(value)\"; already used by \(first.keyPath)\(place)")
        } else {
            claims[value] = Claim(keyPath: keyPath, line: sink.line(of: keyPath), file: sink.file)
        }
    }

    private func readApp(_ reader: TableReader, sink: DiagnosticCollector) -> AppConfig? {
        defer {
            reader.reportUnknownKeys(
                known: ConfigSchema.app,
                hint: [
                    "mode": "`mode` is an output's file permission; the rotate/follow choice is `action`",
                    "outputs": "did you mean `output`? write each one as [[app.output]]",
                ])
        }
        let id = reader.string("id", example: "\"6229ffaxxxxxxxxcade3e3d9\"")
        if let id, let problem = ValueRules.identifierProblem(id, what: "app id") {
            sink.error(reader.keyPath("id"), problem)
        } else if id == nil && !reader.contains("id") {
            sink.error(reader.keyPath("id"), "missing; every [[app]] needs the GenAuth application id")
        }
        let name = reader.string("name", example: "\"billing\"") ?? id
        if let name, let problem = ValueRules.unsafeNameProblem(name) {
            sink.error(reader.contains("name") ? reader.keyPath("name") : reader.keyPath("id"), problem)
        }
        let action = reader.choice("action", as: AppAction.self) ?? .rotate

        var interval = defaults.interval
        if let own = reader.duration("interval") {
            if let problem = IntervalRules.intervalProblem(own, minimum: minimumInterval) {
                sink.error(reader.keyPath("interval"), problem)
            } else {
                interval = own
            }
        }
        var jitter = defaults.jitter
        if let own = reader.duration("jitter") {
            jitter = own
        }
        if let problem = IntervalRules.jitterProblem(jitter, interval: interval, inherited: !reader.contains("jitter")) {
            sink.error(reader.contains("jitter") ? reader.keyPath("jitter") : reader.keyPath("interval"), problem)
        }

        let firstStart = reader.choice("first_start", as: FirstStart.self) ?? defaults.firstStart
        if action == .follow && firstStart == .rotate && reader.contains("first_start") {
            sink.error(reader.keyPath("first_start"), "\"rotate\" contradicts action = \"follow\", which never rotates; remove first_start or use \"fetch\"")
        }

        let onRotate = reader.stringArray("on_rotate", example: "[\"systemctl\", \"try-reload-or-restart\", \"billing.service\"]")
        if let onRotate {
            if let problem = hookProblem(onRotate) {
                sink.error(reader.keyPath("on_rotate"), problem)
            } else if let program = onRotate.first {
                do {
                    _ = try host.resolveProgram(program)
                } catch {
                    sink.error(reader.keyPath("on_rotate"), error.message)
                }
            }
        }
        var hookTimeout = defaults.hookTimeout
        if let own = reader.duration("hook_timeout") {
            if let problem = IntervalRules.hookTimeoutProblem(own) {
                sink.error(reader.keyPath("hook_timeout"), problem)
            } else {
                hookTimeout = own
            }
        }

        var window = defaults.window
        if let own = reader.window("window") {
            window = own
            if own != nil && action == .follow {
                sink.warning(
                    reader.keyPath("window"),
                    "action = \"follow\" never rotates and its polls do not wait for a window, so this window has no effect; remove it")
            }
        }

        var outputs: [OutputConfig] = []
        if let outputReaders = reader.tableArray("output") {
            if outputReaders.isEmpty {
                sink.error(reader.keyPath("output"), "empty; remove it to use the drop directory, or add [[app.output]] entries")
            }
            for outputReader in outputReaders {
                if let output = OutputSection(defaults: defaults, appName: name, host: host).read(outputReader, sink: sink) {
                    outputs.append(output)
                }
            }
        } else if let name {
            outputs.append(
                OutputConfig(
                    path: Self.dropPath(directory: defaults.directory, file: name), format: .raw, envKey: nil,
                    templatePath: nil, mode: defaults.mode, owner: defaults.owner, group: defaults.group,
                    trailingNewline: true, allowWorldReadable: false, allowUnsafeDirectory: false, inDropDirectory: true))
        }

        let consumers = ConsumerSettings.units(reader, sink: sink)
        let consumerAction = ConsumerSettings.action(reader, sink: sink) ?? defaults.consumerAction
        let consumerGrace = ConsumerSettings.grace(reader, sink: sink) ?? defaults.consumerGrace
        for key in ["consumer_action", "consumer_grace"] where reader.contains(key) && consumers.isEmpty {
            sink.warning(reader.keyPath(key), "this app names no consumers, so \(key) has no effect; add consumers = [\"x.service\"] or remove it")
        }

        guard let id, let name else { return nil }
        var app = AppConfig(
            id: id, name: name, action: action, interval: interval, jitter: jitter, firstStart: firstStart,
            onRotate: onRotate, hookTimeout: hookTimeout, outputs: outputs, window: window)
        app.consumers = consumers
        app.consumerAction = consumerAction
        app.consumerGrace = consumerGrace
        return app
    }

    static func dropPath(directory: String, file: String) -> String {
        directory == "/" ? "/\(file)" : "\(directory)/\(file)"
    }

    /// Hooks run without a shell, so argv[0] is either an absolute path or a name found on PATH;
    /// a relative path would depend on the daemon's working directory.
    private func hookProblem(_ argv: [String]) -> String? {
        guard let program = argv.first else {
            return "empty command; give argv such as [\"systemctl\", \"reload\", \"billing.service\"] or remove on_rotate"
        }
        if argv.contains(where: { $0.utf8.contains(0) }) { return "an argument contains a NUL byte" }
        if program.isEmpty { return "the program (first element) is empty" }
        if program.contains("/") && !program.hasPrefix("/") {
            return "\"\(program)\" is a relative path; give an absolute path or a bare command name looked up on PATH"
        }
        if program.contains(" ") && !program.hasPrefix("/") {
            return "\"\(program)\" contains a space; on_rotate is an argv array run without a shell, so split it: [\"systemctl\", \"reload\", ...]"
        }
        return nil
    }
}
