/// Event kinds with a fixed journald MESSAGE_ID each, so operators can filter
/// (`journalctl MESSAGE_ID=...`) and `journalctl -x` can show the catalog text
/// (packaging/secret-rotator.catalog). Log calls name the kind in the `event` metadata key.
public enum JournalEvent: String, Sendable, CaseIterable {
    case rotated
    case rotationFailed = "rotation_failed"
    case reconciled
    case outputWriteFailed = "output_write_failed"
    case hookFailed = "hook_failed"
    case configReloaded = "config_reloaded"
    case configRejected = "config_rejected"
    /// A consumer unit picked up a new secret (systemd shows it reloaded or restarted after it).
    case consumerConfirmed = "consumer_confirmed"
    /// A consumer unit was not running when told: nothing held the old secret.
    case consumerNotRunning = "consumer_not_running"
    /// A consumer unit could not be told, or shows no reload or restart: it may hold a dead secret.
    case consumerFailed = "consumer_failed"

    public var messageID: String {
        switch self {
        case .rotated: "ecde1cc95949469ebba3ee667402c2c6"
        case .rotationFailed: "3d75f9aad06b46d6b767074dfa1a94c1"
        case .reconciled: "67d8e9f79d2841c0bec436bb95206035"
        case .outputWriteFailed: "50dd46733c9046b3a7b873cd88595ad5"
        case .hookFailed: "d1a755e7b7d647b38ff22027679b68aa"
        case .configReloaded: "f05dc8b467cb44beafc7c2283eed473c"
        case .configRejected: "264730db429e4ccfa2d697dd54988635"
        case .consumerConfirmed: "40a433aedefd404089e88745b764dd7b"
        case .consumerNotRunning: "a7c36cd6ed8e40c89122cb50b501fda1"
        case .consumerFailed: "da9ab6a0ebd24686a2a819ee5446b07e"
        }
    }
}
