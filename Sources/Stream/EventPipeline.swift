import Events
import Foundation
import JSON
import Kafka
import Outlet
import Synchronization

/// Records in, events out, and for each shard the furthest sequence number whose record and
/// every record before it have had all their events acknowledged and left the pairing window:
/// the only place a checkpoint may move to.
public final class EventPipeline: Sendable {
    struct Ledger {
        /// One record, or several that a server gave one sequence number (moto does): their
        /// events and holds add up, so the checkpoint waits for all of them.
        struct Entry {
            var seq: String
            var outstanding: Int
            var held: Int
            /// ApproximateCreationDateTime (epoch seconds).
            var time: Double
        }
        var entries: [Entry] = []
        var head = 0
        /// Absolute index (head-relative offsets shift) of each live entry by sequence number.
        var index: [String: Int] = [:]
        var base = 0
        var safe: String?

        mutating func add(_ seq: String, held: Bool, time: Double) {
            if let abs = index[seq] {
                if held { entries[head + abs - base].held += 1 }
                return
            }
            index[seq] = base + entries.count - head
            entries.append(Entry(seq: seq, outstanding: 0, held: held ? 1 : 0, time: time))
        }
        mutating func update(_ seq: String, _ change: (inout Entry) -> Void) {
            guard let abs = index[seq] else { return }
            change(&entries[head + abs - base])
        }
        /// Pops the settled prefix, moving `safe` to its last record.
        mutating func advance() {
            while head < entries.count, entries[head].outstanding <= 0, entries[head].held <= 0 {
                safe = entries[head].seq
                index[entries[head].seq] = nil
                head += 1
                base += 1
            }
            if head > 4096, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }
        var isSettled: Bool { head == entries.count }
        /// Creation time of the oldest record not yet settled.
        var oldestUnsettled: Double? { head < entries.count ? entries[head].time : nil }
    }

    struct State {
        var detector: ChangeDetector
        var ledgers: [String: Ledger] = [:]
        /// Each message in flight: its records, when it was sent, and its bytes (held for the
        /// sink until the acknowledgement).
        var tags: [UInt64: (positions: [StreamPosition], sent: ContinuousClock.Instant, bytes: [UInt8])] = [:]
        var nextTag: UInt64 = 1
        var fatal: String?
        var inFlight = 0
    }

    let state: Mutex<State>
    let sinkBox = Mutex<(any EventOutlet)?>(nil)
    let metrics: StreamMetrics
    let report: @Sendable (String) -> Void
    /// Records that the detector could not read go here (with `--dlq-topic`), else only counted.
    let hasDLQ: Bool

    public init(detector: ChangeDetector, metrics: StreamMetrics, hasDLQ: Bool, report: @escaping @Sendable (String) -> Void) {
        state = Mutex(State(detector: detector))
        self.metrics = metrics
        self.hasDLQ = hasDLQ
        self.report = report
    }

    public func attach(_ sink: any EventOutlet) { sinkBox.withLock { $0 = sink } }
    var sink: any EventOutlet { sinkBox.withLock { $0! } }

    /// Messages sent and not yet acknowledged.
    public var inFlight: Int { state.withLock { $0.inFlight } }
    /// A delivery that failed for good (the process must stop without checkpointing past it).
    public var fatal: String? { state.withLock { $0.fatal } }

    /// Processes one page of a shard's records, in order. REMOVEs the resolver says are the
    /// departing half of a loader move are acknowledged without an event.
    public func process(_ records: [StreamRecord], shardID: String, streamARN: String, departing: Set<Int>) throws {
        var sends: [(ChangeEvent?, [UInt8]?, UInt64)] = []
        metrics.recordsRead.increment(by: records.count)
        state.withLock { s in
            // The shard's ledger is changed in place (a local copy would be copied on write for
            // every record: the cost grew with the records not yet checkpointed).
            if s.ledgers[shardID] == nil { s.ledgers[shardID] = Ledger() }
            for (i, record) in records.enumerated() {
                let seq = record.sequenceNumber ?? ""
                let time = record.time ?? 0
                if departing.contains(i) {
                    s.ledgers[shardID]!.add(seq, held: false, time: time)
                    continue
                }
                do {
                    let outcome = try s.detector.ingestTracked(record, shardID: shardID, streamARN: streamARN)
                    s.ledgers[shardID]!.add(seq, held: outcome.held, time: time)
                    for e in outcome.events { sends.append((e, nil, Self.enqueue(&s, positions: e.positions, bytes: e.bytes))) }
                } catch {
                    s.ledgers[shardID]!.add(seq, held: false, time: time)
                    let dlq = Self.deadLetter(record, shardID: shardID, seq: seq, error: "\(error)")
                    metrics.deadLettered.increment()
                    report("record \(seq) of shard \(shardID) cannot be read: \(error)"
                        + (hasDLQ ? "; sent to the dead-letter topic" : "; skipped (no --dlq-topic)"))
                    if hasDLQ {
                        let pos = StreamPosition(streamARN: streamARN, shardID: shardID, sequenceNumber: seq, eventName: "?")
                        sends.append((nil, dlq, Self.enqueue(&s, positions: [pos], bytes: dlq)))
                    }
                }
            }
            Self.release(&s, s.detector.drainReleased())
        }
        let sink = self.sink
        for (event, dlq, tag) in sends {
            if let event {
                try emit(event, tag: tag, sink: sink)
            } else if try sink.send(key: [], value: dlq!, headers: nil, tag: tag, toDLQ: true) != .enqueued {
                delivered(tag: tag, error: nil)
            }
        }
        metrics.noOps.record(state.withLock { Double($0.detector.noOpModifies) })
    }

    /// True when the detector already emitted the loader move this REMOVE departs from.
    public func knowsDeparture(hem: String, from vup: String) -> Bool {
        state.withLock { $0.detector.knowsDeparture(hem: hem, from: vup) }
    }

    /// Settles halves that have waited the window in wall-clock time since they were read, so
    /// an idle shard settles too (record time alone would hold them until the next record, and
    /// old records replayed from history would not wait at all).
    public func settleIdle(now: Date) throws {
        try settle { $0.settleHeld(readBefore: now.addingTimeInterval(-$0.window)) }
    }

    /// Settles every held half now (shutdown); with a shard, only that shard's (a handover).
    public func flushDetector(shardID: String? = nil) throws {
        try settle { detector in shardID.map { detector.flush(shardID: $0) } ?? detector.flush() }
    }

    /// Sends the events a settling of the detector gives, and releases the halves it settled.
    func settle(_ settling: (inout ChangeDetector) -> [ChangeEvent]) throws {
        let sends = state.withLock { s in
            let sends = settling(&s.detector).map { ($0, Self.enqueue(&s, positions: $0.positions, bytes: $0.bytes)) }
            Self.release(&s, s.detector.drainReleased())
            return sends
        }
        let sink = self.sink
        for (event, tag) in sends { try emit(event, tag: tag, sink: sink) }
    }

    /// Sends one event through the outlet, whose PII guard stops an event holding an
    /// email-shaped string (a public field that carried an address): counted and logged by
    /// position, never sent.
    func emit(_ event: ChangeEvent, tag: UInt64, sink: any EventOutlet) throws {
        let headers = EventHeaders(id: event.id, type: event.type)
        let sent = try sink.send(key: Array(event.hem.utf8), value: event.bytes, headers: headers, tag: tag, toDLQ: false)
        if sent == .blockedPII {
            metrics.piiBlocked.increment()
            let where_ = event.positions.map { "shard \($0.shardID) record \($0.sequenceNumber)" }.joined(separator: ", ")
            report("a \(event.type) event (\(where_)) held an email-shaped value: not sent")
        } else {
            metrics.events(type: event.type)
        }
        if sent != .enqueued { delivered(tag: tag, error: nil) }
    }

    /// A gap event (records trimmed before they were read), sent like any other event; it holds
    /// no record of the shard, so it is flushed before the shard's checkpoint moves past the gap.
    public func sendGap(_ event: JSON, hem: String) throws {
        metrics.events(type: "stream.gap")
        let bytes = event.serializedBytes()
        let tag = state.withLock { s in Self.enqueue(&s, positions: [], bytes: bytes) }
        let headers = EventHeaders(id: event["id"]?.stringValue ?? "", type: "stream.gap")
        if try sink.send(key: Array(hem.utf8), value: bytes, headers: headers, tag: tag, toDLQ: false) != .enqueued {
            delivered(tag: tag, error: nil)
        }
    }

    /// The broker's answer for a tag.
    public func delivered(tag: UInt64, error: String?) {
        state.withLock { s in
            s.inFlight -= 1
            if let error {
                metrics.deliveryFailures.increment()
                if s.fatal == nil { s.fatal = error }
                return  // its records stay outstanding: the checkpoint never passes them
            }
            guard let sent = s.tags.removeValue(forKey: tag) else { return }
            metrics.deliveryLatency.recordNanoseconds(
                Int64((ContinuousClock.now - sent.sent) / .nanoseconds(1)))
            for p in sent.positions {
                s.ledgers[p.shardID]?.update(p.sequenceNumber) { $0.outstanding -= 1 }
            }
        }
    }

    /// The furthest checkpoint-safe sequence number of a shard (nil until one is). Asking again
    /// gives it again, so a checkpoint write that failed is simply made again.
    public func safeCheckpoint(shardID: String) -> String? {
        state.withLock { s in
            s.ledgers[shardID]?.advance()
            return s.ledgers[shardID]?.safe
        }
    }

    /// True when every record read from the shard is acknowledged and out of the window.
    public func isSettled(shardID: String) -> Bool {
        state.withLock { s in
            s.ledgers[shardID]?.advance()
            return s.ledgers[shardID]?.isSettled ?? true
        }
    }

    /// Creation time of the shard's oldest record read but not yet settled (acknowledged and
    /// out of the pairing window), nil when everything read is settled.
    public func oldestUnsettled(shardID: String) -> Double? {
        state.withLock { s in
            s.ledgers[shardID]?.advance()
            return s.ledgers[shardID]?.oldestUnsettled
        }
    }

    /// Forgets a shard (lease lost or handed over): its unsettled records will be read again.
    public func forget(shardID: String) {
        state.withLock { s in _ = s.ledgers.removeValue(forKey: shardID) }
    }

    static func enqueue(_ s: inout State, positions: [StreamPosition], bytes: [UInt8]) -> UInt64 {
        let tag = s.nextTag
        s.nextTag += 1
        s.inFlight += 1
        s.tags[tag] = (positions, .now, bytes)
        for p in positions { s.ledgers[p.shardID]?.update(p.sequenceNumber) { $0.outstanding += 1 } }
        return tag
    }

    static func release(_ s: inout State, _ positions: [StreamPosition]) {
        for p in positions { s.ledgers[p.shardID]?.update(p.sequenceNumber) { $0.held -= 1 } }
    }

    /// A dead letter: where the record sits, its keys (pseudonymous) and why; never its images.
    static func deadLetter(_ record: StreamRecord, shardID: String, seq: String, error: String) -> [UInt8] {
        var keys: [String: JSON] = [:]
        if let v = record.keyHem { keys["hem"] = .string(v) }
        if let v = record.keyVupID { keys["vup_id"] = .string(v) }
        let dl: JSON = [
            "shard_id": .string(shardID), "sequence_number": .string(seq),
            "event_name": record.eventName.map(JSON.string) ?? .null,
            "keys": .object(keys), "error": .string(error),
        ]
        return dl.serializedBytes()
    }
}
