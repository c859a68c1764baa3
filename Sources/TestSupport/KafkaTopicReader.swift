import CRdKafka
import Foundation
import Kafka

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
/// librdkafka consumer (no group commits): how tests see what reached Kafka. It lives here, not
/// in the Kafka module, because only tests read topics back.
public enum KafkaTopicReader {
    public static func readAll(
        brokers: String, topic: String, properties: [(String, String)] = [], timeout: Duration = .seconds(60)
    ) throws -> [KafkaRecord] {
        let conf = rd_kafka_conf_new()
        var errstr = [CChar](repeating: 0, count: 512)
        let settings =
            [
                ("bootstrap.servers", brokers), ("group.id", "hemstream-reader-\(UUID().uuidString)"),
                ("enable.partition.eof", "true"), ("enable.auto.commit", "false"), ("auto.offset.reset", "earliest"),
                ("log_level", "0"),
            ] + properties
        for (key, value) in settings
        where rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw TestSupportError("kafka reader: \(key): \(text(errstr))")
        }
        guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw TestSupportError("kafka reader: \(text(errstr))")
        }
        defer { rd_kafka_destroy(handle) }
        let timeoutMs = Int32(timeout.components.seconds * 1000)

        var metadata: UnsafePointer<rd_kafka_metadata>?
        let metadataError = rd_kafka_metadata(handle, 1, nil, &metadata, timeoutMs)
        guard metadataError == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw TestSupportError(
                "kafka reader: metadata of \(brokers): \(String(cString: rd_kafka_err2str(metadataError)))")
        }
        var partitions = 0
        for i in 0..<Int(metadata.pointee.topic_cnt) where String(cString: metadata.pointee.topics[i].topic) == topic {
            partitions = Int(metadata.pointee.topics[i].partition_cnt)
        }
        rd_kafka_metadata_destroy(metadata)
        guard partitions > 0 else { throw TestSupportError("kafka reader: no topic \(topic) on \(brokers)") }

        let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<Int32(partitions) {
            rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        let assignError = rd_kafka_assign(handle, list)
        guard assignError == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw TestSupportError("kafka reader: assign \(topic): \(String(cString: rd_kafka_err2str(assignError)))")
        }
        defer { _ = rd_kafka_consumer_close(handle) }

        var records: [KafkaRecord] = []
        var atEnd = Set<Int32>()
        let deadline = ContinuousClock.now + timeout
        while atEnd.count < partitions {
            guard ContinuousClock.now < deadline else {
                throw TestSupportError("kafka reader: \(topic) not read to its end within \(timeout)")
            }
            guard let m = rd_kafka_consumer_poll(handle, 100) else { continue }
            defer { rd_kafka_message_destroy(m) }
            let msg = m.pointee
            if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                atEnd.insert(msg.partition)
                continue
            }
            guard msg.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw TestSupportError("kafka reader: reading \(topic): \(String(cString: rd_kafka_err2str(msg.err)))")
            }
            atEnd.remove(msg.partition)
            records.append(record(m))
        }
        return records
    }

    /// A C string from librdkafka's error buffer.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func record(_ m: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaRecord {
        let msg = m.pointee
        let value = msg.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.len)) } ?? []
        let key = msg.key.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.key_len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var i = 0
            var name: UnsafePointer<CChar>?
            var val: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
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
