import Foundation
import Logging
import Metrics
import Observability
import Prometheus
import ServiceLifecycle
import Synchronization
import TestSupport
import XCTest

/// The endpoint as Prometheus and Kubernetes see it: real HTTP from curl, the text format read
/// by the reference parser (Python's prometheus_client), shutdown through a ServiceGroup.
final class ObservabilityServerTests: XCTestCase {
    func testMetrics_afterRecording_parseWithPrometheusParserAndCarryTheValues() async throws {
        let registry = MetricsBootstrap.prometheus()
        XCTAssertTrue(registry === MetricsBootstrap.prometheus(), "a second bootstrap returns the same registry")
        Counter(label: "hemstream_test_things_total", dimensions: [("shard", "a")]).increment(by: 3)
        Counter(label: "hemstream_test_things_total", dimensions: [("shard", "b")]).increment()
        Metrics.Timer(label: "hemstream_test_op_duration_seconds").recordMilliseconds(12)
        Gauge(label: "hemstream_test_leases_held").record(4)

        try await withServer(registry: registry) { port in
            let reply = try HTTP.request("GET", port: port, path: "/metrics")
            XCTAssertEqual(reply.status, 200)
            XCTAssertEqual(reply.contentType, ObservabilityServer.metricsContentType)
            let samples = try PrometheusText.parse(reply.body)

            XCTAssertEqual(samples.value("hemstream_test_things_total", ["shard": "a"]), 3)
            XCTAssertEqual(samples.value("hemstream_test_things_total", ["shard": "b"]), 1)
            XCTAssertEqual(samples.value("hemstream_test_leases_held"), 4)
            XCTAssertEqual(samples.value("hemstream_test_op_duration_seconds_count"), 1)
            let sum = try XCTUnwrap(samples.value("hemstream_test_op_duration_seconds_sum"))
            XCTAssertEqual(sum, 0.012, accuracy: 1e-9, "timers are exported in seconds")

            // Cumulative buckets in seconds: 12 ms is above 0.01 and within 0.025.
            let buckets = samples.all("hemstream_test_op_duration_seconds_bucket")
            let bounds = buckets.compactMap { $0.labels["le"] }.compactMap(Double.init)
            XCTAssertEqual(bounds.filter(\.isFinite).sorted(), MetricsBootstrap.secondsBuckets)
            XCTAssertEqual(bounds.filter { $0 == .infinity }.count, 1)
            let counts = Dictionary(buckets.map { (Double($0.labels["le"]!)!, $0.value) }, uniquingKeysWith: +)
            XCTAssertEqual(counts[0.01], 0)
            XCTAssertEqual(counts[0.025], 1)
            XCTAssertEqual(counts[.infinity], 1)
        }
    }

    func testHealthAndReadiness_followTheirClosures() async throws {
        let health = Mutex<HealthStatus>(.ok)
        let readiness = Mutex<HealthStatus>(.unavailable(reason: "no shard lease held yet"))
        let healthy: @Sendable () -> HealthStatus = { health.withLock { $0 } }
        let ready: @Sendable () -> HealthStatus = { readiness.withLock { $0 } }
        try await withServer(healthy: healthy, ready: ready) { port in
            var reply = try HTTP.request("GET", port: port, path: "/healthz")
            XCTAssertEqual(reply.status, 200)
            XCTAssertEqual(reply.body, "ok\n")

            reply = try HTTP.request("GET", port: port, path: "/readyz")
            XCTAssertEqual(reply.status, 503)
            XCTAssertEqual(reply.body, "no shard lease held yet\n")

            readiness.withLock { $0 = .ok }
            health.withLock { $0 = .unavailable(reason: "stream reader stalled for 300 s") }
            reply = try HTTP.request("GET", port: port, path: "/readyz")
            XCTAssertEqual(reply.status, 200)
            XCTAssertEqual(reply.body, "ok\n")
            reply = try HTTP.request("GET", port: port, path: "/healthz?verbose=1")
            XCTAssertEqual(reply.status, 503)
            XCTAssertEqual(reply.body, "stream reader stalled for 300 s\n")
        }
    }

    func testUnknownPathIs404_andNonGetIs405() async throws {
        try await withServer { port in
            XCTAssertEqual(try HTTP.request("GET", port: port, path: "/").status, 404)
            XCTAssertEqual(try HTTP.request("GET", port: port, path: "/metricsx").status, 404)
            XCTAssertEqual(try HTTP.request("POST", port: port, path: "/metrics").status, 405)
            XCTAssertEqual(try HTTP.request("DELETE", port: port, path: "/healthz").status, 405)
        }
    }

    func testStart_onAPortInUse_failsWithCannotListen() async throws {
        try await withServer { port in
            let second = ObservabilityServer(
                port: port, registry: MetricsBootstrap.prometheus(), healthy: { .ok }, ready: { .ok })
            do {
                try await second.start()
                XCTFail("a second server bound the same port")
            } catch let error as ObservabilityServerError {
                XCTAssertEqual(error.code, .cannotListen)
                XCTAssertTrue(error.description.contains("127.0.0.1:\(port)"), error.description)
            }
        }
    }

    func testGracefulShutdown_runReturnsAndPortIsClosed_evenWithAnIdleConnectionOpen() async throws {
        let server = ObservabilityServer(registry: MetricsBootstrap.prometheus(), healthy: { .ok }, ready: { .ok })
        let port = try await server.start()
        XCTAssertEqual(server.port, port)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [server], logger: Logger(label: "test")))

        try await withDeadline(seconds: 20) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                XCTAssertEqual(try HTTP.request("GET", port: port, path: "/healthz").status, 200)
                // A keep-alive client that sends nothing must not hold shutdown up.
                let idle = try IdleConnection(port: port)
                defer { idle.close() }

                await group.triggerGracefulShutdown()
                try await tasks.next()
                XCTAssertTrue(idle.isClosedByServer(), "an idle keep-alive connection outlived shutdown")
            }
        }
        XCTAssertFalse(LocalPorts.isListening(port), "the port still accepts connections after run() returned")
        XCTAssertNil(server.port)
    }

    func testRun_whenCancelled_returnsAndClosesThePort() async throws {
        let server = ObservabilityServer(registry: MetricsBootstrap.prometheus(), healthy: { .ok }, ready: { .ok })
        let port = try await server.start()
        try await withDeadline(seconds: 20) {
            let running = Task { try await server.run() }
            XCTAssertEqual(try HTTP.request("GET", port: port, path: "/healthz").status, 200)
            running.cancel()
            _ = await running.result
        }
        XCTAssertFalse(LocalPorts.isListening(port))
    }

    // MARK: - Helpers

    /// Runs a server on a free port while `body` talks to it, then shuts it down.
    private func withServer(
        registry: PrometheusCollectorRegistry = MetricsBootstrap.prometheus(),
        healthy: @escaping @Sendable () -> HealthStatus = { .ok },
        ready: @escaping @Sendable () -> HealthStatus = { .ok },
        _ body: (Int) async throws -> Void
    ) async throws {
        let server = ObservabilityServer(registry: registry, healthy: healthy, ready: ready)
        let port = try await server.start()
        let running = Task { try await server.run() }
        do {
            try await body(port)
        } catch {
            running.cancel()
            _ = await running.result
            throw error
        }
        running.cancel()
        try await running.value
    }

    /// Fails instead of hanging when `body` does not finish in time.
    private func withDeadline(seconds: Int, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return false
            }
            let finished = try await group.next()!
            group.cancelAll()
            if !finished { XCTFail("did not finish within \(seconds) s") }
        }
    }
}

/// A TCP connection that sends nothing: what a keep-alive scraper between scrapes looks like.
final class IdleConnection: Sendable {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            _ = Glibc.close(fd)
            throw TestSupportError("cannot connect to 127.0.0.1:\(port)")
        }
    }

    /// True when the server has closed its end: a read sees end-of-file instead of waiting.
    func isClosedByServer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 0
    }

    func close() { _ = Glibc.close(fd) }
}
