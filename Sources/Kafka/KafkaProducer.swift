import CRdKafka
import Foundation
import Synchronization
import ThreadNames

/// A producer for one topic. Messages are enqueued with `send` and their delivery reports come
/// back, tagged, through `onDelivery` on a dedicated poll thread (never the cooperative pool),
/// or, with `pollInBackground: false`, on the thread that calls `send`/`serveReports`/`close`.
/// `close` flushes within a bound and fails, by report, whatever is still unacknowledged.
public final class KafkaProducer: @unchecked Sendable {
    // @unchecked: `topicHandle` is an rd_kafka_topic_t, which librdkafka documents as usable
    // from any thread; every other stored property is Sendable.
    public let topic: String
    public let bootstrapServers: String
    /// Partitions of the topic when the producer started.
    public let partitionCount: Int
    let client: RDKafkaClient
    let topicHandle: OpaquePointer
    private let poller: PollThread?

    /// Creates the client, checks through metadata (within `metadataTimeout`) that the topic
    /// exists, creating it first when `createTopic` is set, and starts the poll thread.
    /// `logLevel` (syslog levels, 0-7) lets librdkafka's own log lines through to stderr; -1
    /// keeps them quiet. `pollInBackground: false` leaves serving reports (and errors) to the
    /// caller's one sending thread, as kcat does: librdkafka then frees each message on the
    /// thread that allocated it, which glibc's malloc does much faster.
    /// `shouldStop` is asked while waiting for the brokers: once it says so, the wait ends with
    /// `KafkaError.stopped` (a signal must not wait out the metadata timeout, nor kill the process).
    public init(
        topic: String, configuration: KafkaConfiguration, createTopic: Bool = false,
        metadataTimeout: Duration = .seconds(10), logLevel: Int32 = -1, pollInBackground: Bool = true,
        shouldStop: () -> Bool = { false },
        onDelivery: @escaping @Sendable (KafkaDeliveryReport) -> Void
    ) throws(KafkaError) {
        self.topic = topic
        self.bootstrapServers = configuration["bootstrap.servers"] ?? ""
        let context = RDKafkaContext(logLevel: logLevel, onDelivery: onDelivery)
        client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, configuration: configuration, context: context)
        // Before any topic handle exists: a handle makes librdkafka ask for the topic in a way
        // that lets brokers auto-create it, which would hide a misspelt topic.
        partitionCount = try Self.checkTopic(
            topic, client: client, bootstrapServers: bootstrapServers, create: createTopic, timeout: metadataTimeout,
            shouldStop: shouldStop)
        guard let rkt = rd_kafka_topic_new(client.handle, topic, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "topic \(topic)")
        }
        topicHandle = rkt
        poller = pollInBackground ? PollThread(client: client) : nil
    }

    deinit {
        poller?.stop()
        rd_kafka_topic_destroy(topicHandle)
    }

    /// The fatal error librdkafka raised (the idempotent producer can no longer guarantee
    /// ordering or delivery), if any. After one the producer must stop.
    /// Asked of librdkafka directly too, so it is known before any callback has been served.
    public var fatalError: KafkaError? {
        if let known = client.context.fatalError.withLock({ $0 }) { return known }
        guard rd_kafka_fatal_error(client.handle, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        var buf = [CChar](repeating: 0, count: 512)
        let error = KafkaError(rd_kafka_fatal_error(client.handle, &buf, buf.count), context: cString(buf), isFatal: true)
        return client.context.fatalError.withLock { known in
            if known == nil { known = error }
            return known
        }
    }

    /// What librdkafka last reported through its error callback (all brokers down, a refused
    /// connection), nil while nothing went wrong: the producer's own view of an outage.
    public var lastClientError: String? { client.context.lastError.withLock { $0 } }

    /// Cluster metadata, bounded by `timeout`. An unreachable cluster is an error that names the
    /// brokers and what librdkafka last reported about them.
    public func metadata(timeout: Duration = .seconds(10)) throws(KafkaError) -> KafkaClusterMetadata {
        try Self.metadata(client: client, bootstrapServers: bootstrapServers, timeout: timeout)
    }

    /// Waits in slices of at most 200 ms, so `shouldStop` is heard within that; a transient
    /// failure (a connection refused or dropped while a broker starts) is asked again until the
    /// deadline, as librdkafka itself reconnects.
    static func metadata(
        client: RDKafkaClient, bootstrapServers: String, timeout: Duration, shouldStop: () -> Bool = { false }
    ) throws(KafkaError) -> KafkaClusterMetadata {
        let deadline = ContinuousClock.now + timeout
        while true {
            if shouldStop() { throw KafkaError.stopped("while waiting for Kafka brokers \(bootstrapServers)") }
            let slice = min(.milliseconds(200), max(.milliseconds(1), deadline - ContinuousClock.now))
            let started = ContinuousClock.now
            switch client.metadata(timeoutMs: slice.milliseconds) {
            case .success(let md): return md
            case .failure(var error):
                if error.isRetriable, ContinuousClock.now < deadline {
                    // A failure that came back at once is not retried in a busy loop.
                    let rest = slice - (ContinuousClock.now - started)
                    if rest > .zero { Thread.sleep(forTimeInterval: Double(rest.milliseconds) / 1000) }
                    continue
                }
                let why = client.context.lastError.withLock { $0 } ?? error.message
                error.message = "cannot reach Kafka brokers \(bootstrapServers) within \(timeout.seconds) s: \(why)"
                throw error
            }
        }
    }

    /// Checks that the topic exists and returns its partition count; with `create`, asks the
    /// cluster to auto-create it first (local use: brokers with auto-creation on, or the mock).
    static func checkTopic(
        _ topic: String, client: RDKafkaClient, bootstrapServers: String, create: Bool, timeout: Duration,
        shouldStop: () -> Bool
    ) throws(KafkaError) -> Int {
        func metadata(timeout: Duration) throws(KafkaError) -> KafkaClusterMetadata {
            try Self.metadata(client: client, bootstrapServers: bootstrapServers, timeout: timeout, shouldStop: shouldStop)
        }
        var md = try metadata(timeout: timeout)
        if md.topics[topic] == nil, create {
            _ = client.requestTopic(topic, timeoutMs: timeout.milliseconds)
            let deadline = ContinuousClock.now + timeout
            while md.topics[topic] == nil, ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.1)
                md = try metadata(timeout: timeout)
            }
        }
        guard let t = md.topics[topic] else {
            let brokers = md.brokers.isEmpty ? bootstrapServers : md.brokers.joined(separator: ",")
            throw KafkaError(
                code: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue, name: "UNKNOWN_TOPIC_OR_PART",
                message: "topic '\(topic)' does not exist on brokers \(brokers)"
                    + (create ? " and could not be created" : " (--create-topic creates it for local use)"))
        }
        if let error = t.error {
            throw KafkaError(
                code: error.code, name: error.name, message: "topic '\(topic)': \(error.message)",
                isFatal: error.isFatal, isRetriable: error.isRetriable)
        }
        return t.partitions
    }

    /// Enqueues one message; its report comes back through `onDelivery` with `tag`. When the
    /// local queue is full it waits for room, giving up (returning false) once `shouldStop` says
    /// so. Throws when librdkafka refuses the message outright (too large, fatal state).
    public func send(_ message: KafkaMessage, tag: UInt64, shouldStop: () -> Bool = { false }) throws(KafkaError)
        -> Bool
    {
        while true {
            let err = client.produce(topic: topicHandle, message: message, tag: tag)
            if !err.isError { return true }
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { throw KafkaError(err) }
            if shouldStop() { return false }
            if let fatal = fatalError { throw fatal }
            if poller == nil { client.poll(timeoutMs: 1) } else { usleep(500) }
        }
    }

    /// `send` for bytes the caller holds (no intermediate arrays): the hot path of `publish`.
    /// With `copy: false` librdkafka keeps pointing at `value` (key and headers are always
    /// copied): the caller must keep those bytes alive and unchanged until the delivery report.
    public func send(
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers: UnsafeBufferPointer<KafkaRawHeader>,
        tag: UInt64, copy: Bool = true, shouldStop: () -> Bool = { false }
    ) throws(KafkaError) -> Bool {
        while true {
            let err = client.produce(topic: topicHandle, key: key, value: value, headers: headers, tag: tag, copy: copy)
            if !err.isError { return true }
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { throw KafkaError(err) }
            if shouldStop() { return false }
            if let fatal = fatalError { throw fatal }
            if poller == nil { client.poll(timeoutMs: 1) } else { usleep(500) }
        }
    }

    /// Messages not yet acknowledged or failed.
    public var inFlight: Int { client.outQueueLength }

    /// Blocks the calling thread until everything is acknowledged or `timeout` passes; true
    /// when nothing is left. Call it from a thread of your own, or use `flush(timeout:) async`.
    public func flushBlocking(timeout: Duration) -> Bool {
        !client.flush(timeoutMs: timeout.milliseconds).isError && client.outQueueLength == 0
    }

    /// `flushBlocking` on a dedicated thread, so the cooperative pool never blocks.
    public func flush(timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.flushBlocking(timeout: timeout)) }
        }
    }

    /// Graceful end: flush within `flushTimeout`; what is still pending is purged, so its
    /// delivery report arrives as a failure (`_PURGE_QUEUE`/`_PURGE_INFLIGHT`). Returns once
    /// every message has had its report; blocking, so call it off the cooperative pool.
    public func close(flushTimeout: Duration) {
        if !flushBlocking(timeout: flushTimeout) {
            client.purge()
            let deadline = ContinuousClock.now + .seconds(10)
            while client.outQueueLength > 0, ContinuousClock.now < deadline {
                client.poll(timeoutMs: 50)
            }
        }
        poller?.stop()
        if poller == nil { client.poll(timeoutMs: 0) }
    }

    /// Serves delivery reports and errors that are ready, waiting up to `timeoutMs` for one.
    /// Needed (regularly) only without the background poll thread.
    public func serveReports(timeoutMs: Int32 = 0) { client.poll(timeoutMs: timeoutMs) }
}

/// Serves librdkafka's callbacks on a thread of its own until stopped.
final class PollThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let done = DispatchSemaphore(value: 0)
    private let stopped = Mutex<Bool>(false)

    init(client: RDKafkaClient) {
        let thread = Thread { [self] in
            nameCurrentThread("hs-kafka-poll")
            while running.load(ordering: .acquiring) { client.poll(timeoutMs: 100) }
            client.poll(timeoutMs: 0)
            done.signal()
        }
        thread.start()
    }

    func stop() {
        let first = stopped.withLock { s in
            defer { s = true }
            return !s
        }
        guard first else { return }
        running.store(false, ordering: .releasing)
        done.wait()
    }
}

extension Duration {
    var milliseconds: Int32 {
        let (s, atto) = components
        return Int32(clamping: s * 1000 + atto / 1_000_000_000_000_000)
    }
    var seconds: String {
        let ms = Double(milliseconds) / 1000
        return ms == ms.rounded() ? String(Int(ms)) : String(ms)
    }
}
