import Export
import JSON

/// One change the loader makes to the table.
public enum WriteOperation: Sendable {
    /// Put the row's item (a BatchWriteItem PutRequest).
    case put(ExportRow)
    /// Delete an item (a BatchWriteItem DeleteRequest).
    case delete(ItemKey, line: Int)
    /// Move a HEM: delete `from` and put the row's item with `previous_vup_id`, in one transaction.
    case move(from: ItemKey, to: ExportRow)

    public var key: ItemKey {
        switch self {
        case .put(let row), .move(_, let row): return ItemKey(vupID: row.vupID, hem: row.hem)
        case .delete(let key, _): return key
        }
    }

    public var isDelete: Bool {
        if case .delete = self { return true }
        return false
    }

    public var line: Int {
        switch self {
        case .put(let row), .move(_, let row): return row.line
        case .delete(_, let line): return line
        }
    }

    /// Write capacity this operation costs (a delete is charged as one unit: the old item's
    /// size is not known here).
    public var writeUnits: Int {
        switch self {
        case .put(let row): return ItemEncoding.writeUnits(forSize: ItemEncoding.itemSize(row))
        case .delete: return 1
        case .move(let from, let row):
            return 1 + ItemEncoding.writeUnits(forSize: ItemEncoding.itemSize(row, previousVupID: from.vupID))
        }
    }

    /// Bytes `writeRequest` writes when no value needs escaping. (Methods on the operation
    /// read its payload in place; a switch over an array element copies the row first.)
    var rawRequestLength: Int {
        typealias Raw = RequestBodies.Raw
        switch self {
        case .put(let row), .move(_, let row):
            return Raw.put.utf8CodeUnitCount + RawFragment.itemLength(row, previousVupID: nil) + 2
        case .delete(let key, _):
            return Raw.delete.utf8CodeUnitCount + RawFragment.keyLength(vupID: key.vupID, hem: key.hem) + 2
        }
    }

    /// The BatchWriteItem request: `{"PutRequest":{"Item":…}}` or `{"DeleteRequest":{"Key":…}}`.
    func writeRequest(to sink: inout RawSink) {
        typealias Raw = RequestBodies.Raw
        switch self {
        case .put(let row), .move(_, let row):
            // A move is never sent in a batch (it is a transaction); encoded as its put if it is.
            sink.fragment(Raw.put)
            sink.item(row, previousVupID: nil)
        case .delete(let key, _):
            sink.fragment(Raw.delete)
            sink.key(vupID: key.vupID, hem: key.hem)
        }
        sink.fragment(Raw.closeRequest)
    }

    var requestSize: Int {
        switch self {
        case .put(let row): return ItemEncoding.itemSize(row) * 2 + 120
        case .delete(let key, _): return key.hem.utf8.count + key.vupID.utf8.count + 80
        case .move(let from, let row): return ItemEncoding.itemSize(row, previousVupID: from.vupID) * 2 + 300
        }
    }
}

/// Groups puts and deletes into BatchWriteItem batches: at most 25 requests and well under
/// 16 MB per call, one request per key (the last one for a key wins, as boto3's
/// `overwrite_by_pkeys` does: DynamoDB rejects a batch that names a key twice).
/// Keys are deduplicated by a linear scan: for 25 keys it is cheaper than hashing each one.
public struct BatchBuilder: Sendable {
    public static let maxRequests = 25
    public static let maxBytes = 15 * 1024 * 1024

    private var operations: [WriteOperation] = []
    private var keys: ContiguousArray<ItemKey> = []
    /// A cheap fingerprint of each key's HEM, compared before the strings are.
    private var tags: ContiguousArray<UInt64> = []
    private var sizes: ContiguousArray<Int> = []
    private var bytes = 0

    public init() {}

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }

    /// Adds `operation` (taken, not copied: a row is seven strings to retain); returns a full
    /// batch when this one did not fit (it then starts the next).
    public mutating func add(_ operation: consuming WriteOperation) -> [WriteOperation]? {
        let key = operation.key
        let size = operation.requestSize
        let tag = Self.tag(key.hem)
        if let existing = index(of: key, tag: tag) {
            bytes += size - sizes[existing]
            operations[existing] = operation
            sizes[existing] = size
            return nil
        }
        var full: [WriteOperation]?
        if operations.count == Self.maxRequests || bytes + size > Self.maxBytes {
            full = take()
        }
        if operations.capacity == 0 { operations.reserveCapacity(Self.maxRequests) }
        operations.append(operation)
        keys.append(key)
        tags.append(tag)
        sizes.append(size)
        bytes += size
        return full
    }

    @inline(__always) private func index(of key: ItemKey, tag: UInt64) -> Int? {
        tags.withUnsafeBufferPointer { tags in
            for i in 0..<tags.count where tags[i] == tag && keys[i].hem == key.hem && keys[i].vupID == key.vupID {
                return i
            }
            return nil
        }
    }

    /// Length and last eight bytes of a HEM (hex digests differ there); equal keys have equal tags.
    @inline(__always) static func tag(_ hem: String) -> UInt64 {
        hem.utf8.withContiguousStorageIfAvailable { bytes -> UInt64 in
            var tag = UInt64(truncatingIfNeeded: bytes.count)
            for c in bytes.suffix(8) { tag = tag << 8 | UInt64(c) }
            return tag
        } ?? 0
    }

    /// The batch so far (possibly empty); the builder starts over.
    public mutating func take() -> [WriteOperation] {
        var batch: [WriteOperation] = []
        swap(&batch, &operations)
        keys.removeAll(keepingCapacity: true)
        tags.removeAll(keepingCapacity: true)
        sizes.removeAll(keepingCapacity: true)
        bytes = 0
        return batch
    }
}

/// Request bodies for the loader's DynamoDB calls, written with JSONWriter.
public enum RequestBodies {
    public static func batchWrite(table: String, _ operations: [WriteOperation]) -> [UInt8] {
        rawBatchWrite(table: table, operations) ?? writerBatchWrite(table: table, operations)
    }

    /// The general path: any value, escaped as JSON requires.
    static func writerBatchWrite(table: String, _ operations: [WriteOperation]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(operations.reduce(64) { $0 + $1.requestSize })
        out.append(contentsOf: Fragment.requestItems)
        var name = JSONWriter(capacity: table.utf8.count + 8)
        name.string(table)
        out.append(contentsOf: name.bytes)
        out.append(contentsOf: Fragment.colonBracket)
        for (i, operation) in operations.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            switch operation {
            case .put(let row), .move(_, let row):
                // A move is never sent in a batch (it is a transaction); encoded as its put if it is.
                out.append(contentsOf: Fragment.put)
                ItemEncoding.appendItem(row, to: &out)
            case .delete(let key, _):
                out.append(contentsOf: Fragment.delete)
                ItemEncoding.appendKey(key, to: &out)
            }
            out.append(contentsOf: Fragment.closeRequest)
        }
        out.append(contentsOf: Fragment.end)
        return out
    }

    /// The bulk path: the body sized for unescaped values plus `slack`, then written in one pass
    /// by RawSink; nil when escaped values outgrow the slack (the caller then uses JSONWriter).
    static func rawBatchWrite(table: String, _ operations: [WriteOperation], slack: Int = 256) -> [UInt8]? {
        var length = Raw.requestItems.utf8CodeUnitCount + table.utf8.count + 2 + Raw.colonBracket.utf8CodeUnitCount
        length += Raw.end.utf8CodeUnitCount + max(0, operations.count - 1)
        for i in operations.indices { length += operations[i].rawRequestLength }
        var complete = true
        let body = [UInt8](unsafeUninitializedCapacity: length + slack) { buffer, count in
            let base = buffer.baseAddress!
            var sink = RawSink(cursor: base, end: base + length + slack)
            sink.fragment(Raw.requestItems)
            sink.string(table)
            sink.fragment(Raw.colonBracket)
            for i in operations.indices {
                if i > 0 { sink.byte(UInt8(ascii: ",")) }
                operations[i].writeRequest(to: &sink)
            }
            sink.fragment(Raw.end)
            count = sink.cursor - base
            complete = sink.complete
        }
        return complete ? body : nil
    }

    enum Raw {
        static let requestItems: StaticString = #"{"RequestItems":{"#
        static let colonBracket: StaticString = ":["
        static let put: StaticString = #"{"PutRequest":{"Item":"#
        static let delete: StaticString = #"{"DeleteRequest":{"Key":"#
        static let closeRequest: StaticString = "}}"
        static let end: StaticString = #"]},"ReturnConsumedCapacity":"TOTAL"}"#
        static let keys: StaticString = #":{"Keys":["#
        static let getEnd: StaticString =
            #"],"ConsistentRead":true,"ProjectionExpression":"vup_id, hem"}},"ReturnConsumedCapacity":"TOTAL"}"#
    }

    enum Fragment {
        static let requestItems = Array(#"{"RequestItems":{"#.utf8)
        static let colonBracket = Array(":[".utf8)
        static let put = Array(#"{"PutRequest":{"Item":"#.utf8)
        static let delete = Array(#"{"DeleteRequest":{"Key":"#.utf8)
        static let closeRequest = Array("}}".utf8)
        static let end = Array(#"]},"ReturnConsumedCapacity":"TOTAL"}"#.utf8)
    }

    /// One transaction for a group of moves: per move, a Delete of the old key and a Put of
    /// the new item carrying `previous_vup_id`.
    public static func moves(table: String, _ moves: [(from: ItemKey, to: ExportRow)]) -> [UInt8] {
        var w = JSONWriter(capacity: 700 * max(1, moves.count))
        w.beginObject()
        w.key("TransactItems")
        w.beginArray()
        for move in moves {
            w.beginObject()
            w.key("Delete")
            w.beginObject()
            w.key("TableName")
            w.string(table)
            w.key("Key")
            ItemEncoding.writeKey(move.from, to: &w)
            w.endObject()
            w.endObject()
            w.beginObject()
            w.key("Put")
            w.beginObject()
            w.key("TableName")
            w.string(table)
            w.key("Item")
            ItemEncoding.writeItem(move.to, previousVupID: move.from.vupID, to: &w)
            w.endObject()
            w.endObject()
        }
        w.endArray()
        w.key("ReturnConsumedCapacity")
        w.string("TOTAL")
        w.endObject()
        return w.bytes
    }

    /// BatchGetItem for keys (at most 100), consistent read.
    public static func batchGet(table: String, _ keys: [ItemKey]) -> [UInt8] {
        rawBatchGet(table: table, keys) ?? writerBatchGet(table: table, keys)
    }

    static func writerBatchGet(table: String, _ keys: [ItemKey]) -> [UInt8] {
        var w = JSONWriter(capacity: 100 * max(1, keys.count))
        w.beginObject()
        w.key("RequestItems")
        w.beginObject()
        w.key(table)
        w.beginObject()
        w.key("Keys")
        w.beginArray()
        for key in keys { ItemEncoding.writeKey(key, to: &w) }
        w.endArray()
        w.key("ConsistentRead")
        w.bool(true)
        // Only the keys come back: smaller answers, and no email crosses the wire for nothing.
        w.key("ProjectionExpression")
        w.string("vup_id, hem")
        w.endObject()
        w.endObject()
        w.key("ReturnConsumedCapacity")
        w.string("TOTAL")
        w.endObject()
        return w.bytes
    }

    /// batchGet's bulk path, as rawBatchWrite.
    static func rawBatchGet(table: String, _ keys: [ItemKey], slack: Int = 256) -> [UInt8]? {
        var length = Raw.requestItems.utf8CodeUnitCount + table.utf8.count + 2 + Raw.keys.utf8CodeUnitCount
        length += Raw.getEnd.utf8CodeUnitCount + max(0, keys.count - 1)
        for key in keys { length += RawFragment.keyLength(vupID: key.vupID, hem: key.hem) }
        var complete = true
        let body = [UInt8](unsafeUninitializedCapacity: length + slack) { buffer, count in
            let base = buffer.baseAddress!
            var sink = RawSink(cursor: base, end: base + length + slack)
            sink.fragment(Raw.requestItems)
            sink.string(table)
            sink.fragment(Raw.keys)
            for i in keys.indices {
                if i > 0 { sink.byte(UInt8(ascii: ",")) }
                sink.key(vupID: keys[i].vupID, hem: keys[i].hem)
            }
            sink.fragment(Raw.getEnd)
            count = sink.cursor - base
            complete = sink.complete
        }
        return complete ? body : nil
    }
}
