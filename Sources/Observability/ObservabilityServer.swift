import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// The daemon's HTTP/1.1 endpoint for Kubernetes and Prometheus: `GET /metrics` (text format
/// 0.0.4), `GET /healthz` (liveness) and `GET /readyz` (readiness). A `Service`: `run()` serves
/// until graceful shutdown or cancellation, then closes the listening socket and its connections.
public final class ObservabilityServer: Service, Sendable {
    /// The content type of the Prometheus text exposition format that `/metrics` serves.
    public static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    typealias Listener = NIOAsyncChannel<Connection, Never>

    private enum State {
        case idle
        case binding
        case bound(Listener, port: Int)
        case serving(port: Int)
        case finished
    }

    public let host: String
    private let requestedPort: Int
    private let registry: PrometheusCollectorRegistry
    private let healthy: @Sendable () -> HealthStatus
    private let ready: @Sendable () -> HealthStatus
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex<State>(.idle)

    /// - Parameters:
    ///   - host: the address to listen on: 127.0.0.1 by default, "0.0.0.0" in a pod.
    ///   - port: the TCP port; 0 picks a free one, which `start()` returns.
    ///   - registry: what `/metrics` renders, usually `MetricsBootstrap.prometheus()`.
    ///   - healthy: answers `/healthz`; called on every request, so it must be quick (a lock, no I/O).
    ///   - ready: answers `/readyz`; the same rule.
    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        registry: PrometheusCollectorRegistry,
        healthy: @escaping @Sendable () -> HealthStatus,
        ready: @escaping @Sendable () -> HealthStatus,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "hemstream.observability")
    ) {
        self.host = host
        self.requestedPort = port
        self.registry = registry
        self.healthy = healthy
        self.ready = ready
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// The port being listened on, once `start()` has bound it; nil before and after.
    public var port: Int? {
        state.withLock { state in
            switch state {
            case .bound(_, let port), .serving(let port): return port
            case .idle, .binding, .finished: return nil
            }
        }
    }

    /// Binds the listening socket and returns its port, so a caller can learn the port picked
    /// for port 0 before `run()`. Calling it again returns the same port; `run()` calls it too.
    @discardableResult
    public func start() async throws -> Int {
        let alreadyBound: Int? = try state.withLock { state in
            switch state {
            case .idle:
                state = .binding
                return nil
            case .bound(_, let port), .serving(let port):
                return port
            case .binding:
                throw ObservabilityServerError(.notStartable, "observability server on \(host) is already starting")
            case .finished:
                throw ObservabilityServerError(.notStartable, "observability server on \(host) has already stopped")
            }
        }
        if let alreadyBound { return alreadyBound }

        let listener: Listener
        do {
            listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(ChannelOptions.backlog, value: 64)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: requestedPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            state.withLock { $0 = .idle }
            throw ObservabilityServerError(
                .cannotListen,
                "cannot listen on \(host):\(requestedPort) for /metrics, /healthz and /readyz: \(error); "
                    + "choose another host or port")
        }
        let port = listener.channel.localAddress?.port ?? requestedPort
        state.withLock { $0 = .bound(listener, port: port) }
        logger.info(
            "observability endpoint listening: /metrics, /healthz, /readyz",
            metadata: ["address": "\(host):\(port)"])
        return port
    }

    /// Serves until graceful shutdown or cancellation, then closes the listening socket, stops
    /// reading from open connections (a response being written is finished) and returns, without
    /// error in both cases, when all are closed. Binds first if `start()` was not called.
    public func run() async throws {
        try await start()
        let listener: Listener? = state.withLock { state in
            guard case .bound(let listener, let port) = state else { return nil }
            state = .serving(port: port)
            return listener
        }
        guard let listener else {
            throw ObservabilityServerError(.notStartable, "observability server on \(host) is already running")
        }
        defer { state.withLock { $0 = .finished } }

        do {
            try await withGracefulShutdownHandler {
                try await listener.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in connections {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            } onGracefulShutdown: {
                listener.channel.close(promise: nil)
            }
        } catch is CancellationError where Task.isCancelled {
            // Cancellation is a request to stop, as graceful shutdown is; the channel is closed.
        }
    }

    /// Answers the requests of one connection, in order, until the client closes it, asks for
    /// `Connection: close`, or shutdown closes its input.
    private func serve(_ connection: Connection) async {
        do {
            try await withGracefulShutdownHandler {
                try await connection.executeThenClose { requests, responses in
                    var head: HTTPRequestHead?
                    for try await part in requests {
                        switch part {
                        case .head(let requestHead):
                            head = requestHead
                        case .body:
                            continue
                        case .end:
                            guard let request = head else { continue }
                            head = nil
                            try await responses.write(contentsOf: respond(to: request))
                            if !request.isKeepAlive { return }
                        }
                    }
                }
            } onGracefulShutdown: {
                connection.channel.close(mode: .input, promise: nil)
            }
        } catch {
            logger.debug("observability connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// The response parts for one request: routing, status and body.
    func respond(to request: HTTPRequestHead) -> [HTTPServerResponsePart] {
        enum Endpoint { case metrics, health, readiness }
        let endpoint: Endpoint
        switch request.uri.prefix(while: { $0 != "?" }) {
        case "/metrics": endpoint = .metrics
        case "/healthz": endpoint = .health
        case "/readyz": endpoint = .readiness
        default:
            return response(to: request, .notFound, text: "not found: GET /metrics, /healthz or /readyz\n")
        }
        guard request.method == .GET else {
            return response(
                to: request, .methodNotAllowed, text: "method not allowed: use GET\n", extra: [("Allow", "GET")])
        }
        let status: HealthStatus
        switch endpoint {
        case .metrics:
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return response(to: request, .ok, body: ByteBuffer(bytes: bytes), contentType: Self.metricsContentType)
        case .health: status = healthy()
        case .readiness: status = ready()
        }
        switch status {
        case .ok:
            return response(to: request, .ok, text: "ok\n")
        case .unavailable(let reason):
            return response(to: request, .serviceUnavailable, text: "\(reason)\n")
        }
    }

    private func response(
        to request: HTTPRequestHead, _ status: HTTPResponseStatus, text: String, extra: [(String, String)] = []
    ) -> [HTTPServerResponsePart] {
        response(
            to: request, status, body: ByteBuffer(string: text), contentType: "text/plain; charset=utf-8", extra: extra)
    }

    private func response(
        to request: HTTPRequestHead, _ status: HTTPResponseStatus, body: ByteBuffer, contentType: String,
        extra: [(String, String)] = []
    ) -> [HTTPServerResponsePart] {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(body.readableBytes))])
        headers.add(contentsOf: extra)
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: status, headers: headers)
        return [.head(head), .body(.byteBuffer(body)), .end(nil)]
    }
}
