import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Every injectable fault, one by one, mapped to the class the rotation engine acts on.
@Suite("GenAuth fault classification")
struct GenAuthFaultTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var fault: MockFault
        var refresh: GenAuthError.Classification
        var read: GenAuthError.Classification
        var reason: GenAuthError.Reason
        /// Whether the refresh took effect on the mock despite the error.
        var rotated: Bool
        var testDescription: String { fault.name }
    }

    static let cases: [Case] = [
        Case(fault: .httpStatus(500, jsonBody: true), refresh: .outcomeUnknown, read: .transient, reason: .httpStatus, rotated: false),
        Case(fault: .httpStatus(500, jsonBody: false), refresh: .outcomeUnknown, read: .transient, reason: .httpStatus, rotated: false),
        Case(fault: .httpStatus(502, jsonBody: true), refresh: .outcomeUnknown, read: .transient, reason: .httpStatus, rotated: false),
        Case(fault: .httpStatus(502, jsonBody: false), refresh: .outcomeUnknown, read: .transient, reason: .httpStatus, rotated: false),
        Case(fault: .httpStatus(503, jsonBody: true), refresh: .transient, read: .transient, reason: .httpStatus, rotated: false),
        Case(fault: .httpStatus(503, jsonBody: false), refresh: .transient, read: .transient, reason: .httpStatus, rotated: false),
        Case(fault: .throttledInBody, refresh: .transient, read: .transient, reason: .apiError, rotated: false),
        Case(fault: .throttledHTTP(retryAfterSeconds: 7), refresh: .transient, read: .transient, reason: .httpStatus, rotated: false),
        Case(
            fault: .businessError(statusCode: 400, apiCode: nil, message: "bad"), refresh: .permanent, read: .permanent,
            reason: .apiError, rotated: false),
        Case(
            fault: .businessError(statusCode: 403, apiCode: 2333, message: "no permission"), refresh: .permanent,
            read: .permanent, reason: .apiError, rotated: false),
        Case(
            fault: .businessError(statusCode: 404, apiCode: 2011, message: "app not found"), refresh: .permanent,
            read: .permanent, reason: .apiError, rotated: false),
        Case(fault: .dropBeforeProcessing, refresh: .outcomeUnknown, read: .transient, reason: .connectionLost, rotated: false),
        Case(fault: .dropAfterProcessing, refresh: .outcomeUnknown, read: .transient, reason: .connectionLost, rotated: true),
        Case(fault: .malformedJSON, refresh: .outcomeUnknown, read: .transient, reason: .malformedResponse, rotated: true),
        Case(fault: .htmlPage, refresh: .outcomeUnknown, read: .transient, reason: .malformedResponse, rotated: false),
        Case(fault: .oversizeBody(bytes: 128 * 1024), refresh: .outcomeUnknown, read: .transient, reason: .oversizeResponse, rotated: true),
        Case(fault: .emptySecret, refresh: .outcomeUnknown, read: .transient, reason: .invalidSecret, rotated: true),
        Case(fault: .invalidSecret, refresh: .outcomeUnknown, read: .transient, reason: .invalidSecret, rotated: true),
        // The old client took the decoy (the first "secret") and wrote a dead secret.
        Case(fault: .duplicateSecretKey, refresh: .outcomeUnknown, read: .transient, reason: .malformedResponse, rotated: true),
    ]

    /// `request_timeout` bounds the whole exchange, body included: with 1.5 s per byte the
    /// mock's answer takes minutes, and the old client waited for all of it (the deadline of
    /// async-http-client ends with the response head). The bound asserted is the acceptance
    /// line's "timeout plus a small margin", generous for a loaded CI machine.
    @Test("a trickled body fails within request_timeout", arguments: [MockEndpoint.refreshApplicationSecret, .getApplicationSecret])
    func trickledBodyTimesOut(_ endpoint: MockEndpoint) async throws {
        try await withGenAuthHarness(requestTimeout: .seconds(2)) { h in
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            h.state.inject(.init(endpoint: endpoint, appId: GenAuthHarness.appId, count: 1, fault: .trickleBody(intervalMilliseconds: 1_500)))
            let started = ContinuousClock.now
            let error = try #require(
                await h.expectFailure {
                    if endpoint == .refreshApplicationSecret {
                        _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
                    } else {
                        _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
                    }
                })
            let elapsed = ContinuousClock.now - started
            #expect(error.reason == .timeout)
            #expect(error.classification == (endpoint == .refreshApplicationSecret ? .outcomeUnknown : .transient))
            #expect(elapsed < .seconds(6), "took \(elapsed)")
        }
    }

    @Test("a refresh fault maps to its class and returns no secret", arguments: cases)
    func refreshFault(_ c: Case) async throws {
        try await withGenAuthHarness { h in
            // Warm the token first so the fault hits the refresh itself.
            let before = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            h.state.inject(.init(endpoint: .refreshApplicationSecret, appId: GenAuthHarness.appId, count: 1, fault: c.fault))
            let error = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(error.classification == c.refresh)
            #expect(error.reason == c.reason)
            #expect(error.operation == "refresh-application-secret")
            #expect(h.state.rotationCount(appId: GenAuthHarness.appId) == (c.rotated ? 1 : 0))
            // The fault was used once and the client did not retry on its own.
            #expect(h.requests(to: .refreshApplicationSecret).count == 1)
            #expect(h.state.pendingFaults().isEmpty)
            // Reconciling reads the truth: the new secret if it rotated, the old one if not.
            let truth = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            #expect(truth.exposed == h.state.currentSecret(appId: GenAuthHarness.appId))
            #expect((truth != before) == c.rotated)
        }
    }

    @Test("a read fault maps to its class", arguments: cases)
    func readFault(_ c: Case) async throws {
        try await withGenAuthHarness { h in
            _ = try await h.client.getApplication(appId: GenAuthHarness.appId)
            h.state.inject(.init(endpoint: .getApplicationSecret, count: 1, fault: c.fault))
            let error = try #require(await h.expectFailure { try await h.client.getApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(error.classification == c.read)
            #expect(error.reason == c.reason)
            #expect(h.requests(to: .getApplicationSecret).count == 1)
        }
    }

    @Test("HTTP 429 carries Retry-After; the body statusCode 429 does not invent one")
    func retryAfter() async throws {
        try await withGenAuthHarness { h in
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .throttledHTTP(retryAfterSeconds: 7)))
            let http = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(http.httpStatus == 429)
            #expect(http.apiStatusCode == 429)
            #expect(http.retryAfter == .seconds(7))
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .throttledInBody))
            let body = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(body.httpStatus == 200)
            #expect(body.apiStatusCode == 429)
            #expect(body.retryAfter == nil)
            #expect(body.message?.isEmpty == false)
        }
    }

    @Test("a refresh that times out is outcomeUnknown, and the mock really rotates")
    func timeoutAfterSend() async throws {
        try await withGenAuthHarness(requestTimeout: .seconds(1)) { h in
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .delay(milliseconds: 3000)))
            let error = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(error.classification == .outcomeUnknown)
            #expect(error.reason == .timeout)
            try await waitUntil { h.state.rotationCount(appId: GenAuthHarness.appId) == 1 }
            let truth = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            #expect(truth.exposed == h.state.currentSecret(appId: GenAuthHarness.appId))
        }
    }

    @Test("a read that times out is transient")
    func readTimeout() async throws {
        try await withGenAuthHarness(requestTimeout: .seconds(1)) { h in
            _ = try await h.client.getApplication(appId: GenAuthHarness.appId)
            h.state.inject(.init(endpoint: .getApplicationSecret, count: 1, fault: .delay(milliseconds: 3000)))
            let error = try #require(await h.expectFailure { try await h.client.getApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(error.classification == .transient)
            #expect(error.reason == .timeout)
        }
    }

    @Test("a delay within the timeout is just slow")
    func shortDelay() async throws {
        try await withGenAuthHarness(requestTimeout: .seconds(5)) { h in
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .delay(milliseconds: 200)))
            let secret = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            #expect(secret.exposed == h.state.currentSecret(appId: GenAuthHarness.appId))
        }
    }

    @Test("faults on the token endpoint: 503, HTML and an empty token are transient, 403 is authentication")
    func tokenFaults() async throws {
        let expectations: [(MockFault, GenAuthError.Classification)] = [
            (.httpStatus(503, jsonBody: false), .transient),
            (.htmlPage, .transient),
            (.emptySecret, .transient),
            (.businessError(statusCode: 403, apiCode: nil, message: "forbidden"), .authentication),
        ]
        for (fault, expected) in expectations {
            try await withGenAuthHarness { h in
                h.state.inject(.init(endpoint: .getManagementToken, count: 1, fault: fault))
                let error = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
                #expect(error.classification == expected, "\(fault.name)")
                #expect(error.operation == "get-management-token")
                #expect(h.requests(to: .refreshApplicationSecret).isEmpty)
            }
        }
    }

    @Test("a refused connection is transient and not connected")
    func connectionRefused() async throws {
        // Bind a port, then close it, so nothing listens there.
        let probe = try await GenAuthMockServer.start(state: GenAuthMockState(seed: GenAuthHarness.seed()))
        let port = probe.port
        try await probe.stop()
        let client = try GenAuthClient(
            configuration: .init(
                host: "http://127.0.0.1:\(port)", accessKeyId: "ak", accessKeySecret: SecretValue("sk"),
                requestTimeout: .seconds(5)))
        do {
            _ = try await client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            Issue.record("expected a connection failure")
        } catch {
            #expect(error.classification == .transient)
            #expect(error.reason == .notConnected)
        }
        try await client.shutdown()
    }

    @Test("TLS to a server that does not speak it fails before sending, as permanent")
    func tlsFailure() async throws {
        let plain = try await GenAuthMockServer.start(state: GenAuthMockState(seed: GenAuthHarness.seed()))
        let client = try GenAuthClient(
            configuration: .init(
                host: "https://127.0.0.1:\(plain.port)", accessKeyId: "ak", accessKeySecret: SecretValue("sk"),
                requestTimeout: .seconds(5)))
        do {
            _ = try await client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            Issue.record("expected a TLS failure")
        } catch {
            #expect(error.classification == .permanent)
            #expect(error.reason == .notConnected)
        }
        try await client.shutdown()
        try await plain.stop()
        #expect(plain.state.requestLog().isEmpty)
    }

    @Test("an unresolvable host is transient and not connected")
    func dnsFailure() async throws {
        let client = try GenAuthClient(
            configuration: .init(
                host: "http://no-such-host.invalid", accessKeyId: "ak", accessKeySecret: SecretValue("sk"),
                requestTimeout: .seconds(4)))
        do {
            _ = try await client.getApplicationSecret(appId: GenAuthHarness.appId)
            Issue.record("expected a DNS failure")
        } catch {
            #expect(error.classification == .transient)
            #expect(error.reason == .notConnected)
        }
        try await client.shutdown()
    }
}
