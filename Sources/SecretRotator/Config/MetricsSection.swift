/// Reads `[metrics]`: the node_exporter textfile. Checked here: an absolute plain path whose
/// file name ends in `.prom`, that is not an output of any app (the textfile is 0644 and
/// rewritten every minute) and not inside the state directory. Whether its directory exists
/// is left to the daemon's writes: node_exporter may be installed after this config.
struct MetricsSection {
    static let example = "\"/var/lib/prometheus/node-exporter/secret_rotator.prom\""

    func read(_ reader: TableReader?, stateDirectory: String, apps: [AppConfig], sink: DiagnosticCollector) -> MetricsSettings {
        var settings = MetricsSettings()
        guard let reader else { return settings }
        defer { reader.reportUnknownKeys(known: ConfigSchema.metrics) }
        guard let path = reader.string("textfile", example: Self.example) else { return settings }
        let key = reader.keyPath("textfile")
        if let problem = ValueRules.absolutePathProblem(path) {
            sink.error(key, problem)
            return settings
        }
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        guard name.hasSuffix(".prom"), name.count > ".prom".count else {
            sink.error(
                key,
                "\"\(path)\" is not a NAME.prom file; node_exporter's textfile collector reads only *.prom files (e.g. \(Self.example))")
            return settings
        }
        if let app = apps.first(where: { $0.outputs.contains { $0.path == path } }) {
            sink.error(key, "\"\(path)\" is also an output of app \"\(app.name)\"; the metrics textfile needs a file of its own")
            return settings
        }
        if path.hasPrefix(stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") {
            sink.error(
                key, "\"\(path)\" is inside the state directory \(stateDirectory); write it to node_exporter's textfile directory")
            return settings
        }
        settings.textfile = path
        return settings
    }
}
