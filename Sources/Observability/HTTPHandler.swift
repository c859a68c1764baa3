import NIOCore
import NIOHTTP1

/// Answers each request of one connection on its event loop, after NIOHTTP1 has decoded it
/// (and, with pipelining assistance, queued the next until this response has ended).
final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: Routes
    private var request: HTTPRequestHead?

    init(routes: Routes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let request else { return }
            self.request = nil
            var parts = routes.respond(to: request)
            let last = parts.removeLast()
            for part in parts { context.write(wrapOutboundOut(part), promise: nil) }
            let written = context.writeAndFlush(wrapOutboundOut(last))
            if !request.isKeepAlive {
                let channel = context.channel
                written.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
