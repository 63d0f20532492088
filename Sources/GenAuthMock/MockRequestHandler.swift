import Logging
import NIOCore
import NIOHTTP1

/// Collects one request, asks `GenAuthMockState` what to do, and does it: answer, wait,
/// or close the connection. One instance per connection, confined to its event loop.
final class MockRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests larger than this are refused: nothing legitimate sends more.
    private static let maxRequestBytes = 1 << 20

    private let state: GenAuthMockState
    private let logger: Logger
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(state: GenAuthMockState, logger: Logger) {
        self.state = state
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.removeAll(keepingCapacity: true)
        case .body(var chunk):
            if body.count + chunk.readableBytes > Self.maxRequestBytes {
                context.close(promise: nil)
                return
            }
            if let bytes = chunk.readBytes(length: chunk.readableBytes) { body.append(contentsOf: bytes) }
        case .end:
            guard let head else { return }
            self.head = nil
            let request = MockHTTPRequest(
                method: head.method.rawValue, uri: head.uri,
                headers: head.headers.map { (name: $0.name, value: $0.value) }, body: body)
            handle(request, keepAlive: head.isKeepAlive, version: head.version, context: context)
        }
    }

    private func handle(_ request: MockHTTPRequest, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
        if request.path.hasPrefix(MockAdmin.prefix) {
            write(MockAdmin.handle(request, state: state), keepAlive: keepAlive, version: version, context: context)
            return
        }
        if request.path == MockClientCredentials.path {
            write(state.answerClientCredentials(request), keepAlive: keepAlive, version: version, context: context)
            return
        }
        let fault = state.begin(request)
        logger.debug("request", metadata: ["method": "\(request.method)", "path": "\(request.path)", "fault": "\(fault?.name ?? "-")"])
        switch fault {
        case .dropBeforeProcessing:
            context.close(promise: nil)
        case .delay(let ms):
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(ms))) { [self] in
                self.finish(request, fault: nil, keepAlive: keepAlive, version: version, context: context)
            }
        default:
            finish(request, fault: fault, keepAlive: keepAlive, version: version, context: context)
        }
    }

    private func finish(
        _ request: MockHTTPRequest, fault: MockFault?, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext
    ) {
        switch state.process(request, fault: fault) {
        case .drop:
            context.close(promise: nil)
        case .respond(let response):
            if case .trickleBody(let interval) = fault {
                trickle(response, every: .milliseconds(Int64(interval)), version: version, context: context)
            } else {
                write(response, keepAlive: keepAlive, version: version, context: context)
            }
        }
    }

    /// The head at once, then one body byte per `interval`; the connection closes at the end.
    private func trickle(_ response: MockHTTPResponse, every interval: TimeAmount, version: HTTPVersion, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        headers.replaceOrAdd(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        sendByte(at: 0, of: response.body, every: interval, context: context)
    }

    private func sendByte(at index: Int, of body: [UInt8], every interval: TimeAmount, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        guard index < body.count else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            guard context.channel.isActive else { return }
            var buffer = context.channel.allocator.buffer(capacity: 1)
            buffer.writeInteger(body[index])
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            self.sendByte(at: index + 1, of: body, every: interval, context: context)
        }
    }

    private func write(_ response: MockHTTPResponse, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
