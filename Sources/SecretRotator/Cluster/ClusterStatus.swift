#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The fleet as the running daemon sees it, kept at `<state directory>/cluster.json` (0600,
/// replaced atomically on every change) for `status`, which runs in another process: role,
/// leader, lease, watch health and the last notice per app.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable {
        /// Holds the election: rotates this host's `rotate` apps.
        case leader
        /// Holds a lease and waits in the election: follows its `rotate` apps.
        case candidate
        /// Has `rotate` apps but no lease (etcd unreachable): rotates nothing, follows by polling.
        case noLease = "no-lease"
        /// Has only `follow` apps.
        case follower
    }

    public enum Watch: String, Codable, Sendable {
        /// Notices arrive within a round trip.
        case watching
        /// No watch: followers poll GenAuth on their interval until it is back.
        case polling
    }

    public struct Notice: Codable, Sendable, Equatable {
        public var version: Int
        public var rotatedAt: Date
        public var host: String
        /// When this host received it.
        public var receivedAt: Date
    }

    public var host: String
    public var group: String
    public var role: Role
    /// The leading host's name, nil when nobody leads or it is not known.
    public var leader: String?
    /// `rotate` apps of this host the leader's candidacy does not list (nobody rotates them).
    public var unrotated: [String]
    public var leaseHeld: Bool
    /// This host leads but etcd has not confirmed its lease for longer than the TTL (a raft
    /// election, a member down): it rotates nothing until etcd does, then leads on; an
    /// operator's `rotate` waits for that.
    public var resuming: Bool = false
    public var watch: Watch
    /// The last etcd problem (nil while all is well), in words.
    public var problem: String?
    /// Per app id: the last notice from another host.
    public var lastNotices: [String: Notice]
    public var updatedAt: Date
    public var pid: Int32

    public static let fileName = "cluster.json"

    public static func read(stateDirectory: String) -> ClusterStatus? {
        let path = stateDirectory.hasSuffix("/") ? stateDirectory + fileName : stateDirectory + "/" + fileName
        guard let contents = try? SmallFile.read(path, limit: 1 << 20, followSymlinks: false) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        guard var status = try? decoder.decode(ClusterStatus.self, from: Data(contents.bytes)) else { return nil }
        let liveness = ProcessLiveness.of(status.pid)
        let gone = liveness == .gone
        let stopped = liveness == .stopped
        if gone || stopped {
            // Written by a daemon that is gone, or frozen (SIGSTOP, a debugger): it renews no
            // lease and watches nothing now, whatever it wrote last.
            status.role = status.role == .follower ? .follower : .noLease
            status.leaseHeld = false
            status.resuming = false
            status.watch = .polling
            status.leader = nil
            status.problem =
                stopped
                ? "the daemon (PID \(status.pid)) is stopped (SIGSTOP or a debugger): it renews no lease and watches nothing"
                : "the daemon that wrote this (PID \(status.pid)) is not running"
        }
        return status
    }

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(self))) ?? []
    }
}
