#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon is doing, for `status`, sd_notify STATUS= and logs. Built from state and
/// config only; errors in it are GenAuthError/OutputError descriptions, which hold no secrets.
public struct StatusReport: Sendable, Encodable {
    public struct App: Sendable, Encodable {
        public let id: String
        public let name: String
        public let action: String
        public let version: Int
        public let lastSuccess: Date?
        public let nextDue: Date?
        public let consecutiveFailures: Int
        public let lastError: String?
    }

    public let apps: [App]

    public var failing: [App] { apps.filter { $0.consecutiveFailures > 0 } }

    /// One line for systemd's STATUS=: "3 apps · 0 failing · next: billing in 6d 3h".
    public func summary(now: Date) -> String {
        var parts = ["\(apps.count) app\(apps.count == 1 ? "" : "s")", "\(failing.count) failing"]
        if let worst = failing.first {
            parts.append("\(worst.name): \(worst.lastError ?? "failing")")
        }
        if let next = apps.compactMap({ app in app.nextDue.map { (app.name, $0) } }).min(by: { $0.1 < $1.1 }) {
            let seconds = max(0, next.1.timeIntervalSince(now))
            parts.append("next: \(next.0) in \(DurationSyntax.format(.seconds(Int64(seconds.rounded()))))")
        }
        return parts.joined(separator: " · ")
    }
}
