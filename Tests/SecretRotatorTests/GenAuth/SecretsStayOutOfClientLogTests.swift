import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Every harness-based test already checks its own log for leaks; this one drives every
/// code path that logs (success, token refetch, each error class) in one client at trace
/// level, so the check covers the lines that only appear on those paths.
@Suite("No secret, token or access key secret in the client's log or errors")
struct SecretsStayOutOfClientLogTests {
    @Test("no secret, token or access key secret reaches the log or an error description")
    func wholeClientFlow() async throws {
        var captured: LogCapture?
        try await withGenAuthHarness { h in
            captured = h.capture
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            _ = try await h.client.getApplication(appId: GenAuthHarness.appId)
            h.state.revokeAllTokens()
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.otherAppId)
            let faults: [MockFault] = [
                .httpStatus(500, jsonBody: true), .httpStatus(502, jsonBody: false), .throttledHTTP(retryAfterSeconds: 3),
                .dropAfterProcessing, .malformedJSON, .htmlPage, .oversizeBody(bytes: 100_000), .emptySecret, .invalidSecret,
                .businessError(statusCode: 404, apiCode: 2011, message: "gone"),
            ]
            for fault in faults {
                h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: fault))
                _ = await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) }
            }
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 2, fault: .expiredToken))
            _ = await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) }
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
        }
        // The check is only meaningful if the client did log on these paths. These debug and
        // notice lines carry no `event`, so their messages are what identifies them.
        let lines = try #require(captured).entries.map { "\($0.message)" }
        #expect(lines.contains { $0.contains("application secret rotated") })
        #expect(lines.contains { $0.contains("management token refused") })
        #expect(lines.contains { $0.contains("GenAuth call failed") })
        #expect(lines.contains { $0.contains("fetching management token") })
    }

    @Test("bad credentials: the wrong access key secret is not logged either")
    func badKeyNotLogged() async throws {
        let wrong = "wrong-\(UUID().uuidString)"
        try await withGenAuthHarness(accessKeySecret: wrong) { h in
            _ = await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) }
            #expect(h.capture.leaks(of: [wrong]).isEmpty)
            #expect(!h.capture.renderedText.isEmpty)
        }
    }
}
