import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A local GenAuth V3 management API on SwiftNIO: the official SDKs and our client talk
/// to it unchanged (`host = server.baseURL`). Tests drive it through `state`; other
/// processes through the `/__admin/` endpoints.
public final class GenAuthMockServer: Sendable {
    /// `genauth-mock --version`; the same release as secret-rotator (a unit test compares it
    /// with `SecretRotatorVersion.current`, which build-deb.sh reads).
    public static let version = "0.1.0"

    public let state: GenAuthMockState
    public let host: String
    public let port: Int
    /// Whether the server speaks TLS (`start(tls:)`): `baseURL` is then `https://`.
    public let usesTLS: Bool
    private let channel: any Channel
    private let connections: ConnectionRegistry

    public var baseURL: String { "\(usesTLS ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    private init(
        state: GenAuthMockState, host: String, port: Int, usesTLS: Bool, channel: any Channel, connections: ConnectionRegistry
    ) {
        self.state = state
        self.host = host
        self.port = port
        self.usesTLS = usesTLS
        self.channel = channel
        self.connections = connections
    }

    /// Binds `host:port` (port 0 picks a free one) and starts serving; with `tls` (a server
    /// configuration, e.g. `TLSConfiguration.makeServerConfiguration(certificateChain:privateKey:)`)
    /// over HTTPS, so a client's trust roots (`ca_file`) can be tested against it.
    /// - Throws: NIO's bind errors, `NIOSSLError` for an unusable `tls`.
    public static func start(
        state: GenAuthMockState, host: String = "127.0.0.1", port: Int = 0, tls: TLSConfiguration? = nil,
        logger: Logger = Logger(label: "genauth-mock")
    ) async throws -> GenAuthMockServer {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let connections = ConnectionRegistry()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MockRequestHandler(state: state, logger: logger))
                }
            }
            .bind(host: host, port: port)
            .get()
        guard let bound = channel.localAddress?.port else {
            try? await channel.close()
            throw MockServerError.noLocalAddress
        }
        return GenAuthMockServer(
            state: state, host: host, port: bound, usesTLS: sslContext != nil, channel: channel, connections: connections)
    }

    /// Stops listening and closes open keep-alive connections, so clients see the server go.
    public func stop() async throws {
        try await channel.close()
        for connection in connections.drain() {
            try? await connection.close()
        }
    }
}

/// Open client connections, so `stop()` can close them too.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = self.channels.withLock { $0.removeValue(forKey: id) }
        }
    }

    func drain() -> [any Channel] {
        channels.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
    }
}

public enum MockServerError: Error, Equatable {
    case noLocalAddress
}
