import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

@Suite("GenAuth client pieces")
struct GenAuthUnitTests {
    @Test("flavours: default host and header prefix")
    func flavours() {
        #expect(APIFlavour.genauth.defaultHost == "https://api.genauth.ai")
        #expect(APIFlavour.authing.defaultHost == "https://api.authing.cn")
        #expect(APIFlavour.genauth.userPoolHeader == "x-genauth-userpool-id")
        #expect(APIFlavour.authing.languageHeader == "x-authing-lang")
        #expect(APIFlavour(rawValue: "authing") == .authing)
        let config = GenAuthClientConfiguration(flavour: .authing, accessKeyId: "a", accessKeySecret: SecretValue("s"))
        #expect(config.host == "https://api.authing.cn")
    }

    @Test("hosts: trailing slashes go, non-http URLs are refused", arguments: [
        ("https://api.genauth.ai/", "https://api.genauth.ai"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://auth.example.com/prefix//", "https://auth.example.com/prefix"),
        ("api.genauth.ai", nil),
        ("ftp://x", nil),
        ("https://", nil),
        ("https://a b", nil),
    ] as [(String, String?)])
    func hosts(input: String, expected: String?) {
        let config = GenAuthClientConfiguration(host: input, accessKeyId: "a", accessKeySecret: SecretValue("s"))
        #expect(config.normalizedHost == expected)
    }

    @Test("a bad host or CA file is a configuration error")
    func badConfiguration() throws {
        #expect(throws: GenAuthError.self) {
            _ = try GenAuthClient(configuration: .init(host: "nope", accessKeyId: "a", accessKeySecret: SecretValue("s")))
        }
        do {
            _ = try GenAuthClient(
                configuration: .init(accessKeyId: "a", accessKeySecret: SecretValue("s"), caFile: "/nonexistent/ca.pem"))
            Issue.record("expected a configuration error")
        } catch {
            #expect(error.reason == .invalidConfiguration)
            #expect(error.classification == .permanent)
        }
    }

    /// A throwaway self-signed CA (no key kept): enough to prove `caFile` is read.
    static let testCAPEM = """
        -----BEGIN CERTIFICATE-----
        MIIBmDCCAT2gAwIBAgIUaIooVNn0ZenJEfpOnJHqujTF+nQwCgYIKoZIzj0EAwIw
        ITEfMB0GA1UEAwwWc2VjcmV0LXJvdGF0b3IgdGVzdCBDQTAeFw0yNjExMjYyMzEy
        NDFaFw0zNjExMjMyMzEyNDFaMCExHzAdBgNVBAMMFnNlY3JldC1yb3RhdG9yIHRl
        c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASqMAHmq0o2bMx99HaRV0O9
        1jVNvJHIJhZTTx9OCNFd77dj4foNGDU/h+weVwQ3lE5cEwY5AuxmC8bC6D9tGtK8
        o1MwUTAdBgNVHQ4EFgQU6TqixJgezdNtuLoeGn2qxO4czsgwHwYDVR0jBBgwFoAU
        6TqixJgezdNtuLoeGn2qxO4czsgwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
        AgNJADBGAiEA/A55wvTt7zz6g1PpcSHumHNn0gzFwVVU+o+bg08tN+8CIQCegIOr
        PFgh/pjUKX5dlSLCCxoxAXYMu92i+ZDeuUcD7A==
        -----END CERTIFICATE-----
        """

    @Test("a readable PEM ca_file is accepted")
    func caFileAccepted() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ca-\(UUID().uuidString).pem").path
        try Self.testCAPEM.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let client = try GenAuthClient(configuration: .init(accessKeyId: "a", accessKeySecret: SecretValue("s"), caFile: path))
        try await client.shutdown()
        let garbage = path + ".bad"
        try "not a certificate".write(toFile: garbage, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: garbage) }
        #expect(throws: GenAuthError.self) {
            _ = try GenAuthClient(configuration: .init(accessKeyId: "a", accessKeySecret: SecretValue("s"), caFile: garbage))
        }
    }

    @Test("a non-positive timeout is a configuration error")
    func badTimeout() {
        #expect(throws: GenAuthError.self) {
            _ = try GenAuthClient(
                configuration: .init(accessKeyId: "a", accessKeySecret: SecretValue("s"), requestTimeout: .zero))
        }
    }

    @Test("secret validation", arguments: [
        ("0123456789abcdef0123456789abcdef", true),
        ("A-b_c.d~e!#$%&()*+,/:;<=>?@[]^`{|}", true),
        ("", false),
        ("has space", false),
        ("tab\there", false),
        ("line\n", false),
        ("bell\u{07}", false),
        ("del\u{7f}", false),
        ("ünïcode", false),
        (String(repeating: "a", count: 1024), true),
        (String(repeating: "a", count: 1025), false),
    ])
    func secrets(secret: String, valid: Bool) {
        #expect((ApplicationSecretValidator.problem(with: secret) == nil) == valid)
        if let problem = ApplicationSecretValidator.problem(with: secret), !secret.isEmpty {
            #expect(!problem.contains(secret))
        }
    }

    @Test("JWT payload: scoped_userpool_id is read without verification")
    func jwt() {
        func b64url(_ s: String) -> String {
            Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let header = b64url(#"{"alg":"HS256"}"#)
        // '>>>' and '???' encode to '+' and '/' in standard base64: exercises the url alphabet.
        let payload = b64url(#"{"scoped_userpool_id":"pool>>>???","x":1}"#)
        #expect(payload.contains("-") || payload.contains("_"))
        #expect(ManagementToken.scopedUserPoolId(fromJWT: "\(header).\(payload).sig") == "pool>>>???")
        #expect(ManagementToken.scopedUserPoolId(fromJWT: "\(header).\(b64url(#"{"other":1}"#)).sig") == nil)
        #expect(ManagementToken.scopedUserPoolId(fromJWT: "not-a-jwt") == nil)
        #expect(ManagementToken.scopedUserPoolId(fromJWT: "a.!!!.c") == nil)
    }

    @Test("token safety margin: 10 %, at most a minute")
    func margin() {
        #expect(ManagementToken.safetyMargin(expiresIn: .seconds(7200)) == .seconds(60))
        #expect(ManagementToken.safetyMargin(expiresIn: .seconds(100)) == .seconds(10))
    }

    @Test("Retry-After: seconds and HTTP dates")
    func retryAfter() {
        #expect(RetryAfter.parse("120") == .seconds(120))
        #expect(RetryAfter.parse(" 0 ") == .seconds(0))
        #expect(RetryAfter.parse("-1") == nil)
        #expect(RetryAfter.parse("soon") == nil)
        let now = Date(timeIntervalSince1970: 784_111_717)  // Sun, 06 Nov 1994 08:48:37 GMT
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .seconds(60))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:40:00 GMT", now: now) == .zero)
        #expect(RetryAfter.parse("Sun, 06 Foo 1994 08:49:37 GMT", now: now) == nil)
    }

    @Test("status classification table")
    func classification() {
        let refresh = APIOperation.refreshApplicationSecret(appId: "a")
        let read = APIOperation.getApplicationSecret(appId: "a")
        let token = APIOperation.getManagementToken
        let table: [(Int, Int?, APIOperation, GenAuthError.Classification)] = [
            (429, nil, refresh, .transient), (503, nil, refresh, .transient), (500, nil, refresh, .outcomeUnknown),
            (502, nil, refresh, .outcomeUnknown), (504, nil, refresh, .outcomeUnknown), (500, nil, read, .transient),
            (400, nil, refresh, .permanent), (403, 2333, refresh, .permanent), (404, 2011, refresh, .permanent),
            (401, nil, refresh, .authentication), (403, 2020, read, .authentication), (401, nil, token, .authentication),
            (403, nil, token, .authentication), (503, nil, token, .transient), (429, nil, token, .transient),
        ]
        for (status, apiCode, operation, expected) in table {
            #expect(GenAuthError.classify(status: status, apiCode: apiCode, operation: operation) == expected, "\(status) \(operation.name)")
        }
    }

    @Test("error descriptions are one line, bounded, and say what happened")
    func errorDescription() {
        let error = GenAuthError(
            classification: .permanent, reason: .apiError, operation: "refresh-application-secret", httpStatus: 200,
            apiStatusCode: 404, apiCode: 2011, message: "app\nnot found" + String(repeating: "!", count: 500), requestId: "r-1")
        let text = "\(error)"
        #expect(text.contains("permanent"))
        #expect(text.contains("statusCode 404"))
        #expect(text.contains("apiCode 2011"))
        #expect(text.contains("requestId r-1"))
        #expect(!text.contains("\n"))
        #expect(text.count < 400)
    }

    @Test("SecretValue stays redacted in errors and interpolation")
    func redaction() {
        let secret = SecretValue("0123456789abcdef0123456789abcdef")
        #expect("\(secret)" == "<redacted>")
        #expect(!String(reflecting: secret).contains(secret.exposed))
    }

    @Test("the leak checker finds a planted secret (so the suite-wide check can fail)")
    func leakCheckerWorks() {
        let capture = LogCapture()
        let logger = capture.logger()
        logger.info("rotated", metadata: ["oops": "deadbeefdeadbeefdeadbeefdeadbeef"])
        #expect(capture.leaks(of: ["deadbeefdeadbeefdeadbeefdeadbeef", "other"]) == ["deadbeefdeadbeefdeadbeefdeadbeef"])
    }
}
