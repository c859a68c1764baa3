import Events
import Foundation
import Kafka
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The CloudEvents attributes an event's record carries as headers (structured mode, plus the
/// routing attributes, so consumers can filter without parsing the value). A missing attribute
/// is left out; dead letters carry none.
public struct EventHeaders: Sendable {
    public var specversion: String?
    public var id: String?
    public var type: String?

    public init(id: String?, type: String?, specversion: String? = "1.0") {
        self.id = id
        self.type = type
        self.specversion = specversion
    }
}

/// What became of an event handed to an outlet.
public enum Sent: Sendable, Equatable {
    /// Enqueued: its acknowledgement comes back later, by tag.
    case enqueued
    /// Held an email-shaped value (the PII guard): not sent, and never to be.
    case blockedPII
    /// Not enqueued: the caller asked to stop while the producer's queue was full.
    case stopped
}

/// Where change events leave the process (`publish` and `stream` alike): Kafka, or NDJSON on
/// stdout. Every event goes through `send`, which applies the PII guard first, so no door is
/// left without it.
public protocol EventOutlet: Sendable {
    /// Sends one event (or, with `toDLQ`, a dead letter) keyed by `key`; its acknowledgement
    /// comes back by `tag` (see `Sent`). The caller keeps `value` unchanged until then, so an
    /// outlet may hand Kafka the bytes themselves instead of a copy.
    func send(key: [UInt8], value: [UInt8], headers: EventHeaders?, tag: UInt64, toDLQ: Bool) throws -> Sent
    /// Sends one event whose key (its hem), id, type and specversion sit at `fields` in `value`
    /// (as the event scanner or the detector found them), PII guard first; the same promise
    /// about `value` as `send`. Kafka sends it from those bytes: no key array or header Strings.
    func send(event value: [UInt8], _ fields: EventScanner.Fields, tag: UInt64) throws -> Sent
    /// Sends on what the outlet holds back from the events given since the last call (stdout
    /// writes its lines); called after each batch (a page's events, a settling). Kafka's
    /// producer batches on its own: nothing to do there.
    func endOfBatch() throws
    /// Waits up to `timeout` for everything sent to be acknowledged; true when nothing is left.
    func flush(timeout: Duration) async -> Bool
    /// Flushes within `timeout`; what is still unacknowledged then is failed by report.
    func close(timeout: Duration)
}

extension EventOutlet {
    public func endOfBatch() throws {}

    /// `send(key:value:headers:…)` with the key and headers read out of `value`.
    public func send(event value: [UInt8], _ f: EventScanner.Fields, tag: UInt64) throws -> Sent {
        func text(_ r: Range<Int>?) -> String? { r.map { String(decoding: value[$0], as: UTF8.self) } }
        return try send(
            key: Array(value[f.key]), value: value,
            headers: EventHeaders(id: text(f.id), type: text(f.type), specversion: text(f.specversion)), tag: tag,
            toDLQ: false)
    }
}

/// Change events to one Kafka topic (and dead letters to a second, when given), with the
/// CloudEvents headers, keyed by hem; each delivery report comes back to `onDelivery` by tag.
public final class KafkaOutlet: EventOutlet {
    /// The producer of the event topic (its reports, errors and queue).
    public let events: KafkaProducer
    let deadLetters: KafkaProducer?

    /// `pollInBackground` and `shouldStop` as for `KafkaProducer.init`; `onDelivery` gets each
    /// message's tag and, when it was not acknowledged, why.
    public init(
        topic: String, dlqTopic: String? = nil, configuration: KafkaConfiguration, createTopic: Bool = false,
        metadataTimeout: Duration = .seconds(10), logLevel: Int32 = -1, pollInBackground: Bool = true,
        shouldStop: () -> Bool = { false },
        onDelivery: @escaping @Sendable (_ tag: UInt64, _ error: KafkaError?) -> Void
    ) throws(KafkaError) {
        let reports: @Sendable (KafkaDeliveryReport) -> Void = { onDelivery($0.tag, $0.error) }
        events = try KafkaProducer(
            topic: topic, configuration: configuration, createTopic: createTopic, metadataTimeout: metadataTimeout,
            logLevel: logLevel, pollInBackground: pollInBackground, shouldStop: shouldStop, onDelivery: reports)
        deadLetters = try dlqTopic.map { t throws(KafkaError) in
            try KafkaProducer(
                topic: t, configuration: configuration, createTopic: createTopic, metadataTimeout: metadataTimeout,
                logLevel: logLevel, pollInBackground: pollInBackground, shouldStop: shouldStop, onDelivery: reports)
        }
    }

    public func send(key: [UInt8], value: [UInt8], headers: EventHeaders?, tag: UInt64, toDLQ: Bool) throws -> Sent {
        try send(key: key, value: value, headers: headers, tag: tag, toDLQ: toDLQ, copy: false)
    }

    /// `send` with the choice of copying the value (`copy: false` keeps pointing at it until the
    /// report) and of giving up while the queue is full (`shouldStop`).
    public func send(
        key: [UInt8], value: [UInt8], headers: EventHeaders?, tag: UInt64, toDLQ: Bool = false, copy: Bool,
        shouldStop: () -> Bool = { false }
    ) throws(KafkaError) -> Sent {
        if PIIGuard.containsEmailAddress(value) { return .blockedPII }
        // The pointer outlives the closure: with `copy: false` the caller keeps `value`'s storage
        // alive, unchanged, until the delivery report.
        let payload = value.withUnsafeBytes { $0 }
        // Results, not throws, through the closures: the standard library's `with...` calls
        // rethrow untyped errors.
        let result: Result<Sent, KafkaError> = key.withUnsafeBytes { k in
            func produce(
                _ specversion: UnsafeRawBufferPointer?, _ id: UnsafeRawBufferPointer?, _ type: UnsafeRawBufferPointer?
            )
                -> Result<Sent, KafkaError>
            {
                Result { () throws(KafkaError) in
                    try self.produce(
                        key: k.isEmpty ? nil : k, value: payload, cloudEvent: headers != nil, specversion: specversion,
                        id: id, type: type, tag: tag, toDLQ: toDLQ, copy: copy, shouldStop: shouldStop)
                }
            }
            guard let headers else { return produce(nil, nil, nil) }
            return withUTF8(headers.specversion) { specversion in
                withUTF8(headers.id) { id in withUTF8(headers.type) { type in produce(specversion, id, type) } }
            }
        }
        return try result.get()
    }

    public func send(event value: [UInt8], _ f: EventScanner.Fields, tag: UInt64) throws -> Sent {
        if PIIGuard.containsEmailAddress(value) { return .blockedPII }
        // The pointer outlives the closure, as in `send(key:value:…)`: the caller keeps `value`'s
        // storage alive, unchanged, until the delivery report.
        return try value.withUnsafeBufferPointer { line throws(KafkaError) in
            try send(scanned: line, f, tag: tag, copy: false, shouldStop: { false })
        }
    }

    /// The hot path of `publish`: a line the event scanner passed, sent from its own bytes and
    /// the field ranges the scanner found. The caller has run the PII guard over the line
    /// already (publish does, first thing, on its checking threads, off this producing one).
    public func send(
        scanned line: UnsafeBufferPointer<UInt8>, _ f: EventScanner.Fields, tag: UInt64, copy: Bool,
        shouldStop: () -> Bool
    ) throws(KafkaError) -> Sent {
        let base = UnsafeRawPointer(line.baseAddress!)
        func bytes(_ r: Range<Int>?) -> UnsafeRawBufferPointer? {
            r.map { UnsafeRawBufferPointer(start: base + $0.lowerBound, count: $0.count) }
        }
        return try produce(
            key: bytes(f.key), value: UnsafeRawBufferPointer(line), cloudEvent: true, specversion: bytes(f.specversion),
            id: bytes(f.id),
            type: bytes(f.type), tag: tag, toDLQ: false, copy: copy, shouldStop: shouldStop)
    }

    /// The one place records get their headers: with `cloudEvent`, content-type and then each
    /// attribute present; without (a dead letter), none.
    private func produce(
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, cloudEvent: Bool,
        specversion: UnsafeRawBufferPointer?,
        id: UnsafeRawBufferPointer?, type: UnsafeRawBufferPointer?, tag: UInt64, toDLQ: Bool, copy: Bool,
        shouldStop: () -> Bool
    ) throws(KafkaError) -> Sent {
        let producer = toDLQ ? (deadLetters ?? events) : events
        let sent = withUnsafeTemporaryAllocation(of: KafkaRawHeader.self, capacity: 4) {
            h -> Result<Bool, KafkaError> in
            var n = 0
            if cloudEvent {
                h[0] = KafkaRawHeader("content-type", "application/cloudevents+json")
                n = 1
                // Written out, not looped over: an array literal here would allocate per record.
                if let specversion {
                    h[n] = KafkaRawHeader("ce_specversion", specversion)
                    n += 1
                }
                if let id {
                    h[n] = KafkaRawHeader("ce_id", id)
                    n += 1
                }
                if let type {
                    h[n] = KafkaRawHeader("ce_type", type)
                    n += 1
                }
            }
            let headers = UnsafeBufferPointer(rebasing: h[0..<n])
            return Result { () throws(KafkaError) in
                try producer.send(
                    key: key, value: value, headers: headers, tag: tag, copy: copy, shouldStop: shouldStop)
            }
        }
        return try sent.get() ? .enqueued : .stopped
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

/// Events as NDJSON on stdout (`--sink stdout`): audits and debugging. The PII guard applies
/// here too. Lines are gathered and written at the end of each batch (a page's events), or when
/// a megabyte is waiting, with as few `write(2)`s as the descriptor takes; each line's
/// acknowledgement comes back by tag once it is written, so the checkpoint never passes a line
/// not yet written. (A `write(2)` per line made this sink cost more CPU than producing to Kafka.)
public final class StdoutOutlet: EventOutlet {
    struct Pending {
        var bytes: [UInt8] = []
        var tags: [UInt64] = []
    }
    let pending = Mutex(Pending())
    let descriptor: Int32
    let onWritten: @Sendable (UInt64) -> Void
    /// Lines waiting at most, in bytes, before they are written without waiting for the batch end.
    static let batchBytes = 1 << 20

    /// `descriptor`: where lines go (standard output; a test gives a file). `onWritten` gets the
    /// tag of each line once it is written.
    public init(descriptor: Int32 = STDOUT_FILENO, onWritten: @escaping @Sendable (UInt64) -> Void) {
        self.descriptor = descriptor
        self.onWritten = onWritten
    }

    public func send(key: [UInt8], value: [UInt8], headers: EventHeaders?, tag: UInt64, toDLQ: Bool) throws -> Sent {
        try add(value, tag: tag)
    }

    /// The event as it is: stdout has no key or headers to read out of it.
    public func send(event value: [UInt8], _ fields: EventScanner.Fields, tag: UInt64) throws -> Sent {
        try add(value, tag: tag)
    }

    func add(_ value: [UInt8], tag: UInt64) throws -> Sent {
        if PIIGuard.containsEmailAddress(value) { return .blockedPII }
        let full = pending.withLock { p in
            p.bytes.append(contentsOf: value)
            p.bytes.append(10)
            p.tags.append(tag)
            return p.bytes.count >= Self.batchBytes
        }
        if full { try endOfBatch() }
        return .enqueued
    }

    /// Writes the lines waiting, then acknowledges them. A failed write keeps them unacknowledged.
    public func endOfBatch() throws {
        let written = try pending.withLock { p -> [UInt64] in
            var done = 0
            let failed = p.bytes.withUnsafeBytes { bytes -> Int32? in
                while done < bytes.count {
                    let n = Glibc.write(descriptor, bytes.baseAddress! + done, bytes.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    done += n
                }
                return nil
            }
            if let failed {
                p.bytes.removeFirst(done)  // a later call writes on from where this one stopped
                throw StdoutOutletError(errno: failed)
            }
            p.bytes.removeAll(keepingCapacity: true)
            defer { p.tags.removeAll(keepingCapacity: true) }
            return p.tags
        }
        for tag in written { onWritten(tag) }
    }

    public func flush(timeout: Duration) async -> Bool { (try? endOfBatch()) != nil }
    public func close(timeout: Duration) { try? endOfBatch() }
}

/// Standard output could not be written (closed pipe, full disk): the events since the last
/// checkpoint are read again on the next start.
public struct StdoutOutletError: Error, CustomStringConvertible {
    public let errno: Int32
    public var description: String { "cannot write events to stdout: \(String(cString: strerror(errno)))" }
}

/// `body` over a string's UTF-8 bytes, or over nil.
private func withUTF8<R>(_ s: String?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard var s else { return body(nil) }
    return s.withUTF8 { body(UnsafeRawBufferPointer($0)) }
}
