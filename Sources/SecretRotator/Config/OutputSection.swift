/// Reads one `[[app.output]]`, inheriting mode, owner and group from `[defaults]`.
struct OutputSection {
    let defaults: DefaultSettings
    let appName: String?
    let host: ConfigHost

    func read(_ reader: TableReader, sink: DiagnosticCollector) -> OutputConfig? {
        defer {
            reader.reportUnknownKeys(
                known: ConfigSchema.output,
                hint: ["file": "did you mean `path`?", "permissions": "did you mean `mode`?"])
        }
        let format = reader.choice("format", as: OutputFormat.self) ?? .raw
        var valid = true

        var path: String?
        var inDropDirectory = false
        if let written = reader.string("path", example: "\"/etc/billing/genauth.env\"") {
            if let problem = ValueRules.absolutePathProblem(written) {
                sink.error(reader.keyPath("path"), problem)
                valid = false
            }
            path = written
        } else if !reader.contains("path") {
            if format == .template {
                sink.error(reader.keyPath("path"), "missing; a template output needs its own path")
                valid = false
            } else if let appName {
                let suffix: String =
                    switch format {
                    case .raw, .template: ""
                    case .env: ".env"
                    case .json: ".json"
                    }
                path = AppsSection.dropPath(directory: defaults.directory, file: appName + suffix)
                inDropDirectory = true
            }
        }

        var envKey: String?
        if let written = reader.string("env_key", example: "\"GENAUTH_APP_SECRET\"") {
            if format != .env {
                sink.error(reader.keyPath("env_key"), "only applies to format = \"env\" (this output is \"\(format.rawValue)\")")
                valid = false
            } else if let problem = ValueRules.envKeyProblem(written) {
                sink.error(reader.keyPath("env_key"), problem)
                valid = false
            }
            envKey = written
        } else if format == .env {
            envKey = "GENAUTH_APP_SECRET"
        }

        let templatePath = reader.string("template", example: "\"/etc/secret-rotator/billing.conf.tmpl\"")
        if let templatePath {
            if format != .template {
                sink.error(reader.keyPath("template"), "only applies to format = \"template\" (this output is \"\(format.rawValue)\")")
                valid = false
            } else if let problem = templateProblem(templatePath) {
                sink.error(reader.keyPath("template"), problem)
                valid = false
            }
        } else if format == .template && !reader.contains("template") {
            sink.error(reader.keyPath("template"), "missing; format = \"template\" needs template = \"/path/to/file.tmpl\"")
            valid = false
        }

        let allowWorldReadable = reader.bool("allow_world_readable") ?? false
        let mode = reader.mode("mode") ?? defaults.mode
        if mode.hasWorldBits && !allowWorldReadable {
            sink.error(
                reader.keyPath("mode"),
                "\(mode) lets every user on the host access the secret; use e.g. \"0640\" with a group, or set allow_world_readable = true on this output if that is really intended"
            )
            valid = false
        }
        let owner = reader.contains("owner") ? reader.account("owner", kind: .user, host: host) : defaults.owner
        let group = reader.contains("group") ? reader.account("group", kind: .group, host: host) : defaults.group

        var trailingNewline = true
        if let written = reader.bool("trailing_newline") {
            if format != .raw {
                sink.error(reader.keyPath("trailing_newline"), "only applies to format = \"raw\"; env and json files always end with a newline, templates end as written")
                valid = false
            }
            trailingNewline = written
        }
        let allowUnsafeDirectory = reader.bool("allow_unsafe_directory") ?? false

        guard valid, let path else { return nil }
        let output = OutputConfig(
            path: path, format: format, envKey: envKey, templatePath: templatePath, mode: mode, owner: owner,
            group: group, trailingNewline: trailingNewline, allowWorldReadable: allowWorldReadable,
            allowUnsafeDirectory: allowUnsafeDirectory, inDropDirectory: inDropDirectory)
        // The writer re-checks every spec before each write; asking it now means check-config
        // refuses exactly what the daemon would refuse later (e.g. world-writable modes).
        let writerProblems = output.outputSpec(template: format == .template ? "" : nil).problems()
        for problem in writerProblems {
            sink.error(reader.keyPath(reader.contains("mode") && problem.hasPrefix("mode") ? "mode" : "path"), problem)
        }
        return writerProblems.isEmpty ? output : nil
    }

    private func templateProblem(_ path: String) -> String? {
        if let problem = ValueRules.absolutePathProblem(path) { return problem }
        let text: String
        do {
            text = try host.readTrustedText(path, "template", false)
        } catch {
            return error.message
        }
        let problems = TemplateValidator.problems(in: text)
        return problems.isEmpty ? nil : "template \(path): " + problems.joined(separator: "; ")
    }
}
