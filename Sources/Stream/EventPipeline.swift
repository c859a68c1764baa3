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
        /// One record, or several in a row that a server gave one sequence number (moto does):
        /// their events and holds add up, so the checkpoint waits for all of them.
        struct Entry {
            var seq: String
            var outstanding: Int
            var held: Int
            /// ApproximateCreationDateTime (epoch seconds).
            var time: Double
        }
        /// Entries in read order; `entries[head...]` are live. An entry's slot (its record's
        /// `StreamPosition.record`) is `base + index`: found by arithmetic, not by hashing the
        /// sequence number (a String-keyed index cost four hashes a record).
        var entries: [Entry] = []
        var head = 0
        /// The slot of `entries[0]`.
        var base = 0
        var safe: String?

        /// The slot the next record, with sequence number `seq`, goes to: the last live entry's
        /// when it has the same number. (A shard's records come in sequence-number order, so
        /// records sharing one come one after another.)
        func slot(for seq: String) -> Int {
            if head < entries.count, entries[entries.count - 1].seq == seq { return base + entries.count - 1 }
            return base + entries.count
        }
        mutating func add(_ seq: String, held: Bool, time: Double) {
            if head < entries.count, entries[entries.count - 1].seq == seq {
                if held { entries[entries.count - 1].held += 1 }
                return
            }
            entries.append(Entry(seq: seq, outstanding: 0, held: held ? 1 : 0, time: time))
        }
        /// Changes the live entry at `slot`, if it still holds `seq` (a position from before the
        /// shard was forgotten and read again names another ledger's slot: left alone).
        mutating func update(_ slot: Int, _ seq: String, _ change: (inout Entry) -> Void) {
            let i = slot - base
            guard i >= head, i < entries.count, entries[i].seq == seq else { return }
            change(&entries[i])
        }
        /// Pops the settled prefix, moving `safe` to its last record.
        mutating func advance() {
            while head < entries.count, entries[head].outstanding <= 0, entries[head].held <= 0 {
                safe = entries[head].seq
                head += 1
            }
            if head > 4096, head * 2 > entries.count {
                entries.removeFirst(head)
                base += head
                head = 0
            }
        }
        var isSettled: Bool { head == entries.count }
        /// Creation time of the oldest record not yet settled.
        var oldestUnsettled: Double? { head < entries.count ? entries[head].time : nil }
    }

    /// One message in flight: its records, when it was sent, and its bytes (held for the sink
    /// until the acknowledgement).
    struct Message {
        var positions: [StreamPosition]
        var sent: ContinuousClock.Instant
        var bytes: [UInt8]
    }

    /// Messages in flight, found by tag with arithmetic: tags are handed out in order, so
    /// message `tag` sits at `slots[tag - firstTag]` until its report empties the slot, and the
    /// reported front is dropped. (A dictionary by tag cost two hashes and a bucket a message.)
    struct Messages {
        var slots: [Message?] = []
        var head = 0
        /// The tag of `slots[0]`.
        var firstTag: UInt64 = 1
        var nextTag: UInt64 { firstTag + UInt64(slots.count) }

        mutating func add(_ m: Message) -> UInt64 {
            slots.append(m)
            return nextTag - 1
        }

        /// Takes message `tag` out (nil when it is not in flight).
        mutating func remove(_ tag: UInt64) -> Message? {
            guard tag >= firstTag, tag < nextTag else { return nil }
            let i = Int(tag - firstTag)
            guard i >= head, let m = slots[i] else { return nil }
            slots[i] = nil
            while head < slots.count, slots[head] == nil { head += 1 }
            if head > 4096, head * 2 > slots.count {
                slots.removeFirst(head)
                firstTag += UInt64(head)
                head = 0
            }
            return m
        }
    }

    struct State {
        var detector: ChangeDetector
        var ledgers: [String: Ledger] = [:]
        /// The messages sent and not yet acknowledged, by tag.
        var messages = Messages()
        var fatal: String?
        var inFlight = 0
        /// The other half of `acks`' double buffer (swapped, so draining allocates nothing).
        var ackBatch: [(tag: UInt64, at: ContinuousClock.Instant)] = []
    }

    let state: Mutex<State>
    /// Acknowledgements from Kafka's delivery thread (tag, when it came), applied to the ledgers
    /// by whoever next takes the state lock (`applyAcks`). The delivery thread takes only this
    /// small lock: it took the state lock, which processing a page holds for milliseconds, and
    /// did the ledger work and freed the event there, one message at a time.
    let acks = Mutex<[(tag: UInt64, at: ContinuousClock.Instant)]>([])
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
    public var inFlight: Int {
        state.withLock { s in
            applyAcks(&s)
            return s.inFlight
        }
    }
    /// A delivery that failed for good, or a send that threw (the process must stop without
    /// checkpointing past it).
    public var fatal: String? { state.withLock { $0.fatal } }

    /// Runs `body`, a send to the outlet. One that throws leaves its events counted outstanding
    /// and gone from the detector: nothing will acknowledge them, so the pipeline is failed for
    /// good (a retry of the round that called it would never send them again).
    func failingForGood<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            state.withLock { s in if s.fatal == nil { s.fatal = "\(error)" } }
            throw error
        }
    }

    /// Processes one page of a shard's records, in order. REMOVEs the resolver says are the
    /// departing half of a loader move are acknowledged without an event.
    public func process(_ records: [StreamRecord], shardID: String, streamARN: String, departing: Set<Int>) throws {
        // The page's events, in order, with their tags; dead letters beside them. Events are
        // written into this one array by the detector and read from it in place (an array of
        // tuples copied every event out of it, and out of the detector's array per record).
        var events: [ChangeEvent] = []
        var tags: [UInt64] = []
        var deadLetters: [(bytes: [UInt8], seq: String, tag: UInt64)] = []
        events.reserveCapacity(records.count)
        tags.reserveCapacity(records.count)
        metrics.recordsRead.increment(by: records.count)
        let noOps = state.withLock { s in
            applyAcks(&s)
            // The shard's ledger is taken out of the map for the page and put back after it:
            // changed in place (a copy would be copied on write for every record: the cost grew
            // with the records not yet checkpointed), and found once a page, not by hashing the
            // shard id for every record and event.
            var ledger = s.ledgers.removeValue(forKey: shardID) ?? Ledger()
            defer { s.ledgers[shardID] = ledger }
            // Records are read in place (`records[i]` of the array copied each one out: a retain
            // and a release of its every String and buffer).
            records.withUnsafeBufferPointer { records in
                for i in records.indices {
                    let seq = records[i].sequenceNumber ?? ""
                    let time = records[i].time ?? 0
                    if departing.contains(i) {
                        ledger.add(seq, held: false, time: time)
                        continue
                    }
                    let slot = ledger.slot(for: seq)
                    let before = events.count
                    do {
                        let held = try s.detector.ingest(
                            records[i], shardID: shardID, streamARN: streamARN, record: slot, into: &events)
                        ledger.add(seq, held: held, time: time)
                        events.withUnsafeBufferPointer { events in
                            for k in before..<events.count {
                                tags.append(
                                    Self.enqueue(
                                        &s, &ledger, of: shardID, positions: events[k].positions, bytes: events[k].bytes))
                            }
                        }
                    } catch {
                        ledger.add(seq, held: false, time: time)
                        let why = Self.withholdingAddresses("\(error)")
                        let dlq = Self.deadLetter(records[i], shardID: shardID, seq: seq, error: why)
                        metrics.deadLettered.increment()
                        report("record \(seq) of shard \(shardID) cannot be read: \(why)"
                            + (hasDLQ ? "; sent to the dead-letter topic" : "; skipped (no --dlq-topic)"))
                        if hasDLQ {
                            let pos = StreamPosition(
                                streamARN: streamARN, shardID: shardID, sequenceNumber: seq, eventName: "?", record: slot)
                            deadLetters.append(
                                (dlq, seq, Self.enqueue(&s, &ledger, of: shardID, positions: [pos], bytes: dlq)))
                        }
                    }
                }
            }
            Self.release(&s, &ledger, of: shardID, s.detector.drainReleased())
            return s.detector.noOpModifies
        }
        metrics.noOps.record(Double(noOps))
        try send(events, tags)
        let sink = self.sink
        for (bytes, seq, tag) in deadLetters {
            let sent = try failingForGood { try sink.send(key: [], value: bytes, headers: nil, tag: tag, toDLQ: true) }
            if sent == .blockedPII {
                // `deadLetter` leaves addresses out, so this is the guard's second line.
                metrics.piiBlocked.increment()
                report("the dead letter of shard \(shardID) record \(seq) held an email-shaped value: not sent")
            }
            if sent != .enqueued { delivered(tag: tag, error: nil) }
        }
        if !deadLetters.isEmpty { try failingForGood { try sink.endOfBatch() } }
    }

    /// Sends `events` (in order, each with its tag), read in place.
    func send(_ events: [ChangeEvent], _ tags: [UInt64]) throws {
        let sink = self.sink
        var counts = EventCounts()
        defer { counts.add(to: metrics) }
        try failingForGood {
            try events.withUnsafeBufferPointer { events in
                for k in events.indices { try emit(events[k], tag: tags[k], sink: sink, counts: &counts) }
            }
            try sink.endOfBatch()
        }
    }

    /// Events sent, by type, counted for a page (or a settling) and added to the metrics once
    /// per type (not a counter lookup by type and an atomic add per event).
    struct EventCounts {
        var byType: [(type: String, count: Int)] = []
        mutating func count(_ type: String) {
            if let i = byType.firstIndex(where: { $0.type == type }) {
                byType[i].count += 1
            } else {
                byType.append((type, 1))
            }
        }
        func add(to metrics: StreamMetrics) {
            for (type, n) in byType { metrics.events(type: type, count: n) }
        }
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
        let (events, tags) = state.withLock { s in
            let events = settling(&s.detector)
            let tags = events.withUnsafeBufferPointer { events in
                events.indices.map { Self.enqueue(&s, positions: events[$0].positions, bytes: events[$0].bytes) }
            }
            Self.release(&s, s.detector.drainReleased())
            return (events, tags)
        }
        try send(events, tags)
    }

    /// Sends one event through the outlet, whose PII guard stops an event holding an
    /// email-shaped string (a public field that carried an address): counted and logged by
    /// position, never sent.
    /// It goes with the ranges the detector noted when it has them (Kafka then sends it from its
    /// own bytes); `messages` keeps the bytes alive until the report.
    func emit(_ event: ChangeEvent, tag: UInt64, sink: any EventOutlet, counts: inout EventCounts) throws {
        let sent: Sent
        if let fields = event.fields {
            sent = try sink.send(event: event.bytes, fields, tag: tag)
        } else {
            let headers = EventHeaders(id: event.id, type: event.type)
            sent = try sink.send(key: Array(event.hem.utf8), value: event.bytes, headers: headers, tag: tag, toDLQ: false)
        }
        if sent == .blockedPII {
            metrics.piiBlocked.increment()
            let where_ = event.positions.map { "shard \($0.shardID) record \($0.sequenceNumber)" }.joined(separator: ", ")
            report("a \(event.type) event (\(where_)) held an email-shaped value: not sent")
        } else {
            counts.count(event.type)
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
        let sent = try failingForGood {
            let sent = try sink.send(key: Array(hem.utf8), value: bytes, headers: headers, tag: tag, toDLQ: false)
            try sink.endOfBatch()
            return sent
        }
        if sent != .enqueued { delivered(tag: tag, error: nil) }
    }

    /// The broker's answer for a tag. An acknowledgement is queued for `applyAcks`; a failure
    /// is recorded at once.
    public func delivered(tag: UInt64, error: String?) {
        guard let error else {
            acks.withLock { $0.append((tag, .now)) }
            return
        }
        state.withLock { s in
            s.inFlight -= 1
            metrics.deliveryFailures.increment()
            if s.fatal == nil { s.fatal = "Kafka delivery failed: \(error)" }
            // Its records stay outstanding: the checkpoint never passes them. Its bytes go.
            _ = s.messages.remove(tag)
        }
    }

    /// Applies the queued acknowledgements: each message's records are one event less
    /// outstanding, its latency is recorded, its bytes are let go. Called under the state lock
    /// before anything that reads the ledgers or the count in flight.
    func applyAcks(_ s: inout State) {
        acks.withLock { swap(&$0, &s.ackBatch) }
        guard !s.ackBatch.isEmpty else { return }
        // A shard's ledger is taken out of the map while its records' acknowledgements come one
        // after another (one hash of the shard id per run, not per record).
        var current: (shardID: String, ledger: Ledger)?
        for (tag, at) in s.ackBatch {
            s.inFlight -= 1
            guard let sent = s.messages.remove(tag) else { continue }
            metrics.deliveryLatency.recordNanoseconds(Int64((at - sent.sent) / .nanoseconds(1)))
            for p in sent.positions {
                if current?.shardID != p.shardID {
                    if let c = current { s.ledgers[c.shardID] = c.ledger }
                    current = s.ledgers.removeValue(forKey: p.shardID).map { (shardID: p.shardID, ledger: $0) }
                }
                current?.ledger.update(p.record, p.sequenceNumber) { $0.outstanding -= 1 }
            }
        }
        if let c = current { s.ledgers[c.shardID] = c.ledger }
        s.ackBatch.removeAll(keepingCapacity: true)
    }

    /// The furthest checkpoint-safe sequence number of a shard (nil until one is). Asking again
    /// gives it again, so a checkpoint write that failed is simply made again.
    public func safeCheckpoint(shardID: String) -> String? {
        state.withLock { s in
            applyAcks(&s)
            s.ledgers[shardID]?.advance()
            return s.ledgers[shardID]?.safe
        }
    }

    /// True when every record read from the shard is acknowledged and out of the window.
    public func isSettled(shardID: String) -> Bool {
        state.withLock { s in
            applyAcks(&s)
            s.ledgers[shardID]?.advance()
            return s.ledgers[shardID]?.isSettled ?? true
        }
    }

    /// Creation time of the shard's oldest record read but not yet settled (acknowledged and
    /// out of the pairing window), nil when everything read is settled.
    public func oldestUnsettled(shardID: String) -> Double? {
        state.withLock { s in
            applyAcks(&s)
            s.ledgers[shardID]?.advance()
            return s.ledgers[shardID]?.oldestUnsettled
        }
    }

    /// Forgets a shard (lease lost or handed over): its unsettled records will be read again.
    public func forget(shardID: String) {
        state.withLock { s in _ = s.ledgers.removeValue(forKey: shardID) }
    }

    static func enqueue(_ s: inout State, positions: [StreamPosition], bytes: [UInt8]) -> UInt64 {
        for p in positions { s.ledgers[p.shardID]?.update(p.record, p.sequenceNumber) { $0.outstanding += 1 } }
        return track(&s, positions: positions, bytes: bytes)
    }

    /// `enqueue` while `page`, the ledger of shard `shardID`, is out of `s.ledgers` (a page
    /// being processed).
    static func enqueue(
        _ s: inout State, _ page: inout Ledger, of shardID: String, positions: [StreamPosition], bytes: [UInt8]
    ) -> UInt64 {
        for p in positions { update(&s, &page, of: shardID, p) { $0.outstanding += 1 } }
        return track(&s, positions: positions, bytes: bytes)
    }

    /// Changes the ledger entry of `p`: in `page` when it is that shard's (out of `s.ledgers`
    /// while a page is processed), else in `s.ledgers`.
    static func update(
        _ s: inout State, _ page: inout Ledger, of shardID: String, _ p: StreamPosition,
        _ change: (inout Ledger.Entry) -> Void
    ) {
        if p.shardID == shardID {
            page.update(p.record, p.sequenceNumber, change)
        } else {
            s.ledgers[p.shardID]?.update(p.record, p.sequenceNumber, change)
        }
    }

    /// A new message in flight: its tag, with its records, the time and its bytes.
    static func track(_ s: inout State, positions: [StreamPosition], bytes: [UInt8]) -> UInt64 {
        s.inFlight += 1
        return s.messages.add(Message(positions: positions, sent: .now, bytes: bytes))
    }

    static func release(_ s: inout State, _ positions: [StreamPosition]) {
        for p in positions { s.ledgers[p.shardID]?.update(p.record, p.sequenceNumber) { $0.held -= 1 } }
    }

    /// `release` while `page`, the ledger of shard `shardID`, is out of `s.ledgers`.
    static func release(_ s: inout State, _ page: inout Ledger, of shardID: String, _ positions: [StreamPosition]) {
        for p in positions { update(&s, &page, of: shardID, p) { $0.held -= 1 } }
    }

    /// A dead letter: where the record sits, its keys (pseudonymous) and why (`error`, already
    /// through `withholdingAddresses`, as the log line says it); never its images. A key that
    /// holds an email-shaped value (a writer that put an address where a hash belongs) is left
    /// out and named under `withheld`, so the dead letter still says where the record sits
    /// instead of being stopped whole by the outlet's PII guard.
    static func deadLetter(_ record: StreamRecord, shardID: String, seq: String, error: String) -> [UInt8] {
        var keys: [String: JSON] = [:]
        var withheld: [JSON] = []
        for (name, value) in [("hem", record.keyHem), ("vup_id", record.keyVupID)] {
            guard let value else { continue }
            if PIIGuard.containsEmailAddress(Array(value.utf8)) {
                withheld.append(.string(name))
            } else {
                keys[name] = .string(value)
            }
        }
        var dl: [String: JSON] = [
            "shard_id": .string(shardID), "sequence_number": .string(seq),
            "event_name": record.eventName.map(JSON.string) ?? .null,
            "keys": .object(keys), "error": .string(error),
        ]
        if !withheld.isEmpty { dl["withheld"] = .array(withheld) }
        return JSON.object(dl).serializedBytes()
    }

    /// `text`, or a fixed line when it holds an email-shaped value: for reasons that go into a
    /// log line or a dead letter (the detector's errors name fields by position, never values;
    /// this keeps that true whatever a future error says).
    static func withholdingAddresses(_ text: String) -> String {
        PIIGuard.containsEmailAddress(Array(text.utf8)) ? "the record cannot be read (reason withheld: it held an email-shaped value)" : text
    }
}
