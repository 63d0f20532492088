#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The seam between the fleet logic and etcd: the handful of etcd v3 calls the
/// fleet needs, in etcd's own terms (leases, the election API, transactions, watches), and
/// nothing of the wire. `EtcdGatewayClient` speaks it over etcd's JSON gateway; the engine
/// never sees it, only `RotationFence`.
///
/// Keys are UTF-8 paths such as `/secret-rotator/<pool>/apps/<app id>`; values are bytes.
/// Revisions are etcd's store revisions (`int64`, 0 = "absent" in compares).
public protocol ClusterStore: Sendable {
    /// `LeaseGrant`: a lease of `ttl` (whole seconds); returns its id.
    func grantLease(ttl: Duration) async throws(ClusterStoreError) -> Int64
    /// `LeaseKeepAlive`, one round: true while the lease lives, false once etcd has expired it.
    func keepAlive(lease: Int64) async throws(ClusterStoreError) -> Bool
    /// `LeaseRevoke`: ends the lease and deletes every key attached to it (our election key).
    func revoke(lease: Int64) async throws(ClusterStoreError)
    /// `Election.Campaign`: blocks until this caller leads `election`; returns the leader key
    /// etcd made for it (`<election>/<lease hex>`), which lives exactly as long as the lease.
    func campaign(election: String, lease: Int64, value: [UInt8]) async throws(ClusterStoreError) -> ClusterKeyValue
    /// `Election.Proclaim`: the leader (`leader`: the key its campaign returned) replaces its
    /// value without giving up the election.
    func proclaim(election: String, leader: ClusterKeyValue, value: [UInt8]) async throws(ClusterStoreError)
    /// `Election.Leader`: the current leader's key and value, nil when nobody leads.
    func leader(election: String) async throws(ClusterStoreError) -> ClusterKeyValue?
    /// `Range` over every key starting with `prefix`, with the store revision it was read at.
    func range(prefix: String) async throws(ClusterStoreError) -> (values: [ClusterKeyValue], revision: Int64)
    /// `Range` of one key.
    func get(_ key: String) async throws(ClusterStoreError) -> ClusterKeyValue?
    /// `Txn`: puts `key = value` only if `guardKey` exists with `createRevision` (etcd's own
    /// fencing idiom, `concurrency.Election`); returns false, changing nothing, otherwise.
    /// The revision of the put is returned on success.
    func put(_ key: String, value: [UInt8], ifKey guardKey: String, hasCreateRevision createRevision: Int64)
        async throws(ClusterStoreError) -> Int64?
    /// `Txn`: puts `key = value` only if `key`'s mod revision is `modRevision` (0: absent).
    func put(_ key: String, value: [UInt8], ifModRevision modRevision: Int64) async throws(ClusterStoreError) -> Bool
    /// `Txn`: deletes `key` only if its mod revision is `modRevision`.
    func delete(_ key: String, ifModRevision modRevision: Int64) async throws(ClusterStoreError) -> Bool
    /// `Watch` of every key under `prefix` from `revision` on (nothing in between is missed).
    /// The stream ends with an error when the watch breaks; the caller starts a new one.
    func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<[ClusterEvent], any Error>
}

/// One key as etcd holds it (`mvccpb.KeyValue`).
public struct ClusterKeyValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var lease: Int64

    public init(key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, lease: Int64 = 0) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.lease = lease
    }
}

/// One change a watch reported (`mvccpb.Event`).
public struct ClusterEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case put, delete }
    public var kind: Kind
    public var value: ClusterKeyValue

    public init(kind: Kind, value: ClusterKeyValue) {
        self.kind = kind
        self.value = value
    }
}

/// A failed etcd call, in the shape of NIO's `FileSystemError`: what failed (`code`, open to
/// new members), a readable message, the endpoint, the underlying error (`cause`: the HTTP
/// client's error, or `EtcdErrorText` when etcd answered with an error) and where in our
/// code it was raised (`location`).
public struct ClusterStoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: Hashable, Sendable { case unreachable, timeout, rejected, badAnswer, watchEnded, denied, unauthenticated }
        fileprivate var value: Value
        /// No member could be reached (connection refused, reset, DNS).
        public static let unreachable = Code(value: .unreachable)
        /// A member did not answer in time.
        public static let timeout = Code(value: .timeout)
        /// etcd answered with an error (no leader, lease not found, compacted...).
        public static let rejected = Code(value: .rejected)
        /// The answer was not what etcd's gateway sends.
        public static let badAnswer = Code(value: .badAnswer)
        /// A watch stream ended or was cancelled by etcd.
        public static let watchEnded = Code(value: .watchEnded)
        /// etcd's access control refused: a wrong user name or password, a role without
        /// permission on the key, or a client certificate the gateway will not take. Asking
        /// another member changes nothing; the operator must.
        public static let denied = Code(value: .denied)
        /// The auth token was invalid or had expired; the client has dropped it, and the next
        /// call authenticates again.
        public static let unauthenticated = Code(value: .unauthenticated)

        public var description: String {
            switch value {
            case .unreachable: "unreachable"
            case .timeout: "timeout"
            case .rejected: "rejected"
            case .badAnswer: "bad answer"
            case .watchEnded: "watch ended"
            case .denied: "denied"
            case .unauthenticated: "unauthenticated"
            }
        }
    }

    public var code: Code
    public var message: String
    public var endpoint: String?
    public var cause: (any Error)?
    /// `file:line` where the error was raised, for bug reports.
    public var location: String

    public init(_ code: Code, _ message: String, endpoint: String? = nil, cause: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.endpoint = endpoint
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    /// An error etcd answered with (the `error` field of a gateway answer), as `cause`.
    public init(_ code: Code, _ message: String, endpoint: String? = nil, etcdSaid text: String?, file: String = #fileID, line: Int = #line) {
        self.init(code, message, endpoint: endpoint, cause: text.map(EtcdErrorText.init), file: file, line: line)
    }

    /// What etcd said, when it said it in an error answer.
    public var etcdText: String? { (cause as? EtcdErrorText)?.text }

    public var description: String {
        var text = message
        if let endpoint { text += " (\(endpoint))" }
        // A cause of this domain (a member that stopped answering) is named by its message:
        // its endpoint and own cause would repeat what this one says.
        let causeText = cause.map { ($0 as? ClusterStoreError)?.message ?? String(describing: $0) }
        if let causeText, !causeText.isEmpty { text += ": \(causeText)" }
        return text
    }
}

/// The text of an etcd error answer ("etcdserver: no leader", "permission denied"...), as an
/// error to carry as a `ClusterStoreError`'s cause.
public struct EtcdErrorText: Error, Sendable, Equatable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public var description: String { text }
}
