import Crypto
import Foundation
import JSON
import Schemas

/// Which attributes are keys, public, PII or bookkeeping (schemas/fields.json). Unknown → PII.
public struct FieldClassification: Sendable {
    public enum Class: String, Sendable { case key, `public`, pii, bookkeeping }
    public var classes: [String: Class]
    public init(classes: [String: Class]) { self.classes = classes }
    public static func load() throws -> FieldClassification {
        let j = try JSON.parse(try SchemaFiles.text("fields.json"))
        var c: [String: Class] = [:]
        for k in ["keys": Class.key, "public": .public, "pii": .pii, "bookkeeping": .bookkeeping] {
            for n in j[k.key]?.arrayValue ?? [] { if let s = n.stringValue { c[s] = k.value } }
        }
        return FieldClassification(classes: c)
    }
    public func classOf(_ field: String) -> Class { classes[field] ?? .pii }
}

/// Where a stream record came from; a checkpoint position.
public struct StreamPosition: Sendable, Hashable {
    public var streamARN: String, shardID: String, sequenceNumber: String, eventName: String
    public init(streamARN: String, shardID: String, sequenceNumber: String, eventName: String) {
        self.streamARN = streamARN; self.shardID = shardID; self.sequenceNumber = sequenceNumber; self.eventName = eventName
    }
}

/// One encoded change event (CloudEvents 1.0 JSON).
public struct ChangeEvent: Sendable {
    public var id: String, type: String, hem: String
    public var json: JSON
    /// The stream records behind the event (also in `json`'s data.positions).
    public var positions: [StreamPosition] = []
    public func encoded() -> [UInt8] { json.serializedBytes() }
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
        var image: [String: JSON], vup: String, isInsert: Bool, time: Double
        var position: StreamPosition, token: Int
        /// When this detector was given the record (wall clock).
        var readAt = Date()
    }
    /// A loader move's transition already emitted: its REMOVE, when it comes, is dropped.
    struct Departed: Sendable { var from: String, token: Int }
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
        try ingestTracked(record, shardID: shardID, streamARN: streamARN).events
    }

    /// `ingest`, also saying whether the record is held in the pairing window.
    public mutating func ingestTracked(_ record: JSON, shardID: String, streamARN: String) throws(RecordError) -> Outcome {
        guard let name = record["eventName"]?.stringValue else { throw RecordError(description: "record missing eventName") }
        guard let d = record["dynamodb"] else { throw RecordError(description: "record missing dynamodb") }
        guard let seq = d["SequenceNumber"]?.stringValue else { throw RecordError(description: "record missing dynamodb.SequenceNumber") }
        guard let time = d["ApproximateCreationDateTime"]?.doubleValue else { throw RecordError(description: "record missing dynamodb.ApproximateCreationDateTime") }
        let pos = StreamPosition(streamARN: streamARN, shardID: shardID, sequenceNumber: seq, eventName: name)
        let newImage = d["NewImage"]?.objectValue, oldImage = d["OldImage"]?.objectValue
        func key(_ img: [String: JSON]?, _ k: String) throws(RecordError) -> String {
            guard let v = img?[k]?["S"]?.stringValue ?? d["Keys"]?[k]?["S"]?.stringValue else { throw RecordError(description: "record missing key \(k)") }
            return v
        }
        // Validate everything before changing any state, so a bad record leaves none behind.
        var out = Outcome()
        switch name {
        case "MODIFY":
            guard let o = oldImage, let n = newImage else { throw RecordError(description: "MODIFY record missing OldImage or NewImage") }
            let hem = try key(n, "hem"), vup = try key(n, "vup_id")
            out.events = advance(to: time)
            let changes = diff(o, n)
            if changes.isEmpty { noOpModifies += 1 } else {
                out.events.append(event("hem.updated", hem: hem, before: vup, after: vup, changes: changes, updatedAt: n["updated_at"], positions: [pos], time: time, partnerMissing: false))
            }
        case "INSERT", "REMOVE":
            let isInsert = name == "INSERT"
            guard let image = isInsert ? newImage : oldImage else { throw RecordError(description: "\(name) record missing \(isInsert ? "NewImage" : "OldImage")") }
            let hem = try key(image, "hem"), vup = try key(image, "vup_id")
            out.events = advance(to: time)
            if isInsert, let from = image["previous_vup_id"]?["S"]?.stringValue, from != vup {
                // The loader's move: this record alone is the transition.
                if let p = pending[hem] {
                    pending[hem] = nil
                    if !p.isInsert && p.vup == from { released.append(p.position); departedHalvesDropped += 1 }
                    else { out.events.append(settle(hem: hem, p)) }
                }
                out.events.append(event(moveType(from, vup), hem: hem, before: from, after: vup, changes: [], updatedAt: image["updated_at"], positions: [pos], time: time, partnerMissing: false))
                let token = take()
                departed[hem] = Departed(from: from, token: token)
                expiries.push(.init(time: time, token: token, hem: hem))
                return out
            }
            if !isInsert, let moved = departed[hem], moved.from == vup {
                departed[hem] = nil
                departedHalvesDropped += 1
                return out
            }
            let token = take()
            let me = Pending(image: image, vup: vup, isInsert: isInsert, time: time, position: pos, token: token)
            if let other = pending[hem], Self.arePartners(earlier: other, later: me) {
                pending[hem] = nil
                released.append(other.position)
                out.events.append(pair(hem: hem, me.isInsert ? other : me, me.isInsert ? me : other))
            } else {
                if let stale = pending[hem] { pending[hem] = nil; out.events.append(settle(hem: hem, stale)) }
                pending[hem] = me
                expiries.push(.init(time: time, token: token, hem: hem))
                out.held = true
                if pending.count > maxPending { out.events += settleOldest() }
            }
        default: throw RecordError(description: "record has unknown eventName")
        }
        return out
    }

    mutating func take() -> Int { nextToken += 1; return nextToken }

    /// Settles every pending half whose window has passed at `now` (epoch seconds).
    public mutating func advance(to now: Double) -> [ChangeEvent] {
        var out: [ChangeEvent] = []
        while let top = expiries.peek, now - top.time >= window {
            expiries.pop()
            out += expire(top)
        }
        return out
    }

    mutating func settleOldest() -> [ChangeEvent] {
        var out: [ChangeEvent] = []
        while pending.count > maxPending, let top = expiries.pop() { out += expire(top) }
        return out
    }

    mutating func expire(_ entry: MinHeap.Entry) -> [ChangeEvent] {
        if let d = departed[entry.hem], d.token == entry.token { departed[entry.hem] = nil }
        guard let p = pending[entry.hem], p.token == entry.token else { return [] }
        pending[entry.hem] = nil
        return [settle(hem: entry.hem, p)]
    }

    /// Settles the halves given to this detector before `readBefore` (wall clock): a reader's
    /// idle-shard settling, in pending order. O(pending); called about once a second.
    public mutating func settleHeld(readBefore: Date) -> [ChangeEvent] {
        settlePending { $0.readAt < readBefore }
    }

    /// Settles the halves read from one shard now (the shard is being handed to another replica).
    public mutating func flush(shardID: String) -> [ChangeEvent] {
        settlePending { $0.position.shardID == shardID }
    }

    /// Settles the pending halves that `due` picks, oldest record first.
    mutating func settlePending(_ due: (Pending) -> Bool) -> [ChangeEvent] {
        pending.filter { due($0.value) }.sorted { $0.value.time < $1.value.time }.map { hem, p in
            pending[hem] = nil
            return settle(hem: hem, p)
        }
    }

    /// Settles everything pending, as if every window had passed (end of input, shutdown).
    public mutating func flush() -> [ChangeEvent] { advance(to: .infinity) }

    /// True when this detector emitted a loader move of `hem` away from `vup` within the window.
    public func knowsDeparture(hem: String, from vup: String) -> Bool { departed[hem]?.from == vup }

    /// Halves waiting for a partner.
    public var pendingCount: Int { pending.count }

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
        if let previous = insert.image["previous_vup_id"]?["S"]?.stringValue { return previous == remove.vup }
        return true
    }

    mutating func settle(hem: String, _ p: Pending) -> ChangeEvent {
        released.append(p.position)
        if p.isInsert, let prevVup = p.image["previous_vup_id"]?["S"]?.stringValue, prevVup != p.vup {
            return event(moveType(prevVup, p.vup), hem: hem, before: prevVup, after: p.vup, changes: diff([:], p.image, keepAdds: false), updatedAt: p.image["updated_at"], positions: [p.position], time: p.time, partnerMissing: true)
        }
        if p.isInsert {
            return event("hem.created", hem: hem, before: nil, after: p.vup, changes: diff([:], p.image), updatedAt: p.image["updated_at"], positions: [p.position], time: p.time, partnerMissing: false)
        }
        return event("hem.deleted", hem: hem, before: p.vup, after: nil, changes: diff(p.image, [:]), updatedAt: p.image["updated_at"], positions: [p.position], time: p.time, partnerMissing: false)
    }

    func pair(hem: String, _ remove: Pending, _ insert: Pending) -> ChangeEvent {
        let positions = [remove.position, insert.position].sorted { ($0.shardID, $0.sequenceNumber) < ($1.shardID, $1.sequenceNumber) }
        if remove.vup == insert.vup {
            let c = diff(remove.image, insert.image)
            return event("hem.updated", hem: hem, before: remove.vup, after: insert.vup, changes: c, updatedAt: insert.image["updated_at"], positions: positions, time: max(remove.time, insert.time), partnerMissing: false)
        }
        return event(moveType(remove.vup, insert.vup), hem: hem, before: remove.vup, after: insert.vup, changes: diff(remove.image, insert.image), updatedAt: insert.image["updated_at"], positions: positions, time: max(remove.time, insert.time), partnerMissing: false)
    }

    func moveType(_ before: String, _ after: String) -> String {
        switch (Sentinel.isSentinel(before), Sentinel.isSentinel(after)) {
        case (true, false): return "hem.resolved"
        case (false, true): return "hem.unresolved"
        default: return "hem.reassigned"
        }
    }

    func hash(_ v: JSON) -> String? {
        guard let key = piiKey else { return nil }
        return Self.hex(HMAC<SHA256>.authenticationCode(for: Array(v.serialized().utf8), using: SymmetricKey(data: key)))
    }

    /// Field-level diff over non-key, non-bookkeeping attributes; PII values never copied.
    func diff(_ old: [String: JSON], _ new: [String: JSON], keepAdds: Bool = true) -> [JSON] {
        var out: [JSON] = []
        for f in Set(old.keys).union(new.keys).sorted() {
            let cls = fields.classOf(f)
            if cls == .key || cls == .bookkeeping { continue }
            let o = old[f], n = new[f]
            if o == n { continue }
            let op = o == nil ? "added" : n == nil ? "removed" : "modified"
            var e: [String: JSON] = ["field": .string(f), "op": .string(op), "class": .string(cls == .public ? "public" : "pii")]
            if cls == .public {
                e["before"] = o.flatMap { $0["S"] ?? .string($0.serialized()) } ?? .null
                e["after"] = n.flatMap { $0["S"] ?? .string($0.serialized()) } ?? .null
            } else {
                if let o, let h = hash(o) { e["before_hash"] = .string(h) }
                if let n, let h = hash(n) { e["after_hash"] = .string(h) }
            }
            out.append(.object(e))
        }
        return out
    }

    func event(_ type: String, hem: String, before: String?, after: String?, changes: [JSON], updatedAt: JSON?, positions: [StreamPosition], time: Double, partnerMissing: Bool) -> ChangeEvent {
        // The hem is part of the id: one record names one hem, and a server that gave two records
        // one sequence number (moto 5.2.1 does under concurrent writes) cannot merge two events.
        let idInput = hem + "\n" + positions.map { "\($0.streamARN)|\($0.shardID)|\($0.sequenceNumber)" }.sorted().joined(separator: "\n")
        let id = Self.hex(SHA256.hash(data: Array(idInput.utf8)))
        var data: [String: JSON] = [
            "hem": .string(hem), "vup_id_before": before.map(JSON.string) ?? .null, "vup_id_after": after.map(JSON.string) ?? .null,
            "changes": .array(changes), "updated_at": updatedAt?["S"] ?? .null,
            "positions": .array(positions.map { ["stream_arn": .string($0.streamARN), "shard_id": .string($0.shardID), "sequence_number": .string($0.sequenceNumber), "event_name": .string($0.eventName)] }),
        ]
        if partnerMissing { data["partner_missing"] = true }
        let json: JSON = [
            "specversion": "1.0", "id": .string(id), "source": .string(source), "type": .string(type), "subject": .string(hem),
            "time": .string(Self.utcTimestamp(time)), "datacontenttype": "application/json",
            "dataschema": "https://schemas.hemstream.dev/events/change-event.v1.json", "data": .object(data),
        ]
        return ChangeEvent(id: id, type: type, hem: hem, json: json, positions: positions)
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lowercase hex of a digest (per byte String(format:) was a hot spot).
    public static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a formatter per event.
    public static func utcTimestamp(_ epoch: Double) -> String {
        let secs = Int(epoch.rounded(.down))
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let rem = secs - days * 86_400
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        var out: [UInt8] = []
        out.reserveCapacity(20)
        func put(_ v: Int, _ width: Int) {
            var digits = [UInt8](repeating: 48, count: width)
            var v = v
            for i in stride(from: width - 1, through: 0, by: -1) { digits[i] = UInt8(48 + v % 10); v /= 10 }
            out += digits
        }
        put(y, 4); out.append(45); put(m, 2); out.append(45); put(d, 2); out.append(84)
        put(rem / 3600, 2); out.append(58); put(rem % 3600 / 60, 2); out.append(58); put(rem % 60, 2); out.append(90)
        return String(decoding: out, as: UTF8.self)
    }
}
