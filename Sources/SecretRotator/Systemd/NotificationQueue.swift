/// The rule that keeps the daemon quiet towards the service manager: what a notification sender
/// sends next, and what it leaves out. It has no clock of its own (every call is given the
/// time), so it is tested without waiting.
///
/// - `STATUS=` texts are coalesced: at most one every `statusSpacing`, the latest text wins
///   and goes out when the spacing is up. A lifecycle message that carries its own status
///   (READY, RELOADING, STOPPING) goes out at once and replaces a text still waiting. After
///   STOPPING no further status is sent: the unit is going away, and "stopping" stays true.
/// - `WATCHDOG=1` is sent only when a watchdog was asked for (`watchdogSpacing` set), at most
///   one every `watchdogSpacing`; a ping within the spacing is dropped, never sent later (a
///   ping sent late would vouch for a loop that may be stuck by then).
/// - Messages waiting to be sent are bounded by `capacity`; when full the oldest is dropped
///   and counted in `dropped` (the service manager is not reading; nothing waits on it).
struct NotificationQueue {
    typealias Instant = ContinuousClock.Instant

    /// What to do next.
    enum Next: Equatable {
        /// Send this notification (one or more `KEY=value` lines).
        case send(String)
        /// Nothing to send before this instant (a coalesced status is waiting for its turn).
        case wait(until: Instant)
        /// Nothing to send until something is added.
        case idle
    }

    /// Least time between two `STATUS=` texts.
    let statusSpacing: Duration
    /// Least time between two `WATCHDOG=1`; nil: no watchdog, so never sent.
    let watchdogSpacing: Duration?
    /// Most messages waiting to be sent, besides the one coalesced status text.
    let capacity: Int

    private var messages: [String] = []
    private var pendingStatus: String?
    private var lastStatus: Instant?
    private var lastWatchdog: Instant?
    private var statusEnded = false
    /// Messages dropped because `capacity` were already waiting.
    private(set) var dropped = 0
    /// Status texts replaced by a later one before they were sent (coalesced, not lost).
    private(set) var superseded = 0

    init(statusSpacing: Duration = .seconds(1), watchdogSpacing: Duration?, capacity: Int = 64) {
        self.statusSpacing = statusSpacing
        self.watchdogSpacing = watchdogSpacing
        self.capacity = max(1, capacity)
    }

    /// A new one-line status text (without the `STATUS=` key).
    mutating func status(_ text: String, now: Instant) {
        guard !statusEnded else { return }
        if pendingStatus != nil { superseded += 1 }
        pendingStatus = text
    }

    /// A message sent at once and in order (`READY=1`, `RELOADING=1`...), with `status` (a
    /// one-line text) appended as its `STATUS=` line; `endsStatus` (STOPPING) makes it the last.
    mutating func lifecycle(_ message: String, status: String? = nil, endsStatus: Bool = false, now: Instant) {
        if let status, !statusEnded {
            if pendingStatus != nil { superseded += 1 }
            pendingStatus = nil
            lastStatus = now
            append("\(message)\nSTATUS=\(status)")
        } else {
            append(message)
        }
        if endsStatus {
            statusEnded = true
            pendingStatus = nil
        }
    }

    /// A watchdog ping from the loop it vouches for; returns whether it will be sent.
    @discardableResult
    mutating func watchdog(now: Instant) -> Bool {
        guard let spacing = watchdogSpacing else { return false }
        if let last = lastWatchdog, now - last < spacing { return false }
        lastWatchdog = now
        // One still waiting already says the same.
        if messages.contains(Self.watchdogMessage) { return false }
        append(Self.watchdogMessage)
        return true
    }

    /// Whether a message is waiting to go out at once (a coalesced status text does not count).
    var hasMessages: Bool { !messages.isEmpty }

    /// Takes the next notification to send at `now`, if any.
    mutating func next(now: Instant) -> Next {
        if !messages.isEmpty { return .send(messages.removeFirst()) }
        guard let text = pendingStatus else { return .idle }
        if let last = lastStatus, now - last < statusSpacing { return .wait(until: last + statusSpacing) }
        pendingStatus = nil
        lastStatus = now
        return .send("STATUS=\(text)")
    }

    static let watchdogMessage = "WATCHDOG=1"

    private mutating func append(_ message: String) {
        if messages.count >= capacity {
            messages.removeFirst()
            dropped += 1
        }
        messages.append(message)
    }
}
