import Crypto
import Foundation
import JSON
import Schemas

/// Which attributes are keys, public, PII or bookkeeping (schemas/fields.json). Unknown → PII.
public struct FieldClassification: Sendable {
    public enum Class: String, Sendable { case key, `public`, pii, bookkeeping }
    public var classes: [String: Class] {
        didSet { byName = classes.map { (Array($0.key.utf8), $0.value) } }
    }
    /// `classes` by name bytes, for the detector's diff (a few names: a scan beats hashing).
    var byName: [([UInt8], Class)]
    public init(classes: [String: Class]) {
        self.classes = classes
        byName = classes.map { (Array($0.key.utf8), $0.value) }
    }
    public static func load() throws -> FieldClassification {
        let j = try JSON.parse(try SchemaFiles.text("fields.json"))
        var c: [String: Class] = [:]
        for k in ["keys": Class.key, "public": .public, "pii": .pii, "bookkeeping": .bookkeeping] {
            for n in j[k.key]?.arrayValue ?? [] { if let s = n.stringValue { c[s] = k.value } }
        }
        return FieldClassification(classes: c)
    }
    public func classOf(_ field: String) -> Class { classes[field] ?? .pii }
    func classOf(_ name: UnsafeBufferPointer<UInt8>) -> Class {
        for (n, c) in byName where n.count == name.count {
            if name.isEmpty || n.withUnsafeBufferPointer({ memcmp($0.baseAddress!, name.baseAddress!, name.count) == 0 }) {
                return c
            }
        }
        return .pii
    }
}

/// Where a stream record came from; a checkpoint position.
public struct StreamPosition: Sendable, Hashable {
    public var streamARN: String, shardID: String, sequenceNumber: String, eventName: String
    /// The reader's own number for the record in its shard (the stream pipeline's ledger slot,
    /// so an acknowledgement finds its record without hashing the sequence number); 0 when
    /// nobody numbers records (`events explain`). Not part of the event.
    public var record: Int
    public init(streamARN: String, shardID: String, sequenceNumber: String, eventName: String, record: Int = 0) {
        self.streamARN = streamARN; self.shardID = shardID; self.sequenceNumber = sequenceNumber; self.eventName = eventName
        self.record = record
    }
}

/// One encoded change event (CloudEvents 1.0 JSON, keys sorted), written straight to bytes.
public struct ChangeEvent: Sendable {
    public var type: String, hem: String
    /// The event as it is sent.
    public var bytes: [UInt8]
    /// The stream records behind the event (also in the event's data.positions).
    public var positions: [StreamPosition] = []
    /// Where the record's key (data.hem), id, type and specversion sit in `bytes`, for sending
    /// the event from its own bytes (no key array or header Strings per event); nil when the hem
    /// needed escaping, so the key is not a slice of the bytes.
    var ranges: Ranges?
    struct Ranges: Sendable {
        var key: Range<Int>, id: Range<Int>, type: Range<Int>, specversion: Range<Int>
    }
    /// `ranges` as the publish path's scanner gives them (what `KafkaOutlet.send(scanned:)` takes).
    public var fields: EventScanner.Fields? {
        ranges.map { EventScanner.Fields(key: $0.key, id: $0.id, type: $0.type, specversion: $0.specversion) }
    }
    /// The event's deterministic id (read back from `bytes`: no String is made per event).
    public var id: String {
        if let r = ranges?.id { return String(decoding: bytes[r], as: UTF8.self) }
        return json["id"]?.stringValue ?? ""
    }
    public func encoded() -> [UInt8] { bytes }
    /// The event as a JSON tree (tests and tools; parsed from `bytes`).
    public var json: JSON { (try? JSON.parse(bytes)) ?? .null }
}

/// A stream record the detector could not read; the message names the field, never a value.
public struct RecordError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Turns DynamoDB Streams records (wire JSON) into change events.
///
/// A move is a REMOVE of the old item and an INSERT of the new one, possibly on different
/// shards and read by different workers. The loader's INSERT carries `previous_vup_id`, so it
/// alone gives the transition event (its id comes from that record only, whoever reads it);
/// the REMOVE of such a move is dropped here when this detector saw the INSERT within `window`
/// seconds, and by the stream reader's hem-index lookup otherwise. Halves without that mark
/// (other writers) are paired in memory within `window` seconds of record time, the fallback.
/// Pure: time comes from the records or `advance(to:)`. Cost per record is O(log pending).
public struct ChangeDetector: Sendable {
    public let source: String
    public let fields: FieldClassification
    public let window: Double
    /// Halves held at most; past it the oldest settle early (memory stays bounded).
    public let maxPending: Int
    let piiKey: [UInt8]?
    public private(set) var noOpModifies = 0
    /// REMOVEs recognised as the departing half of a loader move and dropped.
    public private(set) var departedHalvesDropped = 0

    struct Pending: Sendable {
        var image: ItemImage, vup: String, isInsert: Bool, time: Double
        var position: StreamPosition, token: Int
        /// When this detector was given the record (wall clock).
        var readAt = Date()
    }
    /// A loader move's transition already emitted: its REMOVE, when it comes, is dropped.
    struct Departed: Sendable {
        var from: String, token: Int
        /// When this detector was given the INSERT (wall clock): idle settling forgets it too.
        var readAt = Date()
    }
    var pending: [String: Pending] = [:]          // by hem
    var departed: [String: Departed] = [:]        // by hem
    var expiries = MinHeap()
    var nextToken = 0
    /// Held positions that left the window (settled into an event, or dropped as a partner).
    var released: [StreamPosition] = []

    public init(
        region: String, table: String, fields: FieldClassification, window: Double = 30, piiKey: [UInt8]? = nil,
        maxPending: Int = 200_000
    ) {
        source = "aws:dynamodb:\(region):\(table)"
        self.fields = fields; self.window = window
        self.piiKey = piiKey
        self.maxPending = maxPending
    }

    /// What one record did: the events it completed, and whether the record itself now waits in
    /// the pairing window (its checkpoint must not pass it until it appears in `drainReleased()`).
    public struct Outcome: Sendable {
        public var events: [ChangeEvent] = []
        public var held = false
    }

    /// Feeds one record; returns the events it completes (including pairs whose window expired).
    public mutating func ingest(_ record: JSON, shardID: String, streamARN: String) throws(RecordError) -> [ChangeEvent] {
        try ingestTracked(StreamRecord(record), shardID: shardID, streamARN: streamARN).events
    }

    /// `ingest`, also saying whether the record is held in the pairing window.
    public mutating func ingestTracked(_ record: JSON, shardID: String, streamARN: String) throws(RecordError) -> Outcome {
        try ingestTracked(StreamRecord(record), shardID: shardID, streamARN: streamARN)
    }

    /// `ingestTracked` for a record the byte reader gave (`StreamRecord.readPage`); `record` is
    /// the caller's number for it, carried in its position (`StreamPosition.record`).
    public mutating func ingestTracked(
        _ r: StreamRecord, shardID: String, streamARN: String, record: Int = 0
    ) throws(RecordError) -> Outcome {
        var out = Outcome()
        out.held = try ingest(r, shardID: shardID, streamARN: streamARN, record: record, into: &out.events)
        return out
    }

    /// `ingestTracked` appending the events to the caller's array (a page's: no array per
    /// record, no copy of each event from one array to the next); true when the record is held.
    /// A record it cannot read appends nothing.
    public mutating func ingest(
        _ r: StreamRecord, shardID: String, streamARN: String, record: Int = 0, into events: inout [ChangeEvent]
    ) throws(RecordError) -> Bool {
        guard let name = r.eventName else { throw RecordError(description: "record missing eventName") }
        guard r.hasDynamoDB else { throw RecordError(description: "record missing dynamodb") }
        guard let seq = r.sequenceNumber else { throw RecordError(description: "record missing dynamodb.SequenceNumber") }
        guard let time = r.time else { throw RecordError(description: "record missing dynamodb.ApproximateCreationDateTime") }
        let pos = StreamPosition(
            streamARN: streamARN, shardID: shardID, sequenceNumber: seq, eventName: name, record: record)
        let newImage = r.newImage, oldImage = r.oldImage
        /// The item's keys: from its image, else from `Keys`.
        /// (The record's `Keys` strings are taken when the image holds the same text: no String
        /// made twice per record.)
        func keys(_ img: ItemImage) throws(RecordError) -> (hem: String, vup: String) {
            guard let hem = img.string(.hem, reusing: r.keyHem) ?? r.keyHem else {
                throw RecordError(description: "record missing key hem")
            }
            guard let vup = img.string(.vupID, reusing: r.keyVupID) ?? r.keyVupID else {
                throw RecordError(description: "record missing key vup_id")
            }
            return (hem, vup)
        }
        // Validate everything before changing any state, so a bad record leaves none behind.
        var held = false
        switch name {
        case "MODIFY":
            guard let o = oldImage, let n = newImage else { throw RecordError(description: "MODIFY record missing OldImage or NewImage") }
            let (hem, vup) = try keys(n)
            advance(to: time, into: &events)
            if let e = event("hem.updated", hem: hem, before: vup, after: vup, from: o, to: n, updatedAt: n, positions: [pos], time: time, partnerMissing: false, dropIfUnchanged: true) {
                events.append(e)
            } else {
                noOpModifies += 1
            }
        case "INSERT", "REMOVE":
            let isInsert = name == "INSERT"
            guard let image = isInsert ? newImage : oldImage else { throw RecordError(description: "\(name) record missing \(isInsert ? "NewImage" : "OldImage")") }
            let (hem, vup) = try keys(image)
            advance(to: time, into: &events)
            dropStaleExpiries()
            if isInsert, let from = image.string(.previousVupID), from != vup {
                // The loader's move: this record alone is the transition.
                if let p = pending.removeValue(forKey: hem) {
                    if !p.isInsert && p.vup == from { released.append(p.position); departedHalvesDropped += 1 }
                    else { events.append(settle(hem: hem, p)) }
                }
                events.append(event(moveType(from, vup), hem: hem, before: from, after: vup, from: nil, to: nil, updatedAt: image, positions: [pos], time: time, partnerMissing: false)!)
                let token = take()
                departed[hem] = Departed(from: from, token: token)
                expiries.push(.init(time: time, token: token, hem: hem))
                return false
            }
            if !isInsert, let moved = departed[hem], moved.from == vup {
                departed[hem] = nil
                departedHalvesDropped += 1
                return false
            }
            let token = take()
            let me = Pending(image: image, vup: vup, isInsert: isInsert, time: time, position: pos, token: token)
            let other = pending.removeValue(forKey: hem)
            if let other, Self.arePartners(earlier: other, later: me) {
                released.append(other.position)
                events.append(pair(hem: hem, me.isInsert ? other : me, me.isInsert ? me : other))
            } else {
                if let stale = other { events.append(settle(hem: hem, stale)) }
                var me = me
                me.image = me.image.detached()
                pending[hem] = me
                expiries.push(.init(time: time, token: token, hem: hem))
                held = true
                if pending.count > maxPending { settleOldest(into: &events) }
            }
        default: throw RecordError(description: "record has unknown eventName")
        }
        return held
    }

    mutating func take() -> Int { nextToken += 1; return nextToken }

    /// Settles every pending half whose window has passed at `now` (epoch seconds).
    public mutating func advance(to now: Double) -> [ChangeEvent] {
        var out: [ChangeEvent] = []
        advance(to: now, into: &out)
        return out
    }

    mutating func advance(to now: Double, into out: inout [ChangeEvent]) {
        while let top = expiries.peek, now - top.time >= window {
            expiries.pop()
            expire(top, into: &out)
        }
    }

    mutating func settleOldest(into out: inout [ChangeEvent]) {
        while pending.count > maxPending, let top = expiries.pop() { expire(top, into: &out) }
    }

    mutating func expire(_ entry: MinHeap.Entry, into out: inout [ChangeEvent]) {
        if let d = departed[entry.hem], d.token == entry.token { departed[entry.hem] = nil }
        guard let i = pending.index(forKey: entry.hem), pending.values[i].token == entry.token else { return }
        out.append(settle(hem: entry.hem, pending.remove(at: i).value))
    }

    /// Settles the halves given to this detector before `readBefore` (wall clock), and forgets
    /// the loader moves it was given before then: a reader's idle-shard settling, so what the
    /// detector holds drains when records stop coming (record time alone would keep it until
    /// the next record). O(held); called about once a second.
    public mutating func settleHeld(readBefore: Date) -> [ChangeEvent] {
        departed = departed.filter { $0.value.readAt >= readBefore }
        return settlePending { $0.readAt < readBefore }
    }

    /// Settles the halves read from one shard now (the shard is being handed to another replica).
    public mutating func flush(shardID: String) -> [ChangeEvent] {
        settlePending { $0.position.shardID == shardID }
    }

    /// Settles the pending halves that `due` picks, oldest record first.
    mutating func settlePending(_ due: (Pending) -> Bool) -> [ChangeEvent] {
        let events = pending.filter { due($0.value) }.sorted { $0.value.time < $1.value.time }.map { hem, p in
            pending[hem] = nil
            return settle(hem: hem, p)
        }
        dropStaleExpiries()
        return events
    }

    /// Drops the expiry entries whose half or move is gone (paired, settled by wall clock,
    /// its REMOVE seen) once they are most of the queue, so the queue follows what is held, not
    /// every hem seen since record time last moved. Amortized O(1) per entry.
    mutating func dropStaleExpiries() {
        guard expiries.count > 64, expiries.count > 2 * (pending.count + departed.count) else { return }
        expiries.keep { e in pending[e.hem]?.token == e.token || departed[e.hem]?.token == e.token }
    }

    /// Settles everything pending, as if every window had passed (end of input, shutdown).
    public mutating func flush() -> [ChangeEvent] { advance(to: .infinity) }

    /// True when this detector emitted a loader move of `hem` away from `vup` within the window.
    public func knowsDeparture(hem: String, from vup: String) -> Bool { departed[hem]?.from == vup }

    /// Halves waiting for a partner.
    public var pendingCount: Int { pending.count }

    /// Everything the detector holds per hem: halves waiting for a partner, loader moves whose
    /// REMOVE may still come, and their expiry entries. Bounded by what arrived within the
    /// window, never by the number of distinct hems seen; once all of it has settled, only up to
    /// 64 stale expiry entries remain (`dropStaleExpiries` leaves a queue that small alone).
    public var heldStateCount: Int { pending.count + departed.count + expiries.count }

    /// Held positions that have left the window since the last call (each once).
    public mutating func drainReleased() -> [StreamPosition] {
        defer { released.removeAll(keepingCapacity: true) }
        return released
    }

    /// A REMOVE and an INSERT (in either order) are the two halves of one move only when they
    /// name different keys, and, when the INSERT says where it came from (`previous_vup_id`), only
    /// with the REMOVE of that key. Of one key, a REMOVE then an INSERT is a replaced item
    /// (hem.updated); an INSERT then a REMOVE is a create and a delete, never a move.
    static func arePartners(earlier: Pending, later: Pending) -> Bool {
        guard earlier.isInsert != later.isInsert else { return false }
        let (remove, insert) = later.isInsert ? (earlier, later) : (later, earlier)
        if remove.vup == insert.vup { return later.isInsert }
        if let previous = insert.image.string(.previousVupID) { return previous == remove.vup }
        return true
    }

    mutating func settle(hem: String, _ p: Pending) -> ChangeEvent {
        released.append(p.position)
        if p.isInsert, let prevVup = p.image.string(.previousVupID), prevVup != p.vup {
            return event(moveType(prevVup, p.vup), hem: hem, before: prevVup, after: p.vup, from: nil, to: p.image, updatedAt: p.image, positions: [p.position], time: p.time, partnerMissing: true)!
        }
        if p.isInsert {
            return event("hem.created", hem: hem, before: nil, after: p.vup, from: nil, to: p.image, updatedAt: p.image, positions: [p.position], time: p.time, partnerMissing: false)!
        }
        return event("hem.deleted", hem: hem, before: p.vup, after: nil, from: p.image, to: nil, updatedAt: p.image, positions: [p.position], time: p.time, partnerMissing: false)!
    }

    func pair(hem: String, _ remove: Pending, _ insert: Pending) -> ChangeEvent {
        let positions = [remove.position, insert.position].sorted { ($0.shardID, $0.sequenceNumber) < ($1.shardID, $1.sequenceNumber) }
        let type = remove.vup == insert.vup ? "hem.updated" : moveType(remove.vup, insert.vup)
        return event(type, hem: hem, before: remove.vup, after: insert.vup, from: remove.image, to: insert.image, updatedAt: insert.image, positions: positions, time: max(remove.time, insert.time), partnerMissing: false)!
    }

    func moveType(_ before: String, _ after: String) -> String {
        switch (Sentinel.isSentinel(before), Sentinel.isSentinel(after)) {
        case (true, false): return "hem.resolved"
        case (false, true): return "hem.unresolved"
        default: return "hem.reassigned"
        }
    }

    /// HMAC-SHA256 of a value's canonical JSON text, with the operator's key (none: no hash).
    func hash(_ canonicalValue: UnsafeBufferPointer<UInt8>) -> String? {
        guard let key = piiKey else { return nil }
        return HMAC<SHA256>.authenticationCode(for: Array(canonicalValue), using: SymmetricKey(data: key))
            .withUnsafeBytes(Hex.string)
    }

    /// Writes the field-level diff over non-key, non-bookkeeping attributes (absent image: no
    /// attributes) as the members of `changes`, by field name; PII values are never copied,
    /// only hashed with the operator's key. Returns how many changes it wrote. Names and values
    /// are compared in place, as bytes (no slices of the images' arrays).
    func writeDiff(_ w: inout JSONWriter, from old: ItemImage?, to new: ItemImage?) -> Int {
        let o = old ?? ItemImage(), n = new ?? ItemImage()
        return o.bytes.withUnsafeBufferPointer { ob in
            n.bytes.withUnsafeBufferPointer { nb in
                o.list.withUnsafeBufferPointer { ol in
                    n.list.withUnsafeBufferPointer { nl in
                        writeDiff(
                            &w, DiffSide(bytes: ob, attributes: ol, span: o.span),
                            DiffSide(bytes: nb, attributes: nl, span: n.span))
                    }
                }
            }
        }
    }

    /// One image as `writeDiff` walks it: its bytes and its attributes, sorted by name.
    struct DiffSide {
        let bytes: UnsafeBufferPointer<UInt8>
        let attributes: UnsafeBufferPointer<ItemImage.Attribute>
        init(
            bytes: UnsafeBufferPointer<UInt8>, attributes list: UnsafeBufferPointer<ItemImage.Attribute>,
            span: Range<Int32>
        ) {
            self.bytes = bytes
            attributes = UnsafeBufferPointer(rebasing: list[Int(span.lowerBound)..<Int(span.upperBound)])
        }
        var count: Int { attributes.count }
        func name(_ i: Int) -> UnsafeBufferPointer<UInt8> { slice(attributes[i].name) }
        func value(_ i: Int) -> UnsafeBufferPointer<UInt8> { slice(attributes[i].value) }
        func slice(_ r: Range<Int32>) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(start: bytes.baseAddress.map { $0 + Int(r.lowerBound) }, count: r.count)
        }
    }

    func writeDiff(_ w: inout JSONWriter, _ o: DiffSide, _ n: DiffSide) -> Int {
        var i = 0, j = 0, written = 0
        while i < o.count || j < n.count {
            var oi: Int?, nj: Int?
            if i < o.count, j < n.count {
                let c = ItemImage.compareBytes(o.name(i), n.name(j))
                if c == 0 {
                    oi = i
                    nj = j
                } else if c < 0 {
                    oi = i
                } else {
                    nj = j
                }
            } else if i < o.count {
                oi = i
            } else {
                nj = j
            }
            if oi != nil { i += 1 }
            if nj != nil { j += 1 }
            let name = oi.map { o.name($0) } ?? n.name(nj!)
            let cls = fields.classOf(name)
            if cls == .key || cls == .bookkeeping { continue }
            if let oi, let nj, ItemImage.compareBytes(o.value(oi), n.value(nj)) == 0 { continue }
            if written > 0 { w.appendLiteral(",") }
            written += 1
            w.appendLiteral("{")
            if cls == .public {
                w.appendLiteral("\"after\":")
                Self.writePublic(&w, n, nj)
                w.appendLiteral(",\"before\":")
                Self.writePublic(&w, o, oi)
                w.appendLiteral(",\"class\":\"public\"")
            } else {
                if let nj, let h = hash(n.value(nj)) {
                    w.appendLiteral("\"after_hash\":")
                    w.appendQuoted(h)
                    w.appendLiteral(",")
                }
                if let oi, let h = hash(o.value(oi)) {
                    w.appendLiteral("\"before_hash\":")
                    w.appendQuoted(h)
                    w.appendLiteral(",")
                }
                w.appendLiteral("\"class\":\"pii\"")
            }
            w.appendLiteral(",\"field\":")
            w.appendQuoted(utf8: name)
            if oi == nil {
                w.appendLiteral(",\"op\":\"added\"}")
            } else if nj == nil {
                w.appendLiteral(",\"op\":\"removed\"}")
            } else {
                w.appendLiteral(",\"op\":\"modified\"}")
            }
        }
        return written
    }

    /// A public attribute's value in a diff: its string, else its canonical JSON text; null
    /// when absent.
    static func writePublic(_ w: inout JSONWriter, _ image: DiffSide, _ i: Int?) {
        guard let i else { return w.appendLiteral("null") }
        let v = image.value(i)
        if image.attributes[i].plainString {
            w.appendLiteral("\"")
            w.appendLiteral(UnsafeBufferPointer(rebasing: v[6..<(v.count - 2)]))
            w.appendLiteral("\"")
            return
        }
        let value = (try? JSON.parse(Array(v))) ?? .null
        var t = JSONWriter()
        t.value(value["S"] ?? .string(value.serialized()))
        w.appendLiteral(t.bytes)
    }

    /// Writes one change event (keys sorted, as `JSON.serialized()` would give its tree), with
    /// the diff from `old` to `new`; nil when `dropIfUnchanged` and nothing changed.
    func event(
        _ type: String, hem: String, before: String?, after: String?, from old: ItemImage?, to new: ItemImage?,
        updatedAt: ItemImage, positions: [StreamPosition], time: Double, partnerMissing: Bool, dropIfUnchanged: Bool = false
    ) -> ChangeEvent? {
        var w = JSONWriter(capacity: 1536)
        w.appendLiteral("{\"data\":{\"changes\":[")
        if writeDiff(&w, from: old, to: new) == 0, dropIfUnchanged { return nil }
        w.appendLiteral("],\"hem\":")
        let hemStart = w.bytes.count + 1
        w.appendQuoted(hem)
        let hemRange = hemStart..<(w.bytes.count - 1)
        if partnerMissing { w.appendLiteral(",\"partner_missing\":true") }
        w.appendLiteral(",\"positions\":[")
        for (k, p) in positions.enumerated() {
            w.appendLiteral(k == 0 ? "{\"event_name\":" : ",{\"event_name\":")
            w.appendQuoted(p.eventName)
            w.appendLiteral(",\"sequence_number\":")
            w.appendQuoted(p.sequenceNumber)
            w.appendLiteral(",\"shard_id\":")
            w.appendQuoted(p.shardID)
            w.appendLiteral(",\"stream_arn\":")
            w.appendQuoted(p.streamARN)
            w.appendLiteral("}")
        }
        w.appendLiteral("],\"updated_at\":")
        Self.writeStringOrNull(&w, updatedAt, .updatedAt)
        w.appendLiteral(",\"vup_id_after\":")
        Self.writeStringOrNull(&w, after)
        w.appendLiteral(",\"vup_id_before\":")
        Self.writeStringOrNull(&w, before)
        w.appendLiteral(
            "},\"datacontenttype\":\"application/json\",\"dataschema\":\"https://schemas.hemstream.dev/events/change-event.v1.json\",\"id\":"
        )
        let idStart = w.bytes.count + 1
        Self.appendEventID(&w, hem: hem, positions: positions)
        let idRange = idStart..<(w.bytes.count - 1)
        w.appendLiteral(",\"source\":")
        w.appendQuoted(source)
        w.appendLiteral(",\"specversion\":\"1.0\",\"subject\":")
        let specEnd = w.bytes.count - 12
        w.appendQuoted(hem)
        w.appendLiteral(",\"time\":")
        Self.appendQuotedUTCTimestamp(&w, time)
        w.appendLiteral(",\"type\":")
        let typeStart = w.bytes.count + 1
        w.appendQuoted(type)
        let typeRange = typeStart..<(w.bytes.count - 1)
        w.appendLiteral("}")
        // The key is a slice of the bytes when the hem was written as it is (no escapes).
        let plainHem = hemRange.count == hem.utf8.count
        return ChangeEvent(
            type: type, hem: hem, bytes: w.bytes, positions: positions,
            ranges: plainHem
                ? ChangeEvent.Ranges(key: hemRange, id: idRange, type: typeRange, specversion: (specEnd - 3)..<specEnd) : nil)
    }

    static func writeStringOrNull(_ w: inout JSONWriter, _ s: String?) {
        if let s { w.appendQuoted(s) } else { w.appendLiteral("null") }
    }

    /// Attribute `name` of `image` when it is a string, else null: a plain string is written from
    /// the image's bytes (no String made for it).
    static func writeStringOrNull(_ w: inout JSONWriter, _ image: ItemImage, _ name: ItemImage.Known) {
        guard let i = image.index(name) else { return w.appendLiteral("null") }
        guard image.attribute(i).plainString else { return writeStringOrNull(&w, image.string(at: i)) }
        image.withText(at: i) { w.appendQuoted(utf8: $0) }
    }

    /// Writes the event's deterministic id, quoted: SHA-256 of the hem and its records'
    /// positions, in hex. The hem is part of it: one record names one hem, and a server that
    /// gave two records one sequence number (moto 5.2.1 does under concurrent writes) cannot
    /// merge two events.
    static func appendEventID(_ w: inout JSONWriter, hem: String, positions: [StreamPosition]) {
        let digest = eventDigest(hem: hem, positions: positions)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 66) { out in
            out[0] = 0x22
            digest.withUnsafeBytes { Hex.write($0, to: out.baseAddress! + 1) }
            out[65] = 0x22
            w.appendLiteral(UnsafeBufferPointer(out))
        }
    }

    /// The event id's digest. One record's input is gathered into one buffer and hashed with
    /// one call (a call per piece cost more than the hashing).
    static func eventDigest(hem: String, positions: [StreamPosition]) -> SHA256.Digest {
        if positions.count == 1 {
            let p = positions[0]
            var hem = hem, arn = p.streamARN, shard = p.shardID, seq = p.sequenceNumber
            let count = hem.utf8.count + arn.utf8.count + shard.utf8.count + seq.utf8.count + 3
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
                var n = 0
                func put(_ s: inout String) {
                    s.withUTF8 { u in
                        if let base = u.baseAddress { (buffer.baseAddress! + n).update(from: base, count: u.count) }
                        n += u.count
                    }
                }
                func put(_ c: Character) {
                    buffer[n] = c.asciiValue!
                    n += 1
                }
                put(&hem)
                put("\n")
                put(&arn)
                put("|")
                put(&shard)
                put("|")
                put(&seq)
                var sha = SHA256()
                sha.update(bufferPointer: UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
                return sha.finalize()
            }
        }
        var sha = SHA256()
        var hem = hem
        hem.withUTF8 { sha.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        var parts = positions.map { p in
            var b: [UInt8] = []
            b.reserveCapacity(p.streamARN.utf8.count + p.shardID.utf8.count + p.sequenceNumber.utf8.count + 2)
            b += p.streamARN.utf8
            b.append(UInt8(ascii: "|"))
            b += p.shardID.utf8
            b.append(UInt8(ascii: "|"))
            b += p.sequenceNumber.utf8
            return b
        }
        if parts.count > 1 { parts.sort { $0.lexicographicallyPrecedes($1) } }
        for p in parts {
            sha.update(data: [UInt8(ascii: "\n")])
            p.withUnsafeBytes { sha.update(bufferPointer: $0) }
        }
        return sha.finalize()
    }

    /// Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a formatter per event.
    public static func utcTimestamp(_ epoch: Double) -> String {
        String(unsafeUninitializedCapacity: 20) { writeUTCTimestamp(epoch, into: $0) }
    }

    /// `utcTimestamp`, quoted, appended to an event being written (no String per event).
    static func appendQuotedUTCTimestamp(_ w: inout JSONWriter, _ epoch: Double) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 22) { out in
            out[0] = 0x22
            _ = writeUTCTimestamp(epoch, into: UnsafeMutableBufferPointer(rebasing: out[1..<21]))
            out[21] = 0x22
            w.appendLiteral(UnsafeBufferPointer(out))
        }
    }

    /// Writes the 20 bytes of `utcTimestamp` into `out`; returns 20.
    static func writeUTCTimestamp(_ epoch: Double, into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let secs = Int(epoch.rounded(.down))
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let rem = secs - days * 86_400
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        // Written in place: an array per field was a tenth of an event's cost.
        func put(_ v: Int, _ width: Int, at start: Int) {
            var v = v
            for i in stride(from: start + width - 1, through: start, by: -1) {
                out[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(y, 4, at: 0); out[4] = 45; put(m, 2, at: 5); out[7] = 45; put(d, 2, at: 8); out[10] = 84
        put(rem / 3600, 2, at: 11); out[13] = 58; put(rem % 3600 / 60, 2, at: 14); out[16] = 58
        put(rem % 60, 2, at: 17); out[19] = 90
        return 20
    }
}
