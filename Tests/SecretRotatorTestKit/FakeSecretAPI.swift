import Foundation
import Synchronization

@testable import SecretRotator

/// GenAuth as the engine sees it (`SecretAPI`), in memory: it issues a new secret per refresh,
/// records every call, and fails or holds the next calls when told to. For engine tests that
/// need "some API", not the wire; the HTTP mock (`GenAuthHarness`) stays the I/O layer's.
package final class FakeSecretAPI: SecretAPI {
    package enum Endpoint: Sendable, Equatable {
        case refresh
        case read
    }

    package struct Call: Sendable, Equatable {
        package var endpoint: Endpoint
        package var appId: String
        package init(_ endpoint: Endpoint, _ appId: String) {
            self.endpoint = endpoint
            self.appId = appId
        }
    }

    private enum Fault {
        case fail(GenAuthError)
        case status(Int)
        case hang
    }

    private struct Rule {
        var endpoint: Endpoint?
        var appId: String?
        var remaining: Int
        var fault: Fault

        func matches(_ call: Call) -> Bool {
            (endpoint == nil || endpoint == call.endpoint) && (appId == nil || appId == call.appId)
        }
    }

    private struct State {
        var secrets: [String: String] = [:]
        var rotations: [String: Int] = [:]
        var calls: [Call] = []
        var rules: [Rule] = []
        var hung: [CheckedContinuation<Void, Never>] = []
        var hungCount = 0
        var issued: [String] = []
    }

    private let state = Mutex(State())

    /// Knows `appIds`, each with a first secret; any other app is answered as GenAuth does an
    /// unknown one (404/2011).
    package init(appIds: [String]) {
        state.withLock { state in
            for id in appIds {
                let secret = Self.newSecret(&state)
                state.secrets[id] = secret
            }
        }
    }

    /// Every call, in order.
    package var calls: [Call] { state.withLock { $0.calls } }

    package func calls(_ endpoint: Endpoint, appId: String? = nil) -> Int {
        state.withLock { $0.calls.filter { $0.endpoint == endpoint && (appId == nil || $0.appId == appId) }.count }
    }

    /// The secret GenAuth accepts now for `appId`.
    package func currentSecret(appId: String) -> String? { state.withLock { $0.secrets[appId] } }

    /// Every secret this fake has issued: what a leak check looks for.
    package var everyIssuedSecret: [String] { state.withLock { $0.issued } }

    /// Refreshes applied (answered or not).
    package func rotationCount(appId: String) -> Int { state.withLock { $0.rotations[appId] ?? 0 } }

    /// The next `count` matching calls throw `error` and change nothing.
    package func failNext(_ count: Int = 1, _ endpoint: Endpoint? = nil, appId: String? = nil, with error: GenAuthError) {
        state.withLock { $0.rules.append(Rule(endpoint: endpoint, appId: appId, remaining: count, fault: .fail(error))) }
    }

    /// The next `count` matching calls fail as an answer with HTTP `status` would, classified
    /// exactly as the real client classifies it (a 5xx refresh is of unknown outcome).
    package func failNext(_ count: Int = 1, _ endpoint: Endpoint? = nil, appId: String? = nil, httpStatus status: Int) {
        state.withLock { $0.rules.append(Rule(endpoint: endpoint, appId: appId, remaining: count, fault: .status(status))) }
    }

    /// The next `count` matching calls wait, unanswered, until `releaseHung()`; then they go on
    /// as if they had just arrived. Release once `hungCalls` shows them held.
    package func hangNext(_ count: Int = 1, _ endpoint: Endpoint? = nil, appId: String? = nil) {
        state.withLock { $0.rules.append(Rule(endpoint: endpoint, appId: appId, remaining: count, fault: .hang)) }
    }

    /// How many calls are held by `hangNext` now.
    package var hungCalls: Int { state.withLock { $0.hungCount } }

    package func releaseHung() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer {
                state.hung = []
                state.hungCount = 0
            }
            return state.hung
        }
        for continuation in waiting { continuation.resume() }
    }

    package func refreshApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue {
        try await answer(Call(.refresh, appId)) { state in
            let secret = Self.newSecret(&state)
            state.secrets[appId] = secret
            state.rotations[appId, default: 0] += 1
        }
    }

    package func getApplicationSecret(appId: String) async throws(GenAuthError) -> SecretValue {
        try await answer(Call(.read, appId)) { _ in }
    }

    private func answer(_ call: Call, _ apply: (inout State) -> Void) async throws(GenAuthError) -> SecretValue {
        let fault = state.withLock { state -> Fault? in
            state.calls.append(call)
            guard let index = state.rules.firstIndex(where: { $0.matches(call) }) else { return nil }
            state.rules[index].remaining -= 1
            let fault = state.rules[index].fault
            if state.rules[index].remaining <= 0 { state.rules.remove(at: index) }
            return fault
        }
        switch fault {
        case .fail(let error)?: throw error
        case .status(let status)?: throw Self.httpError(status, call.endpoint, appId: call.appId)
        case .hang?:
            await withCheckedContinuation { continuation in
                state.withLock { state in
                    state.hung.append(continuation)
                    state.hungCount += 1
                }
            }
        case nil: break
        }
        let secret = state.withLock { state -> String? in
            guard state.secrets[call.appId] != nil else { return nil }
            apply(&state)
            return state.secrets[call.appId]
        }
        guard let secret else {
            throw GenAuthError(
                classification: .permanent, reason: .apiError, operation: Self.operation(call.endpoint, call.appId).name,
                apiStatusCode: 404, apiCode: 2011, message: "app not found")
        }
        return SecretValue(secret)
    }

    private static func newSecret(_ state: inout State) -> String {
        let secret = (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "").lowercased().prefix(32).description
        state.issued.append(secret)
        return secret
    }

    private static func operation(_ endpoint: Endpoint, _ appId: String) -> APIOperation {
        endpoint == .refresh ? .refreshApplicationSecret(appId: appId) : .getApplicationSecret(appId: appId)
    }

    private static func httpError(_ status: Int, _ endpoint: Endpoint, appId: String) -> GenAuthError {
        let operation = operation(endpoint, appId)
        return GenAuthError(
            classification: GenAuthError.classify(status: status, apiCode: nil, operation: operation), reason: .httpStatus,
            operation: operation.name, httpStatus: status)
    }
}
