import Foundation
import Testing

/// An AF_UNIX datagram socket in the temp directory standing in for systemd's notify socket;
/// `NOTIFY_SOCKET` points at it from `init` until `close()`.
final class NotifySocketListener {
    let path: String
    private var socket: Int32

    /// Binds the socket and sets `NOTIFY_SOCKET` (and, with `watchdogUSec`, `WATCHDOG_USEC`).
    init(watchdogUSec: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sr-notify-\(UUID().uuidString.prefix(8))").path
        socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(socket >= 0, sourceLocation: sourceLocation)
        var address = Self.address(path)
        // sun_path holds 108 bytes with the NUL; a long $TMPDIR would make copyBytes trap.
        try #require(path.utf8.count < MemoryLayout.size(ofValue: address.sun_path), "socket path too long: \(path)")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0, sourceLocation: sourceLocation)
        // Bounds every receive: a datagram that never comes fails the test instead of hanging it.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setenv("NOTIFY_SOCKET", path, 1)
        unsetenv("WATCHDOG_PID")
        if let watchdogUSec {
            setenv("WATCHDOG_USEC", "\(watchdogUSec)", 1)
        } else {
            unsetenv("WATCHDOG_USEC")
        }
    }

    /// The next datagram, or "" when none came within the receive timeout.
    func receive() -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(socket, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
    }

    /// Fills the receive queue with one-byte datagrams from sockets of the test's own, until a
    /// fresh socket cannot send either: from then on a blocking send to this socket waits until
    /// the listener reads. Returns whether the queue is full.
    func fill() -> Bool {
        var address = Self.address(path)
        var senders: [Int32] = []
        defer { for sender in senders { Glibc.close(sender) } }
        for _ in 0..<64 {
            let sender = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard sender >= 0 else { return false }
            senders.append(sender)
            var sent = 0
            while true {
                var byte: UInt8 = 0
                let result = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(sender, &byte, 1, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                if result < 0 { break }
                sent += 1
            }
            // EAGAIN on a socket that has sent nothing: the listener's queue, not our buffer, is full.
            if sent == 0 && errno == EAGAIN { return true }
        }
        return false
    }

    /// Closes and removes the socket: a send blocked on it returns with an error.
    func stopListening() {
        if socket >= 0 { Glibc.close(socket) }
        socket = -1
        unlink(path)
    }

    /// Stops listening and unsets `NOTIFY_SOCKET` and `WATCHDOG_USEC`.
    func close() {
        stopListening()
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
    }

    deinit { close() }

    private static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8.prefix(raw.count - 1)) + [0])
        }
        return address
    }
}
