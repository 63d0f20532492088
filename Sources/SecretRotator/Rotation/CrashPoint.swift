#if DEBUG
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
#endif

/// The points of a rotation where the order of durable writes matters (Architecture,
/// invariants 4 and 5), named so a test can kill the process exactly there and check the
/// recovery: `SECRET_ROTATOR_TEST_CRASH_AT=<point>` makes a **debug** build SIGKILL itself
/// on reaching it. Release builds (the .deb) compile `reached` to nothing, so no environment
/// variable can stop a shipped daemon.
enum CrashPoint: String, CaseIterable, Sendable {
    /// The refresh intent is durable; the refresh is not sent yet.
    case intentDurable = "intent-durable"
    /// GenAuth answered the refresh (the old secret is dead); the new one is not durable yet.
    case refreshAnswered = "refresh-answered"
    /// The new secret is durable in the state database; no output has it yet.
    case secretDurable = "secret-durable"
    /// Every output holds the new secret durably; the app record does not say so yet.
    case outputsDurable = "outputs-durable"

    static let variable = "SECRET_ROTATOR_TEST_CRASH_AT"

    #if DEBUG
    private static let armed: CrashPoint? = ProcessEnvironment.current[variable].flatMap(CrashPoint.init(rawValue:))
    #endif

    @inline(__always)
    static func reached(_ point: CrashPoint) {
        #if DEBUG
        if armed == point { kill(getpid(), SIGKILL) }
        #endif
    }
}
