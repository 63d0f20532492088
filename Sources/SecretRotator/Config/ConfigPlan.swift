#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon will do with a config, as `check-config` shows it: a table for people and
/// JSON for machines. Built only from validated values and never from the access key secret,
/// of which it names the source.
public struct ConfigPlan: Encodable, Sendable {
    public struct GenAuth: Encodable, Sendable {
        let host: String
        let flavour: String
        let accessKeyId: String
        let accessKeySecretSource: String
        let requestTimeout: String
        let caFile: String?
        let requestsPerSecond: Double
    }

    public struct Defaults: Encodable, Sendable {
        let stateDirectory: String
        let directory: String
        let maxConcurrent: Int
        let retryInitial: String
        let retryMax: String
        let retryMultiplier: Double
    }

    public struct App: Encodable, Sendable {
        let id: String
        let name: String
        let action: String
        let interval: String
        let jitter: String
        let firstStart: String
        let onRotate: [String]?
        let hookTimeout: String
        /// `file:line` of its `[[app]]` table: the main config or a file of apps.d.
        let source: String?
        let outputs: [Output]
        /// Consumer units told over D-Bus after each rotation, with the action and grace.
        let consumers: [String]
        let consumerAction: String
        let consumerGrace: String
        /// The rotation window in canonical form, nil without one.
        let window: String?
        /// Its next opening (or the one open now), ISO 8601 UTC.
        let nextWindowOpening: String?
    }

    public struct Output: Encodable, Sendable {
        let path: String
        let format: String
        let envKey: String?
        let template: String?
        let mode: String
        let owner: String?
        let group: String?
        let trailingNewline: Bool
        let dropDirectory: Bool
    }

    public struct Metrics: Encodable, Sendable {
        /// The node_exporter textfile, nil when `[metrics]` sets none.
        let textfile: String?
    }

    public struct Cluster: Encodable, Sendable {
        let endpoints: [String]
        let prefix: String
        let leaseTTL: String
        let host: String
        let group: String
        let tls: Bool
        /// The etcd user this host authenticates as; nil without `user`.
        let user: String?
        /// Where its password comes from (never the password).
        let passwordSource: String?
    }

    let config: String
    let valid: Bool
    let warnings: [String]
    let genauth: GenAuth
    let defaults: Defaults
    let apps: [App]
    let metrics: Metrics
    /// `[cluster]`, nil without it.
    let cluster: Cluster?

    /// - Parameters:
    ///   - now: the clock each app's next window opening is found from.
    ///   - extraWarnings: found beyond the loader (check-config's look at consumer units).
    public init(_ loaded: LoadedConfig, now: Date = Date(), extraWarnings: [ConfigDiagnostic] = []) {
        let config = loaded.config
        self.config = config.sourcePath
        self.valid = true
        self.warnings = (loaded.warnings + extraWarnings).map(\.description)
        let api = config.genauth
        genauth = GenAuth(
            host: api.host, flavour: api.flavour.rawValue, accessKeyId: api.accessKeyID,
            accessKeySecretSource: api.accessKeySecretSource.description,
            requestTimeout: DurationSyntax.format(api.requestTimeout), caFile: api.caFile,
            requestsPerSecond: api.requestsPerSecond)
        let base = config.defaults
        defaults = Defaults(
            stateDirectory: base.stateDirectory, directory: base.directory, maxConcurrent: base.maxConcurrent,
            retryInitial: DurationSyntax.format(base.retry.initial), retryMax: DurationSyntax.format(base.retry.max),
            retryMultiplier: base.retry.multiplier)
        metrics = Metrics(textfile: config.metrics.textfile)
        cluster = config.cluster.map { settings in
            Cluster(
                endpoints: settings.endpoints, prefix: settings.prefix, leaseTTL: DurationSyntax.format(settings.leaseTTL),
                host: settings.host, group: settings.group, tls: settings.caFile != nil || settings.certFile != nil,
                user: settings.user, passwordSource: settings.passwordSource?.description)
        }
        apps = config.apps.map { app in
            // A follow app's polls never wait, whatever [defaults] says.
            let window = app.action == .rotate ? app.window : nil
            return App(
                id: app.id, name: app.name, action: app.action.rawValue, interval: DurationSyntax.format(app.interval),
                jitter: DurationSyntax.format(app.jitter), firstStart: app.firstStart.rawValue, onRotate: app.onRotate,
                hookTimeout: DurationSyntax.format(app.hookTimeout),
                source: app.source.map { source in source.line.map { "\(source.file):\($0)" } ?? source.file },
                outputs: app.outputs.map { output in
                    Output(
                        path: output.path, format: output.format.rawValue, envKey: output.envKey,
                        template: output.templatePath, mode: output.mode.description, owner: output.owner?.description,
                        group: output.group?.description, trailingNewline: output.trailingNewline,
                        dropDirectory: output.inDropDirectory)
                },
                consumers: app.consumers, consumerAction: app.consumerAction.description,
                consumerGrace: DurationSyntax.format(app.consumerGrace),
                window: window?.description,
                nextWindowOpening: window.map { $0.nextOpening(atOrAfter: now).start.formatted(.iso8601) })
        }
    }

    public func renderTable() -> String {
        var lines: [String] = []
        lines.append("Config \(config) is valid.")
        lines.append("")
        lines.append("GenAuth API   \(genauth.host) (flavour \(genauth.flavour), timeout \(genauth.requestTimeout), at most \(Self.number(genauth.requestsPerSecond)) requests/s)")
        lines.append("Access key    id \(genauth.accessKeyId), secret from \(genauth.accessKeySecretSource)")
        if let caFile = genauth.caFile { lines.append("Extra CA      \(caFile)") }
        lines.append("State         \(defaults.stateDirectory)")
        lines.append("Drop dir      \(defaults.directory)")
        lines.append(
            "Concurrency   \(defaults.maxConcurrent) at once; retry \(defaults.retryInitial) .. \(defaults.retryMax), x\(Self.number(defaults.retryMultiplier))")
        if let textfile = metrics.textfile {
            lines.append("Metrics       \(textfile) (node_exporter textfile, refreshed at least every minute)")
        }
        if let cluster {
            lines.append(
                "Cluster       etcd \(cluster.endpoints.joined(separator: ", ")) under \(cluster.prefix); host \(cluster.host), election \(cluster.group), lease \(cluster.leaseTTL)\(cluster.tls ? ", TLS" : "")")
            if cluster.tls {
                lines.append(
                    "              etcd's JSON gateway dials its own member with the member's server certificate: each needs extendedKeyUsage serverAuth and clientAuth")
            }
            if let user = cluster.user {
                lines.append(
                    "              etcd user \(user), password from \(cluster.passwordSource ?? "nowhere"); its role needs readwrite on \(cluster.prefix)/ (etcdctl role grant-permission ROLE --prefix=true readwrite \(cluster.prefix)/)")
            }
            let candidates = apps.filter { $0.action == AppAction.rotate.rawValue }.count
            lines.append(
                "              \(candidates) rotate app\(candidates == 1 ? " is a candidate" : "s are candidates"): rotated here only while this host leads")
        }
        lines.append("")
        if apps.isEmpty {
            lines.append("No apps configured.")
            return lines.joined(separator: "\n")
        }
        // Which file each app came from, once apps.d is in use.
        let showSource = apps.contains { app in app.source.map { !$0.hasPrefix(config + ":") && $0 != config } ?? false }
        let header = ["APP", "ID", "ACTION", "INTERVAL", "JITTER", "FIRST START", "HOOK"] + (showSource ? ["FROM"] : [])
        let rows = apps.map { app in
            [
                app.name, app.id, app.action, app.interval, app.jitter, app.firstStart,
                app.onRotate.map { "\($0.joined(separator: " ")) (timeout \(app.hookTimeout))" } ?? "-",
            ] + (showSource ? [app.source ?? "-"] : [])
        }
        var table = TextTable(header: header, rows: rows).renderLines()
        lines.append(table.removeFirst())
        for (app, row) in zip(apps, table) {
            lines.append(row)
            if let window = app.window {
                lines.append("    window \(window); next opening \(app.nextWindowOpening ?? "-")")
            }
            for output in app.outputs {
                var detail = "    -> \(output.path)  \(output.format)"
                if let envKey = output.envKey { detail += "(\(envKey))" }
                if let template = output.template { detail += "(\(template))" }
                detail += "  mode \(output.mode)  owner \(output.owner ?? "(daemon user)")  group \(output.group ?? "(daemon group)")"
                if output.dropDirectory { detail += "  [drop directory]" }
                if output.format == "raw" && !output.trailingNewline { detail += "  no trailing newline" }
                lines.append(detail)
            }
            if !app.consumers.isEmpty {
                lines.append(
                    "    consumers \(app.consumers.joined(separator: ", "))  (\(app.consumerAction) over D-Bus; reported after \(app.consumerGrace))")
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
