import CRdKafka
import Foundation

/// One record as read back from a topic.
public struct KafkaRecord: Sendable {
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Reads a whole topic, every partition from its beginning to its current end, with a plain
/// librdkafka consumer (no group commits). For tests, checks and audits.
public enum KafkaTopicReader {
    public static func readAll(
        brokers: String, topic: String, extra: KafkaConfiguration = KafkaConfiguration(),
        timeout: Duration = .seconds(60)
    ) throws(KafkaError) -> [KafkaRecord] {
        var config = KafkaConfiguration([
            ("bootstrap.servers", brokers), ("group.id", "hemstream-reader-\(UUID().uuidString)"),
            ("enable.partition.eof", "true"), ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
        ])
        for p in extra.properties { config.set(p.key, p.value) }
        let client = try RDKafkaClient(
            type: RD_KAFKA_CONSUMER, configuration: config, context: RDKafkaContext(logLevel: -1, onDelivery: nil))
        let md = try client.metadata(timeoutMs: timeout.milliseconds).get()
        guard let partitions = md.topics[topic]?.partitions, partitions > 0 else {
            throw KafkaError(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, context: "topic \(topic)")
        }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<Int32(partitions) {
            rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        let assignError = rd_kafka_assign(client.handle, list)
        if assignError.isError { throw KafkaError(assignError, context: "assign \(topic)") }
        defer { _ = rd_kafka_consumer_close(client.handle) }

        var records: [KafkaRecord] = []
        var atEnd = Set<Int32>()
        let deadline = ContinuousClock.now + timeout
        while atEnd.count < partitions {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, context: "reading \(topic)")
            }
            guard let m = rd_kafka_consumer_poll(client.handle, 100) else { continue }
            defer { rd_kafka_message_destroy(m) }
            let msg = m.pointee
            if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                atEnd.insert(msg.partition)
                continue
            }
            if msg.err.isError { throw KafkaError(msg.err, context: "reading \(topic)") }
            atEnd.remove(msg.partition)
            records.append(record(m))
        }
        return records
    }

    static func record(_ m: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaRecord {
        let msg = m.pointee
        let value = msg.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.len)) } ?? []
        let key = msg.key.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.key_len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if !rd_kafka_message_headers(m, &hdrs).isError, let hdrs {
            var i = 0
            var name: UnsafePointer<CChar>?
            var val: UnsafeRawPointer?
            var size = 0
            while !rd_kafka_header_get_all(hdrs, i, &name, &val, &size).isError {
                headers.append(
                    KafkaHeader(
                        name: name.map { String(cString: $0) } ?? "",
                        value: val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                i += 1
            }
        }
        return KafkaRecord(partition: msg.partition, offset: msg.offset, key: key, value: value, headers: headers)
    }
}
