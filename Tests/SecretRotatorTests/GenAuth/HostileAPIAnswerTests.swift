import Foundation
import Testing

@testable import SecretRotator

/// Minimized inputs on which APIAnswerFuzz (Tests/Fuzz) crashed, replayed through the same
/// entry point: GenAuthTransport.answer, the bytes-in half of every GenAuth call.
@Suite struct HostileAPIAnswerTests {
    /// A Retry-After date with a 9-digit year made the millisecond conversion trap
    /// (Double beyond Int64.max), and a 12-digit one the day arithmetic: any server or proxy
    /// answering 503 with such a header crashed the daemon.
    @Test("a Retry-After date with an absurd year is ignored, not a crash", arguments: [
        "Sun, 06 Nov 999999999 08:49:37 GMT", "Sun, 06 Nov 999999999999 08:49:37 GMT",
        "Sun, 06 Nov 9223372036854775807 08:49:37 GMT", "Sun, 06 Nov 19940 08:49:37 GMT",
    ])
    func absurdRetryAfterYear(_ header: String) {
        #expect(RetryAfter.parse(header) == nil)
        let operation = APIOperation.refreshApplicationSecret(appId: "app-1")
        let error = #expect(throws: GenAuthError.self) {
            try GenAuthTransport.answer(
                to: operation, status: 503, retryAfter: header, contentType: "application/json",
                body: Array(#"{"statusCode":503,"message":"busy"}"#.utf8), as: SecretPayload.self)
        }
        #expect(error?.classification == .transient)
        #expect(error?.httpStatus == 503)
        #expect(error?.retryAfter == nil)
    }
}
