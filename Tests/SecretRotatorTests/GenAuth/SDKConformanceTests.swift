import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Our client against the official Python SDKs (`genauth` and `authing` 5.1.0), compared
/// on the mock's request log: same method, path, query keys, JSON body keys, content type
/// and header names (case-insensitive; transport headers and header values aside).
///
/// `Tests/SDKConformance/run.sh` runs the SDKs against `genauth-mock` and writes their
/// request logs to the file named by `GENAUTH_SDK_REQUEST_LOG`. Without it the test is
/// skipped locally, but fails when `GENAUTH_SDK_CONFORMANCE_REQUIRED=1` (as in CI).
@Suite("SDK wire conformance")
struct SDKConformanceTests {
    /// Set by the HTTP stack, not by the SDK or our client: not part of the API contract.
    static let transportHeaders: Set<String> = [
        "host", "user-agent", "accept", "accept-encoding", "connection", "content-length", "transfer-encoding",
    ]

    struct WireShape: Equatable, CustomStringConvertible {
        var method: String
        var path: String
        var queryKeys: [String]
        var bodyKeys: [String]?
        var contentType: String?
        var headerNames: [String]
        var authorizationScheme: String?

        init(_ r: MockRequestRecord) {
            method = r.method
            path = r.path
            queryKeys = r.queryKeys
            bodyKeys = r.bodyKeys
            contentType = r.contentType?.lowercased()
            headerNames = r.headerNames.map { $0.lowercased() }.filter { !SDKConformanceTests.transportHeaders.contains($0) }.sorted()
            authorizationScheme = r.authorizationScheme
        }

        var description: String {
            "\(method) \(path) query=\(queryKeys) body=\(bodyKeys ?? []) type=\(contentType ?? "-") auth=\(authorizationScheme ?? "-") headers=\(headerNames)"
        }
    }

    struct SDKLog: Decodable {
        struct Run: Decodable {
            var sdk: String
            var requests: [MockRequestRecord]
        }
        var genauth: Run
        var authing: Run
    }

    static func sdkLog() throws -> SDKLog? {
        let env = ProcessInfo.processInfo.environment
        guard let path = env["GENAUTH_SDK_REQUEST_LOG"], !path.isEmpty else {
            if env["GENAUTH_SDK_CONFORMANCE_REQUIRED"] == "1" {
                Issue.record("GENAUTH_SDK_CONFORMANCE_REQUIRED=1 but GENAUTH_SDK_REQUEST_LOG is not set")
            }
            return nil
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(SDKLog.self, from: data)
    }

    static var enabled: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["GENAUTH_SDK_REQUEST_LOG"] != nil || env["GENAUTH_SDK_CONFORMANCE_REQUIRED"] == "1"
    }

    @Test(
        "our requests match the official SDK's field for field", .enabled(if: SDKConformanceTests.enabled),
        arguments: APIFlavour.allCases)
    func matchesSDK(flavour: APIFlavour) async throws {
        let log = try #require(try Self.sdkLog(), "no SDK request log")
        let sdkRun = flavour == .genauth ? log.genauth : log.authing
        let sdk = sdkRun.requests.map(WireShape.init)
        // The SDK script makes exactly: token, refresh, get-application-secret.
        #expect(
            sdk.map(\.path) == [
                "/api/v3/get-management-token", "/api/v3/refresh-application-secret", "/api/v3/get-application-secret",
            ], "unexpected SDK log from \(sdkRun.sdk)")
        // The header name check must be able to fail: the SDK did send its flavour's headers.
        #expect(sdk.dropFirst().allSatisfy { $0.headerNames.contains("x-\(flavour.rawValue)-userpool-id") })

        try await withGenAuthHarness(flavour: flavour) { h in
            _ = try await h.client.refreshApplicationSecret(appId: GenAuthHarness.appId)
            _ = try await h.client.getApplicationSecret(appId: GenAuthHarness.appId)
            let ours = h.state.requestLog().map(WireShape.init)
            #expect(ours.count == sdk.count)
            for (mine, theirs) in zip(ours, sdk) {
                #expect(mine == theirs, "\n ours: \(mine)\n \(sdkRun.sdk): \(theirs)")
            }
        }
    }

    @Test("the comparison notices a difference")
    func comparisonCanFail() {
        let record = MockRequestRecord(
            sequence: 1, method: "POST", path: "/api/v3/refresh-application-secret",
            headerNames: ["authorization", "content-type", "x-genauth-lang", "x-genauth-sdk-version", "x-genauth-userpool-id", "user-agent"],
            bodyKeys: ["appId"], queryKeys: [], contentType: "application/json", authorizationScheme: "Bearer", appId: "a",
            fault: nil)
        var other = record
        other.headerNames = ["authorization", "content-type", "x-authing-lang", "x-genauth-sdk-version", "x-genauth-userpool-id"]
        #expect(WireShape(record) != WireShape(other))
        var sameButTransport = record
        sameButTransport.headerNames.removeAll { $0 == "user-agent" }
        sameButTransport.headerNames.append("Accept-Encoding")
        #expect(WireShape(record) == WireShape(sameButTransport))
    }
}
