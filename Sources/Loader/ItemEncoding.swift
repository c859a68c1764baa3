import Export
import JSON
import Schemas

/// The primary key of a table item: partition `vup_id`, sort `hem`.
public struct ItemKey: Hashable, Sendable {
    public var vupID: String
    public var hem: String
    public init(vupID: String, hem: String) {
        self.vupID = vupID
        self.hem = hem
    }
}

/// Turns export rows into DynamoDB item JSON (`{"vup_id":{"S":…},…}`) written straight into a
/// byte buffer: the bulk path cannot afford Foundation's JSON.
public enum ItemEncoding {
    /// The item for `row`; `previousVupID` marks an item written by a move (the stream
    /// reader's detector reads it to tell a move from a new HEM).
    public static func writeItem(_ row: ExportRow, previousVupID: String? = nil, to w: inout JSONWriter) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        appendItem(row, previousVupID: previousVupID, to: &bytes)
        w.raw(bytes)
    }

    public static func writeKey(_ key: ItemKey, to w: inout JSONWriter) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(96)
        appendKey(key, to: &bytes)
        w.raw(bytes)
    }

    /// The hot path: the item's JSON appended to `out`, the fixed parts as prebuilt bytes.
    public static func appendItem(_ row: ExportRow, previousVupID: String? = nil, to out: inout [UInt8]) {
        out.append(contentsOf: Fragment.vupID)
        appendString(row.vupID, to: &out)
        out.append(contentsOf: Fragment.hem)
        appendString(row.hem, to: &out)
        if let v = row.email {
            out.append(contentsOf: Fragment.email)
            appendString(v, to: &out)
        }
        if let v = row.domain {
            out.append(contentsOf: Fragment.domain)
            appendString(v, to: &out)
        }
        if let v = row.source {
            out.append(contentsOf: Fragment.source)
            appendString(v, to: &out)
        }
        if let v = row.lastVerified {
            out.append(contentsOf: Fragment.lastVerified)
            appendString(v, to: &out)
        }
        out.append(contentsOf: Fragment.updatedAt)
        appendString(row.updatedAt, to: &out)
        if let previousVupID {
            out.append(contentsOf: Fragment.previousVupID)
            appendString(previousVupID, to: &out)
        }
        out.append(contentsOf: Fragment.close)
    }

    public static func appendKey(_ key: ItemKey, to out: inout [UInt8]) {
        out.append(contentsOf: Fragment.vupID)
        appendString(key.vupID, to: &out)
        out.append(contentsOf: Fragment.hem)
        appendString(key.hem, to: &out)
        out.append(contentsOf: Fragment.close)
    }

    /// A JSON string: copied as is when nothing needs escaping (hems, ids, timestamps, nearly
    /// every email), otherwise quoted by JSONWriter.
    @inline(__always) static func appendString(_ value: String, to out: inout [UInt8]) {
        var value = value
        let plain = value.withUTF8 { buffer -> Bool in
            for c in buffer where c < 0x20 || c == 0x22 || c == 0x5C { return false }
            out.append(0x22)
            out.append(contentsOf: buffer)
            out.append(0x22)
            return true
        }
        if !plain {
            var w = JSONWriter(capacity: value.utf8.count + 16)
            w.string(value)
            out.append(contentsOf: w.bytes)
        }
    }

    /// `{"vup_id":{"S":` … `},"hem":{"S":` … `}}`: attribute openings, each closing the one before.
    enum Fragment {
        static let vupID = Array(#"{"vup_id":{"S":"#.utf8)
        static let hem = Array(#"},"hem":{"S":"#.utf8)
        static let email = Array(#"},"email":{"S":"#.utf8)
        static let domain = Array(#"},"domain":{"S":"#.utf8)
        static let source = Array(#"},"source":{"S":"#.utf8)
        static let lastVerified = Array(#"},"last_verified":{"S":"#.utf8)
        static let updatedAt = Array(#"},"updated_at":{"S":"#.utf8)
        static let previousVupID = Array(#"},"previous_vup_id":{"S":"#.utf8)
        static let close = Array("}}".utf8)
    }

    /// The item's size as DynamoDB counts it: UTF-8 bytes of attribute names plus values.
    public static func itemSize(_ row: ExportRow, previousVupID: String? = nil) -> Int {
        var size = 6 + row.vupID.utf8.count + 3 + row.hem.utf8.count + 10 + row.updatedAt.utf8.count
        if let v = row.email { size += 5 + v.utf8.count }
        if let v = row.domain { size += 6 + v.utf8.count }
        if let v = row.source { size += 6 + v.utf8.count }
        if let v = row.lastVerified { size += 13 + v.utf8.count }
        if let v = previousVupID { size += 15 + v.utf8.count }
        return size
    }

    /// Write capacity units for an item of `size` bytes: one per started KB.
    public static func writeUnits(forSize size: Int) -> Int { max(1, (size + 1023) / 1024) }
}

/// Writes JSON bytes straight into memory sized beforehand (see `RawFragment`): no bounds
/// checks, no reallocation, no retain of prebuilt fragments. The size counts every value
/// unescaped; a value that needs escaping (rare: a quote in a source) is escaped by JSONWriter
/// into the `slack` bytes allocated beyond it. When the slack runs out the value is copied
/// unescaped and `complete` turns false: the caller then encodes again the slow way.
struct RawSink {
    var cursor: UnsafeMutablePointer<UInt8>
    var slack: Int
    var complete = true

    @inline(__always) mutating func fragment(_ text: StaticString) {
        let count = text.utf8CodeUnitCount
        cursor.initialize(from: text.utf8Start, count: count)
        cursor += count
    }

    @inline(__always) mutating func byte(_ value: UInt8) {
        cursor.initialize(to: value)
        cursor += 1
    }

    /// `"value"`, copied byte by byte while checking for what JSON must escape.
    @inline(__always) mutating func string(_ value: String) {
        let open = cursor
        byte(0x22)
        let copied = value.utf8.withContiguousStorageIfAvailable { buffer -> Bool in
            guard let base = buffer.baseAddress else { return true }
            cursor.initialize(from: base, count: buffer.count)
            cursor += buffer.count
            // A reduction without branches or stores: the compiler vectorises it.
            var bad: UInt8 = 0
            for c in buffer {
                bad |= (c < 0x20 ? 1 : 0) | (c == 0x22 ? 1 : 0) | (c == 0x5C ? 1 : 0)
            }
            return bad == 0
        }
        byte(0x22)
        if copied != true { escape(value, at: open) }
    }

    /// Rewrites the string just copied at `open` escaped, if the slack allows.
    mutating func escape(_ value: String, at open: UnsafeMutablePointer<UInt8>) {
        var w = JSONWriter(capacity: value.utf8.count + 16)
        w.string(value)
        let extra = w.bytes.count - (cursor - open)
        guard extra <= slack else {
            // The unescaped copy (the length counted for it) stays; the body is not usable.
            cursor = open + 1
            for c in value.utf8 { byte(c) }
            byte(0x22)
            complete = false
            return
        }
        slack -= extra
        w.bytes.withUnsafeBufferPointer { open.update(from: $0.baseAddress!, count: $0.count) }
        cursor = open + w.bytes.count
    }

    mutating func item(_ row: ExportRow, previousVupID: String?) {
        fragment(RawFragment.vupID)
        string(row.vupID)
        fragment(RawFragment.hem)
        string(row.hem)
        if let v = row.email {
            fragment(RawFragment.email)
            string(v)
        }
        if let v = row.domain {
            fragment(RawFragment.domain)
            string(v)
        }
        if let v = row.source {
            fragment(RawFragment.source)
            string(v)
        }
        if let v = row.lastVerified {
            fragment(RawFragment.lastVerified)
            string(v)
        }
        fragment(RawFragment.updatedAt)
        string(row.updatedAt)
        if let previousVupID {
            fragment(RawFragment.previousVupID)
            string(previousVupID)
        }
        fragment(RawFragment.close)
    }

    mutating func key(vupID: String, hem: String) {
        fragment(RawFragment.vupID)
        string(vupID)
        fragment(RawFragment.hem)
        string(hem)
        fragment(RawFragment.close)
    }
}

/// The item fragments as static text, for RawSink and for the lengths it is sized by.
enum RawFragment {
    static let vupID: StaticString = #"{"vup_id":{"S":"#
    static let hem: StaticString = #"},"hem":{"S":"#
    static let email: StaticString = #"},"email":{"S":"#
    static let domain: StaticString = #"},"domain":{"S":"#
    static let source: StaticString = #"},"source":{"S":"#
    static let lastVerified: StaticString = #"},"last_verified":{"S":"#
    static let updatedAt: StaticString = #"},"updated_at":{"S":"#
    static let previousVupID: StaticString = #"},"previous_vup_id":{"S":"#
    static let close: StaticString = "}}"

    /// Bytes RawSink writes for the item when no value needs escaping.
    @inline(__always) static func itemLength(_ row: ExportRow, previousVupID previous: String?) -> Int {
        var n = vupID.utf8CodeUnitCount + hem.utf8CodeUnitCount + updatedAt.utf8CodeUnitCount
        n += close.utf8CodeUnitCount + 6 + row.vupID.utf8.count + row.hem.utf8.count + row.updatedAt.utf8.count
        if let v = row.email { n += email.utf8CodeUnitCount + 2 + v.utf8.count }
        if let v = row.domain { n += domain.utf8CodeUnitCount + 2 + v.utf8.count }
        if let v = row.source { n += source.utf8CodeUnitCount + 2 + v.utf8.count }
        if let v = row.lastVerified { n += lastVerified.utf8CodeUnitCount + 2 + v.utf8.count }
        if let v = previous { n += previousVupID.utf8CodeUnitCount + 2 + v.utf8.count }
        return n
    }

    /// Bytes RawSink writes for a key when neither value needs escaping.
    @inline(__always) static func keyLength(vupID v: String, hem h: String) -> Int {
        vupID.utf8CodeUnitCount + hem.utf8CodeUnitCount + close.utf8CodeUnitCount + 4 + v.utf8.count + h.utf8.count
    }
}
