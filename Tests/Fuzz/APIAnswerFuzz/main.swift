// libFuzzer target for the GenAuth answer decoder: one HTTP answer (status, Retry-After and
// body) in, the secret / token / application or the `GenAuthError` the client throws out.
// It drives `GenAuthTransport.answer` and the client's checks on top of it
// (`GenAuthClient.validated`, `GenAuthClient.grant`): the code between the socket and the engine.
// Built only with SECRET_ROTATOR_FUZZ=1 (see Package.swift); run by Tests/Fuzz/run.sh.
//
// etcd's side of the wire too: an input starting "etcd-watch\n" feeds the rest to the
// watch-stream line parser (`EtcdGatewayClient.watchEvents`), "etcd-notice\n" to the decoder of
// another host's rotation notice (`ClusterRecordCoding`). Checked: errors are one-line
// `ClusterStoreError`s, and a notice that decodes survives a round trip.
//
// Input: an optional head line "<operation> <http status>[ <retry-after>]\n", then the body.
// <operation> is refresh, get-secret, get-app or token. Without a valid head line, the whole
// input is the body of a 200 answer to refresh-application-secret.
//
// Checked besides "never crash":
// - an answer with a key twice in one object is refused, whatever its status;
// - success only for a 2xx answer whose body says statusCode 200, and only with a secret the
//   validator accepts / a token that is printable ASCII of at most 16 KiB with expires_in > 0;
// - every error names the operation and the HTTP status, and has no transport cause;
// - only a refresh is ever outcomeUnknown, and an untrustworthy 2xx answer to a refresh always is
//   (invariant 3: the refresh may have happened);
// - a bad-answer error says only our own words (so never the secret or token it refused);
// - server text in an error is at most 200 characters with no control characters, and the
//   error's description is one line; a Retry-After delay is never negative.
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
@testable import SecretRotator

private enum Operation: CaseIterable {
    case refresh, getSecret, getApp, token

    var word: String {
        switch self {
        case .refresh: "refresh"
        case .getSecret: "get-secret"
        case .getApp: "get-app"
        case .token: "token"
        }
    }

    var api: APIOperation {
        switch self {
        case .refresh: .refreshApplicationSecret(appId: "fuzz-app")
        case .getSecret: .getApplicationSecret(appId: "fuzz-app")
        case .getApp: .getApplication(appId: "fuzz-app")
        case .token: .getManagementToken
        }
    }
}

private func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fatalError("APIAnswerFuzz property violated: \(message())")
    }
}

/// The head line, when the input starts with a valid one.
private func parseHead(_ bytes: UnsafeBufferPointer<UInt8>) -> (Operation, Int, String?, ArraySlice<UInt8>)? {
    guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")), newline <= 200 else { return nil }
    let head = String(decoding: bytes[..<newline], as: UTF8.self)
    let fields = head.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
    guard fields.count >= 2, let operation = Operation.allCases.first(where: { $0.word == fields[0] }),
        let status = Int(fields[1]), (100...999).contains(status)
    else { return nil }
    let retryAfter = fields.count == 3 ? String(fields[2]) : nil
    return (operation, status, retryAfter, Array(bytes)[(newline + 1)...])
}

private let ownWords: Set<String> = [
    "data.secret is missing", "the secret is empty", "the secret contains whitespace, control or non-ASCII characters",
    "statusCode 200 without a usable data field", "missing or unusable access_token", "missing or non-positive expires_in",
]

private func isOwnWords(_ message: String?) -> Bool {
    guard let message else { return false }
    if ownWords.contains(message) { return true }
    if message.hasPrefix("the response is not a V3 JSON envelope (content-type application/json") { return true }
    // Quotes a key (not a value), printable ASCII, at most 40 characters.
    if message.hasPrefix("the answer has the key \""),
        message.hasSuffix("\" twice in one object; an answer two readers could read differently is refused")
    {
        return true
    }
    // "the secret is 1500 bytes, more than 1024"
    let parts = message.split(separator: " ")
    return parts.count == 8 && message.hasPrefix("the secret is ") && Int(parts[3]) != nil
        && message.hasSuffix(" bytes, more than \(ApplicationSecretValidator.maxBytes)")
}

private func checkServerText(_ text: String?, _ what: String) {
    guard let text else { return }
    require(text.count <= 200, "\(what) is \(text.count) characters")
    require(
        !text.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(what) has control characters")
}

/// One input. Also exported as LLVMFuzzerTestOneInput: libFuzzer's main(), linked
/// in but never called, refers to it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    if fuzzCluster(Array(input)) { return 0 }
    let (operation, status, retryAfter, body) = parseHead(input) ?? (.refresh, 200, nil, Array(input)[...])
    let bytes = Array(body)
    let api = operation.api
    let envelopeStatus = APIEnvelope<IgnoredPayload>.decode(bytes)?.statusCode
    let duplicateKey = JSONDuplicateKeys.first(in: bytes)

    do throws(GenAuthError) {
        switch operation {
        case .refresh, .getSecret:
            let answer = try GenAuthTransport.answer(
                to: api, status: status, retryAfter: retryAfter, contentType: "application/json", body: bytes,
                as: SecretPayload.self)
            let secret = try GenAuthClient.validated(answer.payload.secret, operation: api, answer: answer)
            require(ApplicationSecretValidator.problem(with: secret.exposed) == nil, "an invalid secret was accepted")
        case .getApp:
            _ = try GenAuthTransport.answer(
                to: api, status: status, retryAfter: retryAfter, contentType: "application/json", body: bytes,
                as: GenAuthApplication.self)
        case .token:
            let answer = try GenAuthTransport.answer(
                to: api, status: status, retryAfter: retryAfter, contentType: "application/json", body: bytes,
                as: TokenPayload.self)
            let grant = try GenAuthClient.grant(from: answer, operation: api, accessKeyId: "fuzz-access-key")
            let token = grant.token.exposed.utf8
            require(!token.isEmpty && token.count <= 16 * 1024, "token of \(token.count) bytes accepted")
            require(token.allSatisfy { (0x21...0x7e).contains($0) }, "token with unprintable bytes accepted")
            require(grant.expiresIn > .zero, "expires_in \(grant.expiresIn) accepted")
            require(!grant.userPoolId.isEmpty, "empty user pool id")
        }
        require(duplicateKey == nil, "success with the key \(duplicateKey ?? "") twice in one object")
        require((200..<300).contains(status), "success on HTTP \(status)")
        require(envelopeStatus == 200, "success with body statusCode \(String(describing: envelopeStatus))")
    } catch {
        require(error.operation == api.name, "error names \(error.operation), not \(api.name)")
        require(error.httpStatus == status, "error has HTTP \(String(describing: error.httpStatus)), not \(status)")
        require(error.underlying == nil, "a transport cause without a transport: \(error)")
        if error.classification == .outcomeUnknown {
            require(api.changesServerState, "\(api.name) is outcomeUnknown but changes nothing: \(error)")
        }
        let badAnswer = error.reason == .malformedResponse || error.reason == .invalidSecret
        if duplicateKey != nil {
            require(error.reason == .malformedResponse, "an answer with a duplicate key is refused as \(error.reason)")
        }
        if badAnswer {
            require(isOwnWords(error.message), "a bad-answer error quotes something else: \(error)")
            if api.changesServerState && (200..<300).contains(status) {
                require(error.classification == .outcomeUnknown, "an untrusted refresh answer is not outcomeUnknown: \(error)")
            }
        } else {
            require(error.reason == .httpStatus || error.reason == .apiError, "unexpected reason: \(error)")
            checkServerText(error.message, "message")
        }
        checkServerText(error.requestId, "requestId")
        require(!error.description.contains("\n") && !error.description.contains("\r"), "multi-line error: \(error)")
        if let delay = error.retryAfter {
            require(delay >= .zero, "negative Retry-After \(delay)")
        }
    }
    return 0
}

/// The etcd inputs; false when the input is not one of them.
private func fuzzCluster(_ input: [UInt8]) -> Bool {
    for (head, isWatch) in [("etcd-watch\n", true), ("etcd-notice\n", false)] where input.starts(with: Array(head.utf8)) {
        let body = Array(input.dropFirst(head.utf8.count))
        if isWatch {
            do throws(ClusterStoreError) {
                _ = try EtcdGatewayClient.watchEvents(body, endpoint: "http://127.0.0.1:2379")
            } catch {
                require(!error.description.contains("\n"), "multi-line watch error: \(error)")
            }
        } else if let notice = ClusterRecordCoding.decode(RotationNotice.self, from: body) {
            let again = ClusterRecordCoding.decode(RotationNotice.self, from: ClusterRecordCoding.encode(notice))
            require(again?.version == notice.version && again?.host == notice.host, "a notice does not survive a round trip")
            if let again {
                require(abs(again.rotatedAt.timeIntervalSince(notice.rotatedAt)) < 0.001, "rotated_at moved in a round trip")
            }
        }
        return true
    }
    return false
}

// libFuzzer's main(), with its flags (-max_total_time, -runs, corpus directories, ...).
var arguments = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argv) { data, size in fuzz(data, size) })
