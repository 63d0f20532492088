import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one place that maps what happened to what the rotation engine may do (Architecture, "Wire protocol").
extension GenAuthError {
    /// A non-200 status, from the HTTP status line or the body's `statusCode`.
    static func classify(status: Int, apiCode: Int?, operation: APIOperation) -> Classification {
        if case .getManagementToken = operation {
            switch status {
            case 400, 401, 403: return .authentication
            case 429: return .transient
            case 501: return .permanent
            case 500...599: return .transient
            default: return .permanent
            }
        }
        if status == 401 || apiCode == 2020 { return .authentication }
        switch status {
        case 429, 503: return .transient
        case 501: return .permanent
        // The server got the request and failed somewhere: a refresh may have happened.
        case 500...599: return operation.changesServerState ? .outcomeUnknown : .transient
        default: return .permanent
        }
    }

    /// GenAuth refused this access key the application: 403 in the status line or in the
    /// body's `statusCode` (GenAuth's business errors come at HTTP 200). The daemon waits its
    /// long backoff, and a read refused so falls back to a refresh; `check-config` calls
    /// the app "forbidden".
    public var isForbidden: Bool { Self.isForbidden(httpStatus: httpStatus, apiStatusCode: apiStatusCode) }

    static func isForbidden(httpStatus: Int?, apiStatusCode: Int?) -> Bool {
        httpStatus == 403 || apiStatusCode == 403
    }

    /// What the failure means to an app's state machine: the classification, with a refusal
    /// (`isForbidden`) told apart from other failures that will not heal by retrying.
    var failureKind: AppTransitions.Failure.Kind {
        switch classification {
        case .outcomeUnknown: .outcomeUnknown
        case .transient: .transient
        case .permanent, .authentication: isForbidden ? .forbidden : .permanent
        }
    }

    /// A 401 on an authenticated call: the token is stale, not the access key (yet).
    var isUnauthorizedToken: Bool {
        operation != "get-management-token" && (apiStatusCode == 401 || httpStatus == 401 || apiCode == 2020)
    }

    /// The answer could not be trusted (malformed, oversize, invalid secret).
    static func badAnswer(
        _ reason: Reason, operation: APIOperation, message: String, httpStatus: Int?, requestId: String?,
        file: String = #fileID, line: Int = #line
    ) -> GenAuthError {
        GenAuthError(
            classification: operation.changesServerState ? .outcomeUnknown : .transient, reason: reason,
            operation: operation.name, httpStatus: httpStatus, message: message, requestId: requestId, file: file, line: line)
    }

    /// A failure below HTTP. "Not sent" is only claimed when no connection was made.
    static func transport(_ error: any Error, operation: APIOperation, file: String = #fileID, line: Int = #line) -> GenAuthError {
        let afterSend: Classification = operation.changesServerState ? .outcomeUnknown : .transient
        func make(_ c: Classification, _ r: Reason) -> GenAuthError {
            GenAuthError(
                classification: c, reason: r, operation: operation.name, underlying: describe(error), cause: error, file: file, line: line)
        }
        switch error {
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout, .getConnectionFromPoolTimeout, .tlsHandshakeTimeout, .socksHandshakeTimeout,
                .httpProxyHandshakeTimeout:
                return make(.transient, .notConnected)
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return make(afterSend, .timeout)
            case .cancelled, .requestStreamCancelled:
                return make(afterSend, .cancelled)
            case .invalidURL, .emptyHost, .emptyScheme, .redirectLimitReached, .redirectCycleDetected:
                return make(.permanent, .invalidConfiguration)
            default:
                return make(afterSend, .connectionLost)
            }
        case is NIOConnectionError, is SocketAddressError:
            return make(.transient, .notConnected)
        case let error as ChannelError:
            if case .connectTimeout = error { return make(.transient, .notConnected) }
            return make(afterSend, .connectionLost)
        case let error as IOError:
            switch error.errnoCode {
            case ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, ENETDOWN:
                return make(.transient, .notConnected)
            default:
                return make(afterSend, .connectionLost)
            }
        case let error as NIOSSLError:
            if case .uncleanShutdown = error { return make(afterSend, .connectionLost) }
            // A certificate the trust store rejects will not start working by itself.
            return make(.permanent, .notConnected)
        case is BoringSSLError:
            return make(.permanent, .notConnected)
        case is CancellationError:
            return make(afterSend, .cancelled)
        default:
            return make(afterSend, .connectionLost)
        }
    }

    /// The failure in words for logs and `status` (not a Swift enum's debug form,
    /// nor a TLS library's source path). Transport errors describe hosts, ports and errnos,
    /// never payloads; kept short anyway.
    static func describe(_ error: any Error) -> String {
        let text: String
        switch error {
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout: text = "connecting timed out"
            case .getConnectionFromPoolTimeout: text = "no connection could be made within the request timeout"
            case .tlsHandshakeTimeout: text = "the TLS handshake timed out"
            case .deadlineExceeded: text = "no complete answer within request_timeout"
            case .readTimeout: text = "reading the answer timed out"
            case .writeTimeout: text = "sending the request timed out"
            case .remoteConnectionClosed: text = "the server closed the connection before answering"
            case .cancelled: text = "cancelled"
            default: text = "HTTP client error: \(error)"
            }
        case let error as IOError:
            let code = error.errnoCode
            text = "connection failed: \(String(cString: strerror(code))) (errno \(code))"
        case is NIOConnectionError:
            text = "no connection could be made (every address of the host refused or timed out)"
        case is SocketAddressError:
            text = "the host name could not be resolved"
        case let error as NIOSSLError:
            // Its cases carry BoringSSL's error queue, file paths included: the case is enough.
            switch error {
            case .handshakeFailed: text = "the TLS handshake failed (does the host speak TLS on this port, with a certificate the trust store accepts?)"
            case .uncleanShutdown: text = "the TLS connection was cut without a close_notify"
            default: text = "TLS error (\(String(describing: error).prefix(while: { $0 != "(" })))"
            }
        case is BoringSSLError:
            text = "TLS error (the certificate or handshake was refused)"
        default:
            text = "\(type(of: error)): \(error)"
        }
        return String(text.prefix(300))
    }
}
