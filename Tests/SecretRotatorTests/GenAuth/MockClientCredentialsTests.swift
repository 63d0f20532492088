import AsyncHTTPClient
import Foundation
import GenAuthMock
import NIOCore
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// The consumer's side of a rotation at the mock: `POST /oidc/token` with client credentials
/// (RFC 6749 §4.4) accepts only the app's current secret, by `client_secret_post` and by
/// `client_secret_basic` (RFC 6749 §2.3.1), answers the OAuth 2.0 error shape otherwise (§5.2), and
/// counts accepted and refused calls per app (admin API and `clientCredentialsCalls`).
@Suite(.timeLimit(.minutes(1)), .tags(.addressSanitizer)) struct MockClientCredentialsTests {
    struct Answer {
        var status: UInt
        var json: [String: Any]
        /// Lowercased names.
        var headers: [String: [String]]
    }

    static func call(
        _ harness: GenAuthHarness, form: String, basic: (String, String)? = nil,
        contentType: String = "application/x-www-form-urlencoded"
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: harness.server.baseURL + "/oidc/token")
        request.method = .POST
        request.headers.add(name: "content-type", value: contentType)
        if let (id, secret) = basic {
            let pair = "\(formEncoded(id)):\(formEncoded(secret))"
            request.headers.add(name: "authorization", value: "Basic " + Data(pair.utf8).base64EncodedString())
        }
        request.body = .bytes(ByteBuffer(string: form))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        let headers = Dictionary(grouping: response.headers, by: { $0.name.lowercased() }).mapValues { $0.map(\.value) }
        return Answer(status: response.status.code, json: json, headers: headers)
    }

    static func formEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    @Test func theCurrentSecretGetsATokenByPostAndByBasic() async throws {
        try await withGenAuthHarness { harness in
            let app = GenAuthHarness.appId
            let secret = try #require(harness.state.currentSecret(appId: app))
            let posted = try await Self.call(
                harness, form: "grant_type=client_credentials&client_id=\(app)&client_secret=\(Self.formEncoded(secret))")
            #expect(posted.status == 200)
            #expect(posted.json["token_type"] as? String == "Bearer")
            #expect((posted.json["access_token"] as? String)?.isEmpty == false)
            #expect((posted.json["expires_in"] as? Int ?? 0) > 0)
            #expect(posted.headers["cache-control"]?.first == "no-store")
            let basic = try await Self.call(harness, form: "grant_type=client_credentials", basic: (app, secret))
            #expect(basic.status == 200)
            #expect(harness.state.clientCredentialsCalls(appId: app) == .init(accepted: 2, refused: 0))
        }
    }

    @Test func aRotatedAwaySecretIsRefusedAsInvalidClient() async throws {
        try await withGenAuthHarness { harness in
            let app = GenAuthHarness.appId
            let old = try #require(harness.state.currentSecret(appId: app))
            let new = try await harness.client.refreshApplicationSecret(appId: app)
            let posted = try await Self.call(harness, form: "grant_type=client_credentials&client_id=\(app)&client_secret=\(old)")
            #expect(posted.status == 401)
            #expect(posted.json["error"] as? String == "invalid_client")
            #expect(posted.headers["www-authenticate"] == nil, "no Basic challenge when Basic was not tried")
            let basic = try await Self.call(harness, form: "grant_type=client_credentials", basic: (app, old))
            #expect(basic.status == 401)
            #expect(basic.headers["www-authenticate"]?.first?.hasPrefix("Basic") == true)
            let fresh = try await Self.call(harness, form: "grant_type=client_credentials", basic: (app, new.exposed))
            #expect(fresh.status == 200)
            #expect(harness.state.clientCredentialsCalls(appId: app) == .init(accepted: 1, refused: 2))
            #expect(harness.state.clientCredentialsCalls(appId: GenAuthHarness.otherAppId) == .init())
        }
    }

    @Test func badRequestsGetTheOAuthErrorShapeAndCountNothing() async throws {
        try await withGenAuthHarness { harness in
            let app = GenAuthHarness.appId
            let secret = try #require(harness.state.currentSecret(appId: app))
            let cases: [(String, (String, String)?, String, UInt, String)] = [
                ("grant_type=password&client_id=\(app)&client_secret=\(secret)", nil, "application/x-www-form-urlencoded", 400, "unsupported_grant_type"),
                ("client_id=\(app)&client_secret=\(secret)", nil, "application/x-www-form-urlencoded", 400, "invalid_request"),
                ("grant_type=client_credentials&client_id=\(app)&client_secret=\(secret)", (app, secret), "application/x-www-form-urlencoded", 400, "invalid_request"),
                (#"{"grant_type":"client_credentials"}"#, nil, "application/json", 400, "invalid_request"),
                ("grant_type=client_credentials", nil, "application/x-www-form-urlencoded", 401, "invalid_client"),
                ("grant_type=client_credentials&client_id=no-such-app&client_secret=\(secret)", nil, "application/x-www-form-urlencoded", 401, "invalid_client"),
                ("grant_type=client_credentials&client_id=\(app)&client_secret=\(secret)&client_secret=wrong", nil, "application/x-www-form-urlencoded", 400, "invalid_request"),
                ("grant_type=client_credentials&client_id=\(app)&client_secret=\(secret)%zz", nil, "application/x-www-form-urlencoded", 400, "invalid_request"),
                ("grant_type=client_credentials&client_id=\(app)&client_secret=\(secret)%+B", nil, "application/x-www-form-urlencoded", 400, "invalid_request"),
            ]
            for (form, basic, contentType, status, error) in cases {
                let answer = try await Self.call(harness, form: form, basic: basic, contentType: contentType)
                #expect(answer.status == status, "\(form)")
                #expect(answer.json["error"] as? String == error, "\(form)")
            }
            #expect(harness.state.clientCredentialsCalls(appId: app) == .init())
            #expect(harness.state.requestLog().allSatisfy { $0.path != "/oidc/token" }, "a consumer's checks stay out of the request log")
        }
    }
}
