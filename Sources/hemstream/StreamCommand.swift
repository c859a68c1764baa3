import AWSWire
import ArgumentParser
import Events
import Foundation
import Kafka
import Logging
import Outlet
import Observability
import ServiceLifecycle
import Stream
import Synchronization

struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Read the table's DynamoDB Stream and publish change events to Kafka, until SIGTERM.",
        discussion: """
            Finds the stream from DescribeTable (or --stream-arn), shares its shards with the other \
            replicas through a lease table in DynamoDB, reads each shard (parents before children), \
            turns records into change events (moves classified by the loader's previous_vup_id and a \
            hem-index lookup), publishes them keyed by hem, and moves each shard's checkpoint only past \
            what Kafka acknowledged. Records trimmed before they were read are a gap: a stream.gap \
            event, a metric and an error line (--on-gap halt stops instead).

            SIGTERM/SIGINT: stop polling, deliver what is in flight, checkpoint, release the leases \
            (another replica takes them at once), exit 0 within --shutdown-timeout.
            Exit codes: 0 stopped cleanly; 1 fatal error (nothing checkpointed past it); 4 gap with \
            --on-gap halt.

            Examples:
              hemstream stream --table vector_emails_operational --brokers kafka-1:9092 --topic hem-changes
              hemstream stream --brokers mock --topic hem-changes --sink stdout --start latest
            """)

    @OptionGroup var aws: AWSOptions
    @OptionGroup var tableName: TableNameOption
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "The change-event topic.") var topic = "hem-changes"
    @Option(help: "Dead-letter topic for records that cannot be read (keys and reason only).") var dlqTopic: String?
    @Option(help: "Where events go: kafka or stdout (NDJSON, for audits and debugging).") var sink = "kafka"
    @Option(help: "Read this stream instead of the table's latest.") var streamArn: String?
    @Option(help: "Lease table (default <table>-hemstream-leases; made on first start).") var leaseTable: String?
    @Option(help: "This replica's name in the lease table (default host-pid).") var workerId: String?
    @Option(help: "Where a new deployment starts: trim-horizon (all retained records) or latest.")
    var start = "trim-horizon"
    @Option(help: "On records trimmed before they were read: continue (gap event) or halt (exit 4).")
    var onGap = "continue"
    @Option(help: "Seconds without renewal after which another replica takes a lease.") var leaseDuration: Double = 10
    @Option(help: "Seconds between checkpoint rounds.") var checkpointInterval: Double = 1
    @Option(help: "Seconds between full shard listings (a finished shard's children are looked up at once).")
    var discoveryInterval: Double = 60
    @Option(help: "Seconds a move's halves without previous_vup_id wait for each other.") var pairWindow: Double = 30
    @Option(help: "Seconds a REMOVE's hem-index lookup allows the index to catch up.") var indexGrace: Double = 2
    @Option(help: "Seconds to deliver, checkpoint and release on SIGTERM.") var shutdownTimeout: Double = 30
    @OptionGroup var pii: PIIKeyOption
    @OptionGroup var log: LogOptions
    @Option(help: "Port for /metrics (Prometheus), /healthz and /readyz; none: no endpoint.") var metricsPort: Int?
    @Option(help: "Address the metrics endpoint binds to.") var metricsHost = "0.0.0.0"

    func validate() throws {
        guard ["trim-horizon", "latest"].contains(start) else { throw ValidationError("--start: trim-horizon or latest") }
        guard ["continue", "halt"].contains(onGap) else { throw ValidationError("--on-gap: continue or halt") }
        guard ["kafka", "stdout"].contains(sink) else { throw ValidationError("--sink: kafka or stdout") }
        if let p = metricsPort, !(0...65535).contains(p) { throw ValidationError("--metrics-port: 0-65535") }
        guard leaseDuration >= 1, checkpointInterval > 0, shutdownTimeout > 0, pairWindow >= 0, discoveryInterval >= 1 else {
            throw ValidationError("--lease-duration ≥ 1; intervals and timeouts must be positive")
        }
        if sink == "kafka" && kafka.brokers == nil && kafka.kafkaConfig == nil {
            throw ValidationError("give --brokers (or --sink stdout)")
        }
    }

    func run() async throws {
        log.bootstrap()
        let logger = Logger(label: "hemstream.stream")
        let fail = { (message: String) -> ExitCode in
            Console.line("hemstream stream: \(message)")
            return ExitCode.failure
        }
        let client: AWSClient
        do { client = try aws.client() } catch { throw fail("\(error)") }
        let key: [UInt8]?
        switch pii.key() {
        case .success(let k): key = k
        case .failure(let e): throw fail(e.description)
        }
        let fields: FieldClassification
        do { fields = try FieldClassification.load() } catch { throw fail("cannot load schemas/fields.json: \(error)") }
        let region = client.configuration.region
        let detector = ChangeDetector(region: region, table: tableName.table, fields: fields, window: pairWindow, piiKey: key)
        let registry = MetricsBootstrap.prometheus()
        let metrics = StreamMetrics()
        let pipeline = EventPipeline(detector: detector, metrics: metrics, hasDLQ: dlqTopic != nil) { logger.error("\($0)") }

        var mock: KafkaMockCluster?
        var kafkaSink: KafkaOutlet?
        if sink == "stdout" {
            do { try StandardDescriptors.requireStandardOutput(for: "--sink stdout's events") } catch { throw fail("\(error)") }
            // A reader of stdout that goes away (`| head`) is a write error with its reason and
            // exit 1, not a silent death by SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            pipeline.attach(StdoutOutlet { [weak pipeline] tag in pipeline?.delivered(tag: tag, error: nil) })
        } else {
            do {
                // Never give up on a message while the brokers are away: the checkpoint waits.
                let (config, cluster) = try kafka.configuration(
                    messageTimeoutMs: 0, topics: [topic] + (dlqTopic.map { [$0] } ?? []))
                mock = cluster
                let s = try KafkaOutlet(
                    topic: topic, dlqTopic: dlqTopic, configuration: config, createTopic: kafka.createTopic,
                    metadataTimeout: .seconds(kafka.metadataTimeout), logLevel: kafka.verbose ? 7 : -1
                ) { [weak pipeline] tag, error in
                    pipeline?.delivered(tag: tag, error: error.map { "\($0)" })
                }
                pipeline.attach(s)
                kafkaSink = s
            } catch { throw fail("\(error)") }
        }

        var options = StreamWorkerOptions(
            table: tableName.table, region: region, leaseTable: leaseTable ?? "\(tableName.table)-hemstream-leases",
            workerID: workerId ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())")
        options.streamARN = streamArn
        options.startAtLatest = start == "latest"
        options.haltOnGap = onGap == "halt"
        options.leaseDuration = leaseDuration
        options.tick = checkpointInterval
        options.discoveryInterval = discoveryInterval
        let worker = StreamWorker(
            options: options, client: client, pipeline: pipeline, metrics: metrics, resolverGrace: indexGrace,
            logger: logger)

        // One service group: the reader and the metrics endpoint; SIGTERM/SIGINT start a graceful
        // shutdown (deliver, checkpoint, release) bounded by --shutdown-timeout.
        let readerService = StreamReaderService(worker: worker, shutdownTimeout: shutdownTimeout)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: readerService, successTerminationBehavior: .gracefullyShutdownGroup)
        ]
        if let metricsPort {
            let kafkaUp = kafkaSink.map { KafkaReachability($0) }
            let server = ObservabilityServer(
                host: metricsHost, port: metricsPort, registry: registry,
                healthy: { worker.isHealthy ? .ok : .unavailable(reason: "the lease and checkpoint loop has stalled") },
                ready: {
                    guard worker.isReady else { return .unavailable(reason: "leases not scanned yet") }
                    if let kafkaUp, !kafkaUp.isReachable { return .unavailable(reason: "Kafka metadata unreachable") }
                    return .ok
                }, logger: logger)
            do {
                let port = try await server.start()
                logger.info("metrics on http://\(metricsHost):\(port)/metrics")
            } catch { throw fail("\(error)") }
            services.append(.init(service: server))
        }
        var config = ServiceGroupConfiguration(services: services, logger: logger)
        config.gracefulShutdownSignals = [.sigterm, .sigint]
        config.maximumGracefulShutdownDuration = .seconds(shutdownTimeout + 5)
        do {
            try await ServiceGroup(configuration: config).run()
        } catch {
            logger.error("service group ended: \(error)")
        }
        let exit = readerService.exit.withLock { $0 } ?? .stopped
        kafkaSink?.close(timeout: .seconds(5))
        withExtendedLifetime(mock) {}
        switch exit {
        case .stopped:
            logger.info("stopped cleanly")
        case .gapHalt(let why):
            Console.line("hemstream stream: halted on a gap (--on-gap halt): \(why)")
            throw Exit.gapHalt
        case .fatal(let why):
            throw fail(why)
        }
    }
}

/// The stream worker as a ServiceLifecycle service: graceful shutdown stops it, and how it
/// ended is kept for the exit code.
final class StreamReaderService: Service, Sendable {
    let worker: StreamWorker
    let shutdownTimeout: Double
    let exit = Mutex<StreamExit?>(nil)

    init(worker: StreamWorker, shutdownTimeout: Double) {
        self.worker = worker
        self.shutdownTimeout = shutdownTimeout
    }

    func run() async throws {
        let worker = self.worker
        let ended = await withGracefulShutdownHandler {
            await worker.run(shutdownTimeout: shutdownTimeout)
        } onGracefulShutdown: {
            worker.stop()
        }
        exit.withLock { $0 = ended }
    }
}

/// Whether Kafka's brokers answer metadata, asked every 5 s on a thread of its own (the call
/// blocks), so /readyz answers at once.
final class KafkaReachability: Sendable {
    let reachable = Atomic<Bool>(true)

    init(_ sink: KafkaOutlet) {
        let thread = Thread { [weak self] in
            while let self {
                self.reachable.store(sink.reachable(), ordering: .relaxed)
                Thread.sleep(forTimeInterval: 5)
            }
        }
        thread.name = "kafka-readiness"
        thread.start()
    }

    var isReachable: Bool { reachable.load(ordering: .relaxed) }
}
