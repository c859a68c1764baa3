import Foundation
import Kafka
import Synchronization

/// Events to Kafka: the change-event topic, and the dead-letter topic when one is given.
/// Delivery reports come back on the producers' poll threads and go to the pipeline.
public final class KafkaEventSink: EventSink {
    let events: KafkaProducer
    let deadLetters: KafkaProducer?

    public init(
        topic: String, dlqTopic: String?, configuration: KafkaConfiguration, createTopic: Bool,
        metadataTimeout: Duration, logLevel: Int32, pipeline: EventPipeline
    ) throws(KafkaError) {
        let onDelivery: @Sendable (KafkaDeliveryReport) -> Void = { [weak pipeline] report in
            pipeline?.delivered(tag: report.tag, error: report.error.map { "\($0)" })
        }
        events = try KafkaProducer(
            topic: topic, configuration: configuration, createTopic: createTopic, metadataTimeout: metadataTimeout,
            logLevel: logLevel, onDelivery: onDelivery)
        deadLetters = try dlqTopic.map { t throws(KafkaError) in
            try KafkaProducer(
                topic: t, configuration: configuration, createTopic: createTopic, metadataTimeout: metadataTimeout,
                logLevel: logLevel, onDelivery: onDelivery)
        }
    }

    /// Produces `value` without a copy (the pipeline holds it until the delivery report); key
    /// and headers are copied by librdkafka during the call.
    public func send(key: [UInt8], value: [UInt8], headers: EventHeaders?, tag: UInt64, toDLQ: Bool) throws -> Bool {
        let producer = toDLQ ? (deadLetters ?? events) : events
        // The pointer outlives the closure: `value`'s storage is kept alive, unchanged, by the
        // pipeline's in-flight entry until the delivery report (as publish pins its chunks).
        let payload = value.withUnsafeBytes { $0 }
        try key.withUnsafeBytes { k in
            guard let headers else {
                _ = try producer.send(
                    key: k.isEmpty ? nil : k, value: payload, headers: UnsafeBufferPointer(start: nil, count: 0), tag: tag,
                    copy: false)
                return
            }
            var id = headers.id
            var type = headers.type
            try id.withUTF8 { id in
                try type.withUTF8 { type in
                    try withUnsafeTemporaryAllocation(of: KafkaRawHeader.self, capacity: 4) { h in
                        h[0] = KafkaRawHeader("content-type", "application/cloudevents+json")
                        h[1] = KafkaRawHeader("ce_specversion", "1.0")
                        h[2] = KafkaRawHeader("ce_id", UnsafeRawBufferPointer(id))
                        h[3] = KafkaRawHeader("ce_type", UnsafeRawBufferPointer(type))
                        _ = try producer.send(
                            key: k.isEmpty ? nil : k, value: payload, headers: UnsafeBufferPointer(h), tag: tag, copy: false)
                    }
                }
            }
        }
        return false
    }

    public func flush(timeout: Duration) async -> Bool {
        let a = await events.flush(timeout: timeout)
        let b = await deadLetters?.flush(timeout: timeout) ?? true
        return a && b
    }

    public func close(timeout: Duration) {
        events.close(flushTimeout: timeout)
        deadLetters?.close(flushTimeout: timeout)
    }

    /// Checks the brokers answer (for /readyz).
    public func reachable() -> Bool { (try? events.metadata(timeout: .seconds(2))) != nil }
}

/// Events as NDJSON on stdout (`--sink stdout`): audits and debugging. A line written is acknowledged.
public final class StdoutEventSink: EventSink {
    let lock = Mutex(())
    public init() {}

    public func send(key: [UInt8], value: [UInt8], headers: EventHeaders?, tag: UInt64, toDLQ: Bool) throws -> Bool {
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data(value + [10]))
        }
        return true
    }

    public func flush(timeout: Duration) async -> Bool { true }
    public func close(timeout: Duration) {}
}
