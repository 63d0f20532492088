/// The per-app spread added to every interval. Deterministic (FNV-1a of the app id, not Swift's
/// per-process randomized `Hasher`) so that a restart does not move an app's rotation time and
/// cannot turn a schedule into a burst.
public enum ScheduleJitter {
    public static func offset(appID: String, jitter: Duration) -> Duration {
        let range = DurationSyntax.milliseconds(of: jitter)
        guard range > 0 else { return .zero }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in appID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return .milliseconds(Int64(hash % UInt64(range)))
    }
}
