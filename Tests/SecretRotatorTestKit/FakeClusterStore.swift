import Foundation
import Synchronization

@testable import SecretRotator

/// An in-memory etcd for one host's coordinator: keys with revisions, leases, an election
/// whose first key leads, watches, and faults a test switches on: `refuseWrites(under:)`
/// (etcd past its space quota: every put and delete under a prefix is refused while reads and
/// keepalives work) and `down` (no member answers anything).
package final class FakeClusterStore: ClusterStore {
    private struct State {
var keys: [String: ClusterKeyValue] = [:]
var revision: Int64 = 1
var leases: Set<Int64> = []
var nextLease: Int64 = 0x100
var refusedPrefix: String?
var down = false
var writeAttempts: [String: Int] = [:]
var watchers: [(prefix: String, continuation: AsyncThrowingStream<[ClusterEvent], any Error>.Continuation)] = []
    }

    private let state = Mutex(State())

    package init() {}

    /// Refuses every write under `prefix` from now on (nil: accepts all again).
    package func refuseWrites(under prefix: String?) { state.withLock { $0.refusedPrefix = prefix } }

    /// No member answers (every call fails as unreachable; open watches end).
    package func setDown(_ down: Bool) {
let ended = state.withLock { state -> [AsyncThrowingStream<[ClusterEvent], any Error>.Continuation] in
            state.down = down
            guard down else { return [] }
            defer { state.watchers = [] }
            return state.watchers.map(\.continuation)
        }
        for continuation in ended { continuation.finish(throwing: ClusterStoreError(.unreachable, "connection refused")) }
    }

    /// How many puts and deletes of `key` were tried, refused or not.
    package func writeAttempts(_ key: String) -> Int { state.withLock { $0.writeAttempts[key] ?? 0 } }

    package func value(_ key: String) -> ClusterKeyValue? { state.withLock { $0.keys[key] } }

    private func checkUp() throws(ClusterStoreError) {
        if state.withLock({ $0.down }) { throw ClusterStoreError(.unreachable, "connection refused", endpoint: "fake") }
    }

    /// Counts a write of `key`, and refuses it as etcd does past its quota.
    private func checkWritable(_ key: String) throws(ClusterStoreError) {
        try checkUp()
let refused = state.withLock { state -> Bool in
            state.writeAttempts[key, default: 0] += 1
            return state.refusedPrefix.map { key.hasPrefix($0) } ?? false
        }
        if refused { throw ClusterStoreError(.rejected, "etcdserver: mvcc: database space exceeded", endpoint: "fake") }
    }

    /// Stores `value` at `key` (nil deletes), bumps the revision, tells the watchers.
    private func set(_ key: String, _ value: [UInt8]?, lease: Int64 = 0) -> Int64 {
let (revision, events) = state.withLock { state -> (Int64, [(AsyncThrowingStream<[ClusterEvent], any Error>.Continuation, ClusterEvent)]) in
            state.revision += 1
            let revision = state.revision
            let event: ClusterEvent
            if let value {
                let created = state.keys[key]?.createRevision ?? revision
                let kv = ClusterKeyValue(key: key, value: value, createRevision: created, modRevision: revision, lease: lease)
                state.keys[key] = kv
                event = ClusterEvent(kind: .put, value: kv)
            } else {
                state.keys[key] = nil
                event = ClusterEvent(kind: .delete, value: ClusterKeyValue(key: key, value: [], createRevision: 0, modRevision: revision))
            }
            return (revision, state.watchers.filter { key.hasPrefix($0.prefix) }.map { ($0.continuation, event) })
        }
        for (continuation, event) in events { continuation.yield([event]) }
        return revision
    }

    package func grantLease(ttl: Duration) async throws(ClusterStoreError) -> Int64 {
        try checkUp()
        return state.withLock { state in
            state.nextLease += 1
            state.leases.insert(state.nextLease)
            return state.nextLease
        }
    }

    package func keepAlive(lease: Int64) async throws(ClusterStoreError) -> Bool {
        try checkUp()
        return state.withLock { $0.leases.contains(lease) }
    }

    package func revoke(lease: Int64) async throws(ClusterStoreError) {
        try checkUp()
let keys = state.withLock { state -> [String] in
            state.leases.remove(lease)
            return state.keys.values.filter { $0.lease == lease }.map(\.key)
        }
        for key in keys { _ = set(key, nil) }
    }

    package func campaign(election: String, lease: Int64, value: [UInt8]) async throws(ClusterStoreError) -> ClusterKeyValue {
        try checkUp()
let key = "\(election)/\(String(lease, radix: 16))"
        if let existing = state.withLock({ $0.keys[key] }) { return existing }
        _ = set(key, value, lease: lease)
        guard let made = state.withLock({ $0.keys[key] }) else { throw ClusterStoreError(.rejected, "lease not found") }
        return made
    }

    package func proclaim(election: String, leader: ClusterKeyValue, value: [UInt8]) async throws(ClusterStoreError) {
        try checkWritable(leader.key)
        _ = set(leader.key, value, lease: leader.lease)
    }

    package func leader(election: String) async throws(ClusterStoreError) -> ClusterKeyValue? {
        try checkUp()
        return state.withLock { $0.keys.values.filter { $0.key.hasPrefix(election + "/") }.min { $0.createRevision < $1.createRevision } }
    }

    package func range(prefix: String) async throws(ClusterStoreError) -> (values: [ClusterKeyValue], revision: Int64) {
        try checkUp()
        return state.withLock { state in
            (state.keys.values.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }, state.revision)
        }
    }

    package func get(_ key: String) async throws(ClusterStoreError) -> ClusterKeyValue? {
        try checkUp()
        return state.withLock { $0.keys[key] }
    }

    package func put(_ key: String, value: [UInt8], ifKey guardKey: String, hasCreateRevision createRevision: Int64)
        async throws(ClusterStoreError) -> Int64?
    {
        try checkWritable(key)
        guard state.withLock({ $0.keys[guardKey]?.createRevision == createRevision }) else { return nil }
        return set(key, value)
    }

    package func put(_ key: String, value: [UInt8], ifModRevision modRevision: Int64) async throws(ClusterStoreError) -> Bool {
        try checkWritable(key)
        guard state.withLock({ ($0.keys[key]?.modRevision ?? 0) == modRevision }) else { return false }
        _ = set(key, value)
        return true
    }

    package func delete(_ key: String, ifModRevision modRevision: Int64) async throws(ClusterStoreError) -> Bool {
        try checkWritable(key)
        guard state.withLock({ $0.keys[key]?.modRevision == modRevision }) else { return false }
        _ = set(key, nil)
        return true
    }

    package func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<[ClusterEvent], any Error> {
let (stream, continuation) = AsyncThrowingStream.makeStream(of: [ClusterEvent].self)
let down = state.withLock { state -> Bool in
            if !state.down { state.watchers.append((prefix, continuation)) }
            return state.down
        }
        if down { continuation.finish(throwing: ClusterStoreError(.unreachable, "connection refused")) }
        return stream
    }
}
