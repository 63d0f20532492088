import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

@Suite("GenAuthClient against the mock")
struct GenAuthClientTests {
    @Test("refresh returns the mock's new secret and the old one is gone", arguments: APIFlavour.allCases)
    func refreshRotates(flavour: APIFlavour) async throws {
        try await withGenAuthHarness(flavour: flavour) { h in
            let before = try #require(h.state.currentSecret(appId: GenAuthHarness.appId))
            let secret = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            #expect(secret.exposed == h.state.currentSecret(appId: GenAuthHarness.appId))
            #expect(secret.exposed != before)
            #expect(secret.exposed.utf8.count == 32)
            #expect(h.state.rotationCount(appId: GenAuthHarness.appId) == 1)
            #expect(h.state.rotationCount(appId: GenAuthHarness.otherAppId) == 0)
            let read = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            #expect(read == secret)
        }
    }

    @Test("requests carry the flavour's headers, a Bearer token and the token's user pool", arguments: APIFlavour.allCases)
    func flavourHeaders(flavour: APIFlavour) async throws {
        try await withGenAuthHarness(flavour: flavour) { h in
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            let refresh = try #require(h.requests(to: .refreshApplicationSecret).first)
            let prefix = "x-\(flavour.rawValue)-"
            let other = flavour == .genauth ? "x-authing-" : "x-genauth-"
            for name in ["userpool-id", "lang", "sdk-version"] {
                #expect(refresh.headerNames.contains(prefix + name))
            }
            #expect(!refresh.headerNames.contains { $0.hasPrefix(other) })
            #expect(refresh.authorizationScheme == "Bearer")
            #expect(refresh.bodyKeys == ["appId"])
            let token = try #require(h.requests(to: .getManagementToken).first)
            #expect(token.bodyKeys == ["accessKeyId", "accessKeySecret"])
            #expect(token.authorizationScheme == nil)
        }
    }

    @Test("get-application returns the record; an unknown app is permanent 404/2011")
    func getApplication() async throws {
        try await withGenAuthHarness { h in
            let app = try await h.client.getApplication(appId: GenAuthHarness.appId)
            #expect(app.appId == GenAuthHarness.appId)
            #expect(app.appName == "billing")
            #expect(app.userPoolId == h.seed.userPoolId)
            let error = try #require(await h.expectFailure { try await h.client.getApplication(appId: "no-such-app") })
            #expect(error.classification == .permanent)
            #expect(error.apiStatusCode == 404)
            #expect(error.apiCode == 2011)
            #expect(error.httpStatus == 200)
            #expect(error.requestId?.isEmpty == false)
            let refresh = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: "no-such-app") })
            #expect(refresh.classification == .permanent)
        }
    }

    @Test("one token fetch serves 100 concurrent refreshes")
    func oneTokenForHundredRefreshes() async throws {
        try await withGenAuthHarness { h in
            let secrets = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<100 {
                    let appId = i % 2 == 0 ? GenAuthHarness.appId : GenAuthHarness.otherAppId
                    group.addTask { try await h.client.refreshApplicationSecret(appId: appId).exposed }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(secrets.count == 100)
            #expect(Set(secrets).count == 100)
            #expect(h.state.tokensIssued == 1)
            #expect(h.requests(to: .getManagementToken).count == 1)
            #expect(h.state.rotationCount(appId: GenAuthHarness.appId) + h.state.rotationCount(appId: GenAuthHarness.otherAppId) == 100)
        }
    }

    @Test("a token past its expiry (minus margin) is fetched again, once")
    func expiryByClock() async throws {
        let clock = ManualClock()
        try await withGenAuthHarness(seed: GenAuthHarness.seed(tokenExpiresIn: 600), clock: clock.tokenClock) { h in
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            clock.advance(by: .seconds(530))  // inside the 60 s margin: still fresh
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            #expect(h.state.tokensIssued == 1)
            clock.advance(by: .seconds(15))  // 545 s: past 600 s minus the 60 s margin
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            #expect(h.state.tokensIssued == 2)
            #expect(h.requests(to: .getManagementToken).count == 2)
            // No request was refused along the way: the refetch was proactive.
            #expect(h.state.requestLog().allSatisfy { $0.fault == nil })
        }
    }

    @Test("a revoked token is refetched exactly once and the call succeeds")
    func revokedToken() async throws {
        try await withGenAuthHarness { h in
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            h.state.revokeAllTokens()
            let secret = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            #expect(secret.exposed == h.state.currentSecret(appId: GenAuthHarness.appId))
            #expect(h.state.tokensIssued == 2)
            #expect(h.requests(to: .refreshApplicationSecret).count == 2)
            #expect(h.state.rotationCount(appId: GenAuthHarness.appId) == 1)
        }
    }

    @Test("after a revocation, 20 concurrent calls share exactly one refetch")
    func revokedTokenConcurrent() async throws {
        try await withGenAuthHarness { h in
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            h.state.revokeAllTokens()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask { _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId) }
                }
                try await group.waitForAll()
            }
            #expect(h.state.tokensIssued == 2)
            #expect(h.requests(to: .getManagementToken).count == 2)
        }
    }

    @Test("an expired-token answer is refetched exactly once and the call succeeds")
    func expiredTokenFault() async throws {
        try await withGenAuthHarness { h in
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .expiredToken))
            let secret = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            #expect(secret.exposed == h.state.currentSecret(appId: GenAuthHarness.appId))
            #expect(h.state.tokensIssued == 2)
            #expect(h.requests(to: .refreshApplicationSecret).map(\.fault) == ["expired-token", nil])
        }
    }

    @Test("a 401 that persists gives .authentication after exactly one refetch", arguments: [false, true])
    func persistentUnauthorized(httpStatus: Bool) async throws {
        try await withGenAuthHarness { h in
            let fault: MockFault =
                httpStatus
                ? .httpStatus(401, jsonBody: true) : .businessError(statusCode: 401, apiCode: nil, message: "token invalid")
            h.state.inject(.init(endpoint: .refreshApplicationSecret, count: 50, fault: fault))
            let error = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(error.classification == .authentication)
            #expect(h.state.tokensIssued == 2)
            #expect(h.requests(to: .refreshApplicationSecret).count == 2)
            #expect(h.requests(to: .getManagementToken).count == 2)
        }
    }

    @Test("bad credentials give .authentication with a single token request and nothing else")
    func badCredentials() async throws {
        try await withGenAuthHarness(accessKeySecret: "definitely-wrong-\(UUID().uuidString)") { h in
            let error = try #require(await h.expectFailure { try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId) })
            #expect(error.classification == .authentication)
            #expect(error.operation == "get-management-token")
            #expect(error.apiStatusCode == 401)
            #expect(h.state.requestLog().count == 1)
            #expect(h.state.rotationCount(appId: GenAuthHarness.appId) == 0)
            // Another call tries again (one request), it does not loop.
            _ = await h.expectFailure { try await h.client.getApplicationSecret(appId: GenAuthHarness.appId) }
            #expect(h.state.requestLog().count == 2)
        }
    }

    @Test("concurrent callers wait on one in-flight token fetch")
    func sharedTokenFetch() async throws {
        try await withGenAuthHarness { h in
            h.state.inject(.init(endpoint: .getManagementToken, count: 1, fault: .delay(milliseconds: 300)))
            h.state.inject(.init(endpoint: .getManagementToken, count: 1, fault: .httpStatus(503, jsonBody: true)))
            // The delay rule matches first; the 503 rule is used by any second fetch.
            let results = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<10 {
                    group.addTask { (try? await h.client.getApplicationSecret(appId: GenAuthHarness.appId)) != nil }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0 })
            #expect(h.requests(to: .getManagementToken).count == 1)
            #expect(h.state.pendingFaults().count == 1)
        }
    }
}
