import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A local GenAuth V3 management API on SwiftNIO: the official SDKs and our client talk
/// to it unchanged (`host = server.baseURL`). Tests drive it through `state`; other
/// processes through the `/__admin/` endpoints.
public final class GenAuthMockServer: Sendable {
    public let state: GenAuthMockState
    public let host: String
    public let port: Int
    private let channel: any Channel

    public var baseURL: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    private init(state: GenAuthMockState, host: String, port: Int, channel: any Channel) {
        self.state = state
        self.host = host
        self.port = port
        self.channel = channel
    }

    /// Binds `host:port` (port 0 picks a free one) and starts serving.
    public static func start(
        state: GenAuthMockState, host: String = "127.0.0.1", port: Int = 0,
        logger: Logger = Logger(label: "genauth-mock")
    ) async throws -> GenAuthMockServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
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
        return GenAuthMockServer(state: state, host: host, port: bound, channel: channel)
    }

    public func stop() async throws {
        try await channel.close()
    }
}

public enum MockServerError: Error, Equatable {
    case noLocalAddress
}
