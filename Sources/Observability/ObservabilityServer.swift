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

    private enum State {
        case idle
        case binding
        case bound(any Channel, port: Int)
        case serving(port: Int)
        case finished
    }

    public let host: String
    private let requestedPort: Int
    private let routes: Routes
    private let connections = OpenConnections()
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex<State>(.idle)

    /// - Parameters:
    ///   - host: the address to listen on: 127.0.0.1 by default, "0.0.0.0" in a pod.
    ///   - port: the TCP port; 0 picks a free one, which `start()` returns.
    ///   - registry: what `/metrics` renders, usually `MetricsBootstrap.prometheus()`.
    ///   - healthy: answers `/healthz`; called on the connection's event loop for every request, so
    ///     it must be quick (a lock, no I/O).
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
        self.routes = Routes(registry: registry, healthy: healthy, ready: ready)
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

        let listener: any Channel
        do {
            let routes = self.routes
            let connections = self.connections
            listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(ChannelOptions.backlog, value: 64)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(HTTPHandler(routes: routes))
                        // A connection accepted while shutting down is refused: NIO closes it.
                        guard connections.add(channel) else { throw ChannelError.ioOnClosedChannel }
                    }
                }
                .bind(host: host, port: requestedPort).get()
        } catch {
            state.withLock { $0 = .idle }
            throw ObservabilityServerError(
                .cannotListen,
                "cannot listen on \(host):\(requestedPort) for /metrics, /healthz and /readyz: \(error); "
                    + "choose another host or port")
        }
        let port = listener.localAddress?.port ?? requestedPort
        state.withLock { $0 = .bound(listener, port: port) }
        logger.info(
            "observability endpoint listening: /metrics, /healthz, /readyz",
            metadata: ["address": "\(host):\(port)"])
        return port
    }

    /// Serves until graceful shutdown or cancellation, then closes the listening socket and every
    /// open connection (each after the response it is writing) and returns, without error in both
    /// cases, once all are closed. Binds first if `start()` was not called.
    public func run() async throws {
        try await start()
        let listener: (any Channel)? = state.withLock { state in
            guard case .bound(let listener, let port) = state else { return nil }
            state = .serving(port: port)
            return listener
        }
        guard let listener else {
            throw ObservabilityServerError(.notStartable, "observability server on \(host) is already running")
        }
        defer { state.withLock { $0 = .finished } }

        // Waiting on the close future does not end with the task, so cancellation closes too.
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await listener.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            listener.close(promise: nil)
        }
        await connections.quiesce()
    }
}

/// The accepted connections still open, so shutdown can end them: an idle keep-alive connection
/// closes at once, one with a request in flight right after its response (NIOHTTP1's quiescing).
private final class OpenConnections: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        var quiescing = false
    }
    private let state = Mutex(State())

    /// Tracks a new connection until it closes; false once `quiesce()` has begun.
    func add(_ channel: any Channel) -> Bool {
        let tracked = state.withLock { state in
            guard !state.quiescing else { return false }
            state.open[ObjectIdentifier(channel)] = channel
            return true
        }
        if tracked {
            channel.closeFuture.whenComplete { _ in
                _ = self.state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
        return tracked
    }

    /// Asks every open connection to close after its current response and waits until all have.
    func quiesce() async {
        let open = state.withLock { state in
            state.quiescing = true
            return Array(state.open.values)
        }
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        for channel in open {
            try? await channel.closeFuture.get()
        }
    }
}
