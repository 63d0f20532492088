import Foundation
import Logging
import Testing

@testable import SecretRotator

@Suite struct JournalLogHandlerTests {
    @Test func buildsNativeFieldsWithMessageIDsAndUpperCaseMetadata() {
        let fields = JournalLogHandler.fields(
            message: "secret rotated", level: .notice,
            metadata: [
                "event": "rotated", "app_id": "62a1", "app_name": "billing", "version": "7", "_trusted": "x",
                "9lives": "x", "target-path": "/etc/x",
            ],
            identifier: "secret-rotator", label: "secret-rotator.engine")
        let dictionary = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        #expect(dictionary["MESSAGE"] == "secret rotated")
        #expect(dictionary["PRIORITY"] == "5")
        #expect(dictionary["SYSLOG_IDENTIFIER"] == "secret-rotator")
        #expect(dictionary["MESSAGE_ID"] == JournalEvent.rotated.messageID)
        #expect(dictionary["APP_ID"] == "62a1")
        #expect(dictionary["APP_NAME"] == "billing")
        #expect(dictionary["VERSION"] == "7")
        #expect(dictionary["TARGET_PATH"] == "/etc/x")
        #expect(dictionary["_TRUSTED"] == nil, "fields starting with _ are journald's own")
        #expect(dictionary["9LIVES"] == nil)
        #expect(fields.filter { $0.0 == "MESSAGE_ID" }.count == 1)
    }

    @Test func everyEventHasADistinctMessageID() {
        let ids = JournalEvent.allCases.map(\.messageID)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }

    @Test func prioritiesFollowSyslog() {
        #expect(JournalLogHandler.priority(.critical) == 2)
        #expect(JournalLogHandler.priority(.error) == 3)
        #expect(JournalLogHandler.priority(.warning) == 4)
        #expect(JournalLogHandler.priority(.info) == 6)
        #expect(JournalLogHandler.priority(.debug) == 7)
    }

    @Test func stderrIsTheJournalOnlyWhenDeviceAndInodeMatch() {
        var status = stat()
        #expect(fstat(2, &status) == 0)
        let matching = "\(status.st_dev):\(status.st_ino)"
        #expect(JournalLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": matching]))
        #expect(!JournalLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino &+ 1)"]))
        #expect(!JournalLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "garbage"]))
        #expect(!JournalLogHandler.stderrIsJournal(environment: [:]))
    }
}

/// sd_notify against a real AF_UNIX datagram socket standing in for systemd's.
@Suite(.serialized, .tags(.addressSanitizer)) struct NotifierTests {
    @Test(.timeLimit(.minutes(1))) func sendsReadyStatusReloadingAndStopping() throws {
        let listener = try NotifySocketListener()
        defer { listener.close() }
        let notifier = Notifier()
        defer { notifier.shutDown() }
        notifier.ready(status: "3 apps · 0 failing\nsecond line")
        #expect(listener.receive() == "READY=1\nSTATUS=3 apps · 0 failing second line")
        notifier.reloading()
        let reloading = listener.receive()
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        #expect(reloading.hasSuffix("\nSTATUS=reloading the config"))
        notifier.stopping()
        #expect(listener.receive() == "STOPPING=1\nSTATUS=stopping")
        notifier.extendTimeout(by: .seconds(90))
        #expect(listener.receive() == "EXTEND_TIMEOUT_USEC=90000000")
    }

    /// Without WATCHDOG_USEC nothing asks for pings, so none is sent; with it, they are. The
    /// datagrams arrive in order, so the first one after the pings tells which were sent.
    @Test(.timeLimit(.minutes(1))) func watchdogOnlyWhenSystemdAsksForIt() throws {
        do {
            let listener = try NotifySocketListener()
            defer { listener.close() }
            let notifier = Notifier()
            defer { notifier.shutDown() }
            #expect(notifier.watchdogInterval == nil)
            for _ in 0..<3 { notifier.watchdog() }
            notifier.stopping()
            #expect(listener.receive() == "STOPPING=1\nSTATUS=stopping")
        }
        do {
            let listener = try NotifySocketListener(watchdogUSec: 30_000_000)
            defer { listener.close() }
            let notifier = Notifier()
            defer { notifier.shutDown() }
            #expect(notifier.watchdogInterval == .seconds(15))
            // The loop may ping once per turn; within a quarter interval one ping stands for all.
            for _ in 0..<3 { notifier.watchdog() }
            notifier.stopping()
            #expect(listener.receive() == "WATCHDOG=1")
            #expect(listener.receive() == "STOPPING=1\nSTATUS=stopping")
        }
    }

    /// A service manager that stops reading: its socket's queue is full, so a blocking send
    /// waits for as long as it does not read. Every call still returns at once (the time limit
    /// bounds the test; the old synchronous sd_notify hung in the first call), and what the
    /// full queue could not keep is counted.
    @Test(.timeLimit(.minutes(1))) func callsReturnWhenTheListenerNeverReads() throws {
        let listener = try NotifySocketListener(watchdogUSec: 30_000_000)
        defer { listener.close() }
        try #require(listener.fill(), "the listener's receive queue could not be filled")
        let notifier = Notifier()
        notifier.ready(status: "20 apps")
        for round in 0..<200 {
            notifier.status("round \(round)")
            notifier.watchdog()
            notifier.reloading()
            notifier.ready(status: "round \(round)")
        }
        notifier.stopping()
        notifier.extendTimeout(by: .seconds(90))
        #expect(notifier.droppedNotifications > 0)
        // The sending thread is blocked in sendmsg until the listener goes away; it ends
        // before the environment changes (it reads NOTIFY_SOCKET at every send).
        listener.stopListening()
        notifier.shutDown()
    }

    /// What was submitted before the process exits is sent: `flush` returns once STOPPING=1
    /// has been handed to the socket (the daemon's exit raced the sending thread and systemd
    /// never saw STOPPING=1).
    @Test(.timeLimit(.minutes(1))) func flushSendsWhatWasSubmittedBeforeExit() throws {
        let listener = try NotifySocketListener()
        defer { listener.close() }
        let notifier = Notifier()
        defer { notifier.shutDown() }
        notifier.ready(status: "1 app")
        notifier.stopping()
        notifier.flush(upTo: .seconds(30))
        notifier.shutDown()
        #expect(listener.receive() == "READY=1\nSTATUS=1 app")
        #expect(listener.receive() == "STOPPING=1\nSTATUS=stopping")
        notifier.flush(upTo: .seconds(30))  // nothing left: returns at once
    }

    @Test func withoutSystemdItIsANoOp() {
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        let notifier = Notifier()
        #expect(notifier.watchdogInterval == nil)
        notifier.ready(status: "x")
        notifier.watchdog()
        #expect(notifier.droppedNotifications == 0)
    }
}

/// The coalescing rule on its own, with the time given by the test (nothing waits).
@Suite(.tags(.addressSanitizer)) struct NotificationQueueTests {
    private let start = ContinuousClock.now

    private func at(_ milliseconds: Int) -> ContinuousClock.Instant { start.advanced(by: .milliseconds(milliseconds)) }

    @Test func statusAtMostOnceASecondLatestWins() {
        var queue = NotificationQueue(watchdogSpacing: nil)
        queue.status("a", now: at(0))
        #expect(queue.next(now: at(0)) == .send("STATUS=a"))
        #expect(queue.next(now: at(0)) == .idle)
        queue.status("b", now: at(100))
        queue.status("c", now: at(300))
        #expect(queue.next(now: at(300)) == .wait(until: at(1_000)))
        queue.status("d", now: at(900))
        #expect(queue.next(now: at(999)) == .wait(until: at(1_000)))
        #expect(queue.next(now: at(1_000)) == .send("STATUS=d"))
        #expect(queue.next(now: at(1_000)) == .idle)
        #expect(queue.superseded == 2)
        // After a quiet spell a new text goes out at once.
        queue.status("e", now: at(5_000))
        #expect(queue.next(now: at(5_000)) == .send("STATUS=e"))
    }

    @Test func lifecycleMessagesCarryTheirStatusAtOnce() {
        var queue = NotificationQueue(watchdogSpacing: nil)
        queue.status("a", now: at(0))
        #expect(queue.next(now: at(0)) == .send("STATUS=a"))
        queue.status("b", now: at(100))
        queue.lifecycle("RELOADING=1", status: "reloading the config", now: at(200))
        queue.lifecycle("READY=1", status: "3 apps", now: at(300))
        #expect(queue.next(now: at(300)) == .send("RELOADING=1\nSTATUS=reloading the config"))
        #expect(queue.next(now: at(300)) == .send("READY=1\nSTATUS=3 apps"))
        // "b" is older than READY's status: it never goes out.
        #expect(queue.next(now: at(300)) == .idle)
        // The second counts from READY's status.
        queue.status("c", now: at(400))
        #expect(queue.next(now: at(400)) == .wait(until: at(1_300)))
        queue.lifecycle("STOPPING=1", status: "stopping", endsStatus: true, now: at(500))
        #expect(queue.next(now: at(500)) == .send("STOPPING=1\nSTATUS=stopping"))
        queue.status("d", now: at(3_000))
        #expect(queue.next(now: at(3_000)) == .idle, "nothing replaces \"stopping\"")
    }

    @Test func watchdogOnlyWhenAskedForAndSpaced() {
        var without = NotificationQueue(watchdogSpacing: nil)
        let sentWithout = without.watchdog(now: at(0))
        #expect(!sentWithout)
        #expect(without.next(now: at(0)) == .idle)

        var queue = NotificationQueue(watchdogSpacing: .seconds(5))
        let first = queue.watchdog(now: at(0))
        let early = queue.watchdog(now: at(4_999))
        #expect(first)
        #expect(!early, "dropped, not sent later")
        #expect(queue.next(now: at(5_000)) == .send("WATCHDOG=1"))
        #expect(queue.next(now: at(5_000)) == .idle)
        let later = queue.watchdog(now: at(5_000))
        #expect(later)
        #expect(queue.next(now: at(5_000)) == .send("WATCHDOG=1"))
    }

    @Test func fullQueueDropsTheOldestAndCountsIt() {
        var queue = NotificationQueue(watchdogSpacing: nil, capacity: 2)
        queue.lifecycle("EXTEND_TIMEOUT_USEC=1", now: at(0))
        queue.lifecycle("EXTEND_TIMEOUT_USEC=2", now: at(0))
        queue.lifecycle("EXTEND_TIMEOUT_USEC=3", now: at(0))
        #expect(queue.dropped == 1)
        #expect(queue.next(now: at(0)) == .send("EXTEND_TIMEOUT_USEC=2"))
        #expect(queue.next(now: at(0)) == .send("EXTEND_TIMEOUT_USEC=3"))
        // Statuses never fill it: one text waits, the latest.
        for index in 0..<100 { queue.status("\(index)", now: at(index)) }
        #expect(queue.dropped == 1)
        #expect(queue.next(now: at(100)) == .send("STATUS=99"))
    }
}
