#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// The gRPC gateway's wire: unary calls and the watch stream over HTTP/JSON, failover between
/// the configured endpoints, and the liveness bound every call runs under.
extension EtcdGatewayClient {
    /// Runs a long call (a watch, a campaign) on `endpoint` while that member answers a
    /// linearizable read (which needs quorum) every `livenessInterval`; when it stops
    /// answering, the call is cancelled and fails, so the caller moves to another member.
    func whileAlive<T: Sendable>(
        _ endpoint: String, _ body: @escaping @Sendable () async throws(ClusterStoreError) -> T
    ) async throws(ClusterStoreError) -> T {
        let result: Result<T, ClusterStoreError> = await withTaskGroup(of: Result<T, ClusterStoreError>?.self) { group in
            group.addTask {
                do throws(ClusterStoreError) {
                    return .success(try await body())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await QuietSleep.sleep(for: self.livenessInterval)
                    if Task.isCancelled { return nil }
                    do throws(ClusterStoreError) {
                        let answer = try await self.callRenewingToken(
                            "/v3/kv/range", ["key": .string(Self.base64(self.prefix + "/"))], endpoint: endpoint,
                            deadline: self.unaryTimeout)
                        if answer.object("header") == nil {
                            throw ClusterStoreError(.rejected, "etcd refused the liveness read", etcdSaid: answer.errorText)
                        }
                    } catch {
                        if Task.isCancelled { return nil }
                        return .failure(
                            ClusterStoreError(.timeout, "the member stopped answering", endpoint: endpoint, cause: error))
                    }
                }
                return nil
            }
            var outcome: Result<T, ClusterStoreError>?
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            return outcome ?? .failure(ClusterStoreError(.watchEnded, "cancelled", endpoint: endpoint))
        }
        return try result.get()
    }

    func streamWatch(
        endpoint: String, body: [String: JSONValue], into continuation: AsyncThrowingStream<[ClusterEvent], any Error>.Continuation
    ) async throws(ClusterStoreError) {
        let sentToken = try await authorization(endpoint: endpoint)
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(endpoint + "/v3/watch", body, token: sentToken), deadline: .distantFuture)
        } catch {
            throw ClusterStoreError(.unreachable, "cannot start a watch", endpoint: endpoint, cause: error)
        }
        guard response.status == .ok else {
            let text = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
            let error = JSONValue.parse(Array(text.utf8))?.objectValue.flatMap { JSONObject($0).errorText } ?? text
            throw accessProblem(error, path: "/v3/watch", endpoint: endpoint, sentToken: sentToken)
                ?? ClusterStoreError(.rejected, "watch refused with HTTP \(response.status.code)", endpoint: endpoint)
        }
        var pending: [UInt8] = []
        do {
            for try await chunk in response.body {
                pending.append(contentsOf: chunk.readableBytesView)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    let events: [ClusterEvent]?
                    do {
                        events = try Self.watchEvents(line, endpoint: endpoint)
                    } catch {
                        // A watch created with an expired token, or on a range the role may not read.
                        throw accessProblem(error.etcdText ?? "", path: "/v3/watch", endpoint: endpoint, sentToken: sentToken) ?? error
                    }
                    if let events, !events.isEmpty { continuation.yield(events) }
                }
                if pending.count > Self.maximumAnswer {
                    throw ClusterStoreError(.badAnswer, "a watch message is larger than 4 MiB", endpoint: endpoint)
                }
            }
        } catch {
            throw (error as? ClusterStoreError)
                ?? ClusterStoreError(.watchEnded, "the watch stream broke", endpoint: endpoint, cause: error)
        }
    }

    /// One line of a watch stream: the events it carries (none for "created" and progress
    /// messages), or an error when etcd cancelled the watch (e.g. a compacted revision).
    static func watchEvents(_ line: [UInt8], endpoint: String) throws(ClusterStoreError) -> [ClusterEvent]? {
        guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) else { return nil }
        guard let object = JSONValue.parse(line)?.objectValue else {
            throw ClusterStoreError(.badAnswer, "a watch message is not JSON", endpoint: endpoint)
        }
        if let error = object["error"] {
            throw ClusterStoreError(.rejected, "etcd ended the watch", endpoint: endpoint, etcdSaid: JSONObject(error.objectValue ?? [:]).errorText ?? "error")
        }
        guard let result = JSONObject(object).object("result") else {
            throw ClusterStoreError(.badAnswer, "a watch message has no result", endpoint: endpoint)
        }
        if result.bool("canceled") == true {
            let reason = result.string("cancel_reason") ?? (result.int64("compact_revision").map { "revision compacted up to \($0)" } ?? "cancelled")
            throw ClusterStoreError(.rejected, "etcd cancelled the watch", endpoint: endpoint, etcdSaid: reason)
        }
        return (result.array("events") ?? []).compactMap { event -> ClusterEvent? in
            guard let event = event.objectValue, let kv = JSONObject(event).object("kv"), let value = keyValue(kv) else { return nil }
            let kind: ClusterEvent.Kind = JSONObject(event).string("type") == "DELETE" ? .delete : .put
            return ClusterEvent(kind: kind, value: value)
        }
    }

    func txn(compare: [String: JSONValue], success: [[String: JSONValue]]) async throws(ClusterStoreError) -> JSONObject {
        try await unary("/v3/kv/txn", ["compare": .array([.object(compare)]), "success": .array(success.map { .object($0) })])
    }

    func currentEndpoint() -> String {
        endpoints[preferred.withLock { $0 } % endpoints.count]
    }

    func advance(from endpoint: String) {
        guard let index = endpoints.firstIndex(of: endpoint) else { return }
        preferred.withLock { current in
            if current % endpoints.count == index { current = (index + 1) % endpoints.count }
        }
    }

    /// Tries each member once, starting with the last that answered, each within `unaryTimeout`.
    /// A refusal by etcd's access control (`.denied`) ends it at once: every member has the
    /// same users and roles.
    func unary(_ path: String, _ body: [String: JSONValue], allowError: Bool = false) async throws(ClusterStoreError) -> JSONObject {
        var last: ClusterStoreError?
        for _ in 0..<endpoints.count {
            let endpoint = currentEndpoint()
            do {
                let answer = try await callRenewingToken(path, body, endpoint: endpoint, deadline: unaryTimeout)
                if !allowError, let error = answer.errorText {
                    // "etcdserver: no leader" and friends: another member may have quorum.
                    last = ClusterStoreError(.rejected, "etcd refused \(path)", endpoint: endpoint, etcdSaid: error)
                    advance(from: endpoint)
                    continue
                }
                return answer
            } catch where error.code == .denied {
                throw error
            } catch {
                last = error
                advance(from: endpoint)
            }
        }
        throw last ?? ClusterStoreError(.unreachable, "no etcd endpoint configured")
    }


    func request(_ url: String, _ body: [String: JSONValue], token: String? = nil) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: token) }
        request.body = .bytes(ByteBuffer(bytes: JSONValue.object(body).serialized()))
        return request
    }

    static func keyValue(_ object: JSONObject) -> ClusterKeyValue? {
        guard let key = object.bytes("key") else { return nil }
        return ClusterKeyValue(
            key: String(decoding: key, as: UTF8.self), value: object.bytes("value") ?? [],
            createRevision: object.int64("create_revision") ?? 0, modRevision: object.int64("mod_revision") ?? 0,
            lease: object.int64("lease") ?? 0)
    }

    /// etcd's prefix range end: the prefix with its last byte incremented (`clientv3.GetPrefixRangeEnd`).
    static func rangeEnd(_ prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]
    }

    static func base64(_ text: String) -> String { base64(Array(text.utf8)) }
    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}
