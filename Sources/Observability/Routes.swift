import NIOCore
import NIOHTTP1
import Prometheus

/// What each path answers: the whole routing table, apart from the sockets.
struct Routes: Sendable {
    let registry: PrometheusCollectorRegistry
    let healthy: @Sendable () -> HealthStatus
    let ready: @Sendable () -> HealthStatus

    /// The response parts for one request: 404 for an unknown path, 405 for anything but GET.
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
            return response(
                to: request, .ok, body: ByteBuffer(bytes: bytes),
                contentType: ObservabilityServer.metricsContentType)
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
