#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// The rotation notices this host owes the fleet (Architecture, Fleet), published when etcd
/// accepts them, however long it refuses (all members down, the space quota reached): the
/// debt is durable in the engine's records (`AppState.announcedVersion`), and this loop
/// retries it through the one backoff until it is paid, then tells the engine. One log line
/// when publishing starts failing and one when it works again, never one per try.
///
/// A notice is `{version, rotated_at, host}` at `<prefix>/apps/<app>`, its version the previous
/// notice's plus one (compare and swap on the key's mod revision). A notice already there that
/// is at least as new as the owed rotation covers it (a previous process published it and
/// stopped before the engine recorded that, or another host announced a newer secret), so a
/// restart never announces one rotation twice. Once the notice is in, this host's intent for
/// that rotation is deleted (only one it started no later than the rotation).
actor NoticePublisher {
    struct Owed: Sendable, Equatable {
        var version: Int
        var rotatedAt: Date
        /// The notice is in etcd; only the intent's clean-up is left.
        var noticeDone = false
    }

    let settings: ClusterSettings
    let store: any ClusterStore
    let logger: Logger
    /// Called with (app id, version) once that version's notice is in and its intent gone.
    let announced: @Sendable (String, Int) async -> Void

    private var owed: [String: Owed] = [:]
    private var retry: EtcdRetry
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    /// A notice key that changed under every compare and swap this many times in a row is
    /// treated as a failed try (a hostile writer cannot make this a hot loop).
    static let conflictLimit = 5

    init(
        settings: ClusterSettings, store: any ClusterStore, retry: RetryPolicy, logger: Logger,
        announced: @escaping @Sendable (String, Int) async -> Void
    ) {
        self.settings = settings
        self.store = store
        self.retry = EtcdRetry(policy: retry)
        self.logger = logger
        self.announced = announced
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// `version` of `appID` (obtained at `rotatedAt`) is owed; a newer debt replaces an older
    /// one of the same app (one notice covers both).
    func owe(appID: String, version: Int, rotatedAt: Date) {
        if let known = owed[appID], known.version >= version { return }
        owed[appID] = Owed(version: version, rotatedAt: rotatedAt)
        wake.yield()
    }

    /// The apps whose notice is still owed, sorted.
    var owedApps: [String] { owed.keys.sorted() }

    /// Publishes what is owed whenever something is, until cancelled.
    func run() async {
        wake.yield()
        for await _ in wakes {
            while !owed.isEmpty, !Task.isCancelled {
                guard let error = await publishAll() else { break }
                let (delay, began) = retry.failed()
                if began {
                    logger.warning(
                        "cannot publish rotation notices for \(owedApps.joined(separator: ", ")) yet (\(error)); they stay owed and are published once etcd accepts them (retrying with backoff)",
                        metadata: ["event": "cluster_publish_failed"])
                }
                try? await QuietSleep.sleep(for: delay)
            }
            if Task.isCancelled { return }
        }
    }

    /// One pass over every owed notice; returns the first failure (the rest wait for the
    /// backoff: etcd is down or refusing for all of them alike), nil when all are paid.
    private func publishAll() async -> ClusterStoreError? {
        for appID in owed.keys.sorted() {
            guard let debt = owed[appID] else { continue }
            do {
                try await publish(appID, debt)
            } catch {
                return error
            }
            let failures = retry.succeeded()
            if failures > 0 {
                logger.notice(
                    "etcd accepts rotation notices again (after \(failures) failed tries); publishing the owed ones",
                    metadata: ["event": "cluster_publish_recovered"])
            }
            // A newer rotation owed meanwhile stays owed.
            if owed[appID]?.version == debt.version { owed[appID] = nil }
            await announced(appID, debt.version)
        }
        return nil
    }

    private func publish(_ appID: String, _ debt: Owed) async throws(ClusterStoreError) {
        if !debt.noticeDone {
            try await putNotice(appID, debt)
            if owed[appID]?.version == debt.version { owed[appID]?.noticeDone = true }
        }
        // Our intent for this rotation (or an earlier one of ours) is finished: delete it, so a
        // new leader does not wait out a hand-over for a rotation that was announced.
        let intentKey = settings.intentKey(appID: appID)
        if let current = try await store.get(intentKey), let intent = ClusterRecordCoding.decode(RotationIntent.self, from: current.value),
            intent.host == settings.host, intent.startedAt <= debt.rotatedAt
        {
            _ = try await store.delete(intentKey, ifModRevision: current.modRevision)
        }
    }

    private func putNotice(_ appID: String, _ debt: Owed) async throws(ClusterStoreError) {
        let key = settings.noticeKey(appID: appID)
        for _ in 0..<Self.conflictLimit {
            let current = try await store.get(key)
            let previous = current.flatMap { ClusterRecordCoding.decode(RotationNotice.self, from: $0.value) }
            // Dates on the wire keep milliseconds: anything within one is the same rotation.
            if let previous, previous.rotatedAt.timeIntervalSince(debt.rotatedAt) > -0.001 {
                logger.info(
                    "rotation notice already published (version \(previous.version) by \(previous.host))",
                    metadata: ["event": "cluster_publish_covered", "app_id": "\(appID)", "version": "\(previous.version)"])
                return
            }
            let notice = RotationNotice(version: (previous?.version ?? 0) + 1, rotatedAt: debt.rotatedAt, host: settings.host)
            if try await store.put(key, value: ClusterRecordCoding.encode(notice), ifModRevision: current?.modRevision ?? 0) {
                logger.info(
                    "rotation notice published", metadata: ["event": "cluster_published", "app_id": "\(appID)", "version": "\(notice.version)"])
                return
            }
        }
        throw ClusterStoreError(.rejected, "the notice at \(key) changed under \(Self.conflictLimit) compare-and-swaps in a row")
    }
}
