#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Sends one V3 call and turns whatever comes back into a payload or a `GenAuthError`.
/// No retries and no token logic live here; the client adds those.
struct GenAuthTransport: Sendable {
    let baseURL: String
    let configuration: GenAuthClientConfiguration
    let http: HTTPClient
    /// Every exchange is counted by endpoint and outcome, and timed.
    var metrics: RotatorMetrics = .disabled

    struct Answer<Payload: Sendable>: Sendable {
        var payload: Payload
        var httpStatus: Int
        var requestId: String?
    }

    func call<Payload: Decodable & Sendable>(
        _ operation: APIOperation, token: ManagementToken?, as _: Payload.Type
    ) async throws(GenAuthError) -> Answer<Payload> {
        let request = makeRequest(operation, token: token)
        let started = ContinuousClock.now
        do throws(GenAuthError) {
            let (response, bytes) = try await exchange(request, operation: operation)
            let answer = try Self.answer(
                to: operation, status: Int(response.status.code), retryAfter: response.headers.first(name: "retry-after"),
                contentType: response.headers.first(name: "content-type"), body: bytes, as: Payload.self)
            metrics.apiRequest(endpoint: operation.name, outcome: .ok, duration: ContinuousClock.now - started)
            return answer
        } catch {
            metrics.apiRequest(endpoint: operation.name, outcome: APIRequestOutcome(error), duration: ContinuousClock.now - started)
            throw error
        }
    }

    /// What one HTTP answer to `operation` means: the payload, or the error the caller sees.
    /// Bytes in, value or error out (no I/O), so the answer fuzzer drives exactly this code.
    static func answer<Payload: Decodable & Sendable>(
        to operation: APIOperation, status: Int, retryAfter retryAfterHeader: String?, contentType: String?,
        body bytes: [UInt8], as _: Payload.Type
    ) throws(GenAuthError) -> Answer<Payload> {
        if let key = JSONDuplicateKeys.first(in: bytes) {
            // Checked before anything is read from the answer, error or not.
            var shown = ""
            shown.unicodeScalars.append(contentsOf: key.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }.prefix(40))
            throw GenAuthError.badAnswer(
                .malformedResponse, operation: operation,
                message: "the answer has the key \"\(shown)\" twice in one object; an answer two readers could read differently is refused",
                httpStatus: status, requestId: nil)
        }
        let envelope = APIEnvelope<Payload>.decode(bytes)
        guard (200..<300).contains(status) else {
            let retryAfter = retryAfterHeader.flatMap { RetryAfter.parse($0) }
            throw GenAuthError(
                classification: GenAuthError.classify(status: status, apiCode: envelope?.apiCode, operation: operation),
                reason: .httpStatus, operation: operation.name, httpStatus: status, apiStatusCode: envelope?.statusCode,
                apiCode: envelope?.apiCode, message: envelope?.message, requestId: envelope?.requestId, retryAfter: retryAfter)
        }
        guard let envelope, let apiStatus = envelope.statusCode else {
            throw GenAuthError.badAnswer(
                .malformedResponse, operation: operation,
                message: "the response is not a V3 JSON envelope (content-type \(contentType ?? "none"))",
                httpStatus: status, requestId: nil)
        }
        // Business errors arrive as HTTP 200: only statusCode 200 in the body is success.
        guard apiStatus == 200 else {
            let retryAfter = retryAfterHeader.flatMap { RetryAfter.parse($0) }
            throw GenAuthError(
                classification: GenAuthError.classify(status: apiStatus, apiCode: envelope.apiCode, operation: operation),
                reason: .apiError, operation: operation.name, httpStatus: status, apiStatusCode: apiStatus,
                apiCode: envelope.apiCode, message: envelope.message, requestId: envelope.requestId, retryAfter: retryAfter)
        }
        guard let payload = envelope.data else {
            throw GenAuthError.badAnswer(
                .malformedResponse, operation: operation, message: "statusCode 200 without a usable data field",
                httpStatus: status, requestId: envelope.requestId)
        }
        return Answer(payload: payload, httpStatus: status, requestId: envelope.requestId)
    }

    /// Sends `request` and reads the whole body within one `request_timeout`.
    ///
    /// async-http-client's deadline covers the request until the response head arrives
    /// (`HTTPClient.executeCancellable` cancels its deadline task then), so a server that
    /// trickled the body one byte every 1.5 s kept a call with a 2 s timeout busy for 90 s.
    /// Here the head and the body race one timer; whichever loses is cancelled, which ends the
    /// request and closes its connection.
    private func exchange(
        _ request: HTTPClientRequest, operation: APIOperation
    ) async throws(GenAuthError) -> (HTTPClientResponse, [UInt8]) {
        let timeout = configuration.requestTimeout
        let limit = configuration.maxResponseBytes
        let http = self.http
        typealias Outcome = Result<(HTTPClientResponse, [UInt8]), GenAuthError>
        let outcome: Outcome = await withTaskGroup(of: Outcome?.self) { tasks in
            tasks.addTask {
                let response: HTTPClientResponse
                do {
                    response = try await http.execute(request, timeout: Self.timeAmount(timeout))
                } catch {
                    return .failure(GenAuthError.transport(error, operation: operation))
                }
                do {
                    let buffer = try await response.body.collect(upTo: limit)
                    return .success((response, Array(buffer.readableBytesView)))
                } catch is NIOTooManyBytesError {
                    return .failure(
                        GenAuthError.badAnswer(
                            .oversizeResponse, operation: operation, message: "response body exceeds \(limit) bytes",
                            httpStatus: Int(response.status.code), requestId: nil))
                } catch {
                    return .failure(GenAuthError.transport(error, operation: operation))
                }
            }
            tasks.addTask {
                do {
                    try await QuietSleep.sleep(for: timeout)
                } catch {
                    // Cancelled: the exchange finished first, or our caller gave up (which
                    // cancels the exchange too, and its error is the answer).
                    return nil
                }
                return .failure(GenAuthError.transport(HTTPClientError.deadlineExceeded, operation: operation))
            }
            var first: Outcome?
            while first == nil, let next = await tasks.next() {
                first = next
            }
            tasks.cancelAll()
            return first ?? .failure(GenAuthError.transport(CancellationError(), operation: operation))
        }
        return try outcome.get()
    }

    /// Method, path, body keys and header names match the official Python SDKs of the same flavour.
    func makeRequest(_ operation: APIOperation, token: ManagementToken?) -> HTTPClientRequest {
        var url = baseURL + operation.path
        if !operation.isPOST, let appId = operation.appId {
            url += "?appId=" + Self.percentEncoded(appId)
        }
        var request = HTTPClientRequest(url: url)
        request.method = operation.isPOST ? .POST : .GET
        if let token {
            let flavour = configuration.flavour
            request.headers.add(name: flavour.sdkVersionHeader, value: "secret-rotator:\(SecretRotatorVersion.current)")
            request.headers.add(name: flavour.userPoolHeader, value: token.userPoolId)
            request.headers.add(name: flavour.languageHeader, value: configuration.language)
            request.headers.add(name: "authorization", value: "Bearer \(token.value.exposed)")
        }
        if operation.isPOST {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body(for: operation)))
        }
        return request
    }

    private func body(for operation: APIOperation) -> [UInt8] {
        struct TokenRequest: Encodable {
            let accessKeyId: String
            let accessKeySecret: String
        }
        struct AppRequest: Encodable {
            let appId: String
        }
        let encoder = JSONEncoder()
        let data: Data?
        switch operation {
        case .getManagementToken:
            data = try? encoder.encode(
                TokenRequest(accessKeyId: configuration.accessKeyId, accessKeySecret: configuration.accessKeySecret.exposed))
        case .refreshApplicationSecret(let appId), .getApplicationSecret(let appId), .getApplication(let appId):
            data = try? encoder.encode(AppRequest(appId: appId))
        }
        // Encoding two string fields cannot fail; an empty object would be refused as 400.
        return data.map(Array.init) ?? Array("{}".utf8)
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
