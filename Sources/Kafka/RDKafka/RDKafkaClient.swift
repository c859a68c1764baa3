import CRdKafka
import Foundation
import Synchronization

/// What librdkafka's C callbacks reach through the opaque pointer: the delivery handler and
/// what the error callback learned. Immutable or mutex-guarded, so Sendable by construction.
final class RDKafkaContext: Sendable {
    let onDelivery: (@Sendable (KafkaDeliveryReport) -> Void)?
    /// librdkafka log lines at or below this syslog level go to stderr; -1 keeps them quiet.
    let logLevel: Int32
    let fatalError = Mutex<KafkaError?>(nil)
    let lastError = Mutex<String?>(nil)

    init(logLevel: Int32, onDelivery: (@Sendable (KafkaDeliveryReport) -> Void)?) {
        self.logLevel = logLevel
        self.onDelivery = onDelivery
    }
}

/// Owns one `rd_kafka_t` and destroys it in `deinit`. `@unchecked Sendable`: librdkafka documents
/// `rd_kafka_t` as thread-safe for produce, poll, flush, purge and metadata, the calls made here.
final class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let context: RDKafkaContext

    init(type: rd_kafka_type_t, configuration: KafkaConfiguration, context: RDKafkaContext) throws(KafkaError) {
        self.context = context
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in configuration.properties {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw .invalidArgument("Kafka property \(key): \(cString(errstr))")
            }
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        if type == RD_KAFKA_PRODUCER {
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
                guard let message, let opaque else { return }
                let m = message.pointee
                let report = KafkaDeliveryReport(
                    tag: UInt64(UInt(bitPattern: m._private)), partition: m.partition, offset: m.offset,
                    error: m.err.isError ? KafkaError(m.err) : nil)
                // Borrowed, not retained: the client (which owns the context) outlives its callbacks,
                // and this runs once per message.
                Unmanaged<RDKafkaContext>.fromOpaque(opaque)._withUnsafeGuaranteedRef { $0.onDelivery?(report) }
            }
        }
        rd_kafka_conf_set_error_cb(conf) { rk, err, reason, opaque in
            guard let opaque else { return }
            let context = Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue()
            let text = reason.map { String(cString: $0) } ?? ""
            if err == RD_KAFKA_RESP_ERR__FATAL.rawValue, let rk {
                var buf = [CChar](repeating: 0, count: 512)
                let original = rd_kafka_fatal_error(rk, &buf, buf.count)
                let error = KafkaError(original, context: cString(buf), isFatal: true)
                context.fatalError.withLock { if $0 == nil { $0 = error } }
            }
            context.lastError.withLock { $0 = text }
        }
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue()
            guard level <= context.logLevel, let message else { return }
            let line = "librdkafka: \(facility.map { String(cString: $0) } ?? ""): \(String(cString: message))\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw .invalidArgument("cannot create Kafka client: \(cString(errstr))")
        }
        self.handle = handle
    }

    deinit { rd_kafka_destroy(handle) }

    /// `builtin.features` of the linked librdkafka, e.g. `gzip`, `lz4`, `zstd`, `ssl`.
    static let builtinFeatures: [String] = {
        let conf = rd_kafka_conf_new()!
        defer { rd_kafka_conf_destroy(conf) }
        var buf = [CChar](repeating: 0, count: 1024)
        var size = buf.count
        guard rd_kafka_conf_get(conf, "builtin.features", &buf, &size) == RD_KAFKA_CONF_OK else { return [] }
        return cString(buf).split(separator: ",").map(String.init)
    }()

    /// Cluster metadata for every topic (a request that never auto-creates topics).
    func metadata(timeoutMs: Int32) -> Result<KafkaClusterMetadata, KafkaError> {
        var md: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 1, nil, &md, timeoutMs)
        guard !err.isError, let md else { return .failure(KafkaError(err)) }
        defer { rd_kafka_metadata_destroy(md) }
        let m = md.pointee
        let brokers = (0..<Int(m.broker_cnt)).map { i in
            let b = m.brokers[i]
            return "\(String(cString: b.host)):\(b.port)"
        }
        var topics: [String: KafkaClusterMetadata.Topic] = [:]
        for i in 0..<Int(m.topic_cnt) {
            let t = m.topics[i]
            let name = String(cString: t.topic)
            topics[name] = .init(
                name: name, partitions: Int(t.partition_cnt), error: t.err.isError ? KafkaError(t.err) : nil)
        }
        return .success(KafkaClusterMetadata(brokers: brokers, topics: topics))
    }

    /// Asks for one topic's metadata the way a producer does, which lets a broker with
    /// auto-creation on create it. Used only by `--create-topic`.
    func requestTopic(_ topic: String, timeoutMs: Int32) -> rd_kafka_resp_err_t {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else { return rd_kafka_last_error() }
        defer { rd_kafka_topic_destroy(rkt) }
        var md: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &md, timeoutMs)
        if let md { rd_kafka_metadata_destroy(md) }
        return err
    }

    /// Enqueues one message (librdkafka copies key, value and headers); `tag` comes back in its
    /// delivery report. Returns `_QUEUE_FULL` when the local queue is full.
    func produce(topic: OpaquePointer, message: KafkaMessage, tag: UInt64) -> rd_kafka_resp_err_t {
        // Header names (as C strings) and values, back to back in one buffer.
        var scratch: [UInt8] = []
        var offsets: [(name: Int, value: Int?)] = []
        for h in message.headers {
            let name = scratch.count
            scratch.append(contentsOf: h.name.utf8)
            scratch.append(0)
            var value: Int? = nil
            if let v = h.value {
                value = scratch.count
                scratch.append(contentsOf: v)
            }
            offsets.append((name, value))
        }
        scratch.append(0)
        return scratch.withUnsafeBytes { scratchBytes in
            let base = scratchBytes.baseAddress!
            let headers = zip(message.headers, offsets).map { h, o in
                KafkaRawHeader(
                    name: (base + o.name).assumingMemoryBound(to: CChar.self),
                    value: UnsafeRawBufferPointer(start: o.value.map { base + $0 }, count: h.value?.count ?? 0))
            }
            return headers.withUnsafeBufferPointer { headers in
                message.value.withUnsafeBytes { value in
                    withOptionalBytes(message.key) { key in
                        produce(topic: topic, key: key, value: value, headers: headers, tag: tag, copy: true)
                    }
                }
            }
        }
    }

    /// `produce` for bytes the caller already holds (the publish hot path): no copies on the
    /// Swift side; librdkafka copies key, value and headers before returning.
    func produce(
        topic: OpaquePointer, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer,
        headers: UnsafeBufferPointer<KafkaRawHeader>, tag: UInt64, copy: Bool = true
    ) -> rd_kafka_resp_err_t {
        withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 5 + headers.count) { vus in
            var count = 0
            func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                var vu = rd_kafka_vu_t()
                vu.vtype = type
                set(&vu)
                vus[count] = vu
                count += 1
            }
            add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topic }
            add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = copy ? RD_KAFKA_MSG_F_COPY : 0 }
            add(RD_KAFKA_VTYPE_VALUE) {
                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                $0.u.mem.size = value.count
            }
            if let key {
                add(RD_KAFKA_VTYPE_KEY) {
                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                    $0.u.mem.size = key.count
                }
            }
            add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(tag)) }
            for h in headers {
                add(RD_KAFKA_VTYPE_HEADER) {
                    $0.u.header.name = h.name
                    $0.u.header.val = h.value.baseAddress
                    $0.u.header.size = h.value.count
                }
            }
            guard let error = rd_kafka_produceva(handle, vus.baseAddress, count) else {
                return RD_KAFKA_RESP_ERR_NO_ERROR
            }
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            return code
        }
    }

    /// Waits up to `timeoutMs` for every queued message's delivery report.
    func flush(timeoutMs: Int32) -> rd_kafka_resp_err_t { rd_kafka_flush(handle, timeoutMs) }

    /// Fails every message still queued or in flight with `_PURGE_QUEUE`/`_PURGE_INFLIGHT`;
    /// their delivery reports arrive through poll like any other.
    func purge() {
        _ = rd_kafka_purge(handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING)
    }

    /// Serves callbacks (delivery reports, errors, logs) for up to `timeoutMs`.
    @discardableResult
    func poll(timeoutMs: Int32) -> Int32 { rd_kafka_poll(handle, timeoutMs) }

    var outQueueLength: Int { Int(rd_kafka_outq_len(handle)) }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// Brokers and topics as a metadata request saw them.
public struct KafkaClusterMetadata: Sendable {
    public struct Topic: Sendable {
        public var name: String
        public var partitions: Int
        public var error: KafkaError?
    }
    public var brokers: [String]
    public var topics: [String: Topic]
}

/// The text of a NUL-terminated C string held in an array.
func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
