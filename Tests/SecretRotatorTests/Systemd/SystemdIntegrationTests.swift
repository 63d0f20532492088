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
@Suite(.serialized) struct NotifierTests {
    @Test func sendsReadyStatusReloadingAndStopping() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sr-notify-\(UUID().uuidString.prefix(8))").path
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(socket >= 0)
        defer {
            close(socket)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // sun_path holds 108 bytes with the NUL; a long $TMPDIR would make copyBytes trap.
        try #require(path.utf8.count < MemoryLayout.size(ofValue: address.sun_path), "socket path too long: \(path)")
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8) + [0])
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        func receive() -> String {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(socket, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
        }
        let notifier = Notifier()
        notifier.ready(status: "3 apps · 0 failing\nsecond line")
        #expect(receive() == "READY=1\nSTATUS=3 apps · 0 failing second line")
        notifier.reloading()
        let reloading = receive()
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        notifier.watchdog()
        #expect(receive() == "WATCHDOG=1")
        notifier.stopping()
        #expect(receive() == "STOPPING=1\nSTATUS=stopping")
        notifier.extendTimeout(by: .seconds(90))
        #expect(receive() == "EXTEND_TIMEOUT_USEC=90000000")
    }

    @Test func withoutSystemdItIsANoOp() {
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        let notifier = Notifier()
        #expect(notifier.watchdogInterval == nil)
        notifier.ready(status: "x")
    }
}
