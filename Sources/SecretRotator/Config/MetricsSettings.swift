/// `[metrics]`: where the daemon writes its metrics for node_exporter's textfile collector
/// Without the table nothing is written.
public struct MetricsSettings: Sendable, Equatable {
    /// Absolute path of the textfile, ending in `.prom` (node_exporter reads only `*.prom`),
    /// e.g. `/var/lib/prometheus/node-exporter/secret_rotator.prom`. Its directory must exist
    /// when the daemon writes, which is checked then, not at load. Nil: no metrics file.
    public var textfile: String?

    public init(textfile: String? = nil) {
        self.textfile = textfile
    }
}
