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
public struct BatchBuilder: Sendable {
    public static let maxRequests = 25
    public static let maxBytes = 15 * 1024 * 1024

    private var operations: [WriteOperation] = []
    private var index: [ItemKey: Int] = [:]
    private var bytes = 0

    public init() {}

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }

    /// Adds `operation`; returns a full batch when this one did not fit (it then starts the next).
    public mutating func add(_ operation: WriteOperation) -> [WriteOperation]? {
        let key = operation.key
        if let existing = index[key] {
            bytes += operation.requestSize - operations[existing].requestSize
            operations[existing] = operation
            return nil
        }
        var full: [WriteOperation]?
        if operations.count == Self.maxRequests || bytes + operation.requestSize > Self.maxBytes {
            full = take()
        }
        index[key] = operations.count
        operations.append(operation)
        bytes += operation.requestSize
        return full
    }

    /// The batch so far (possibly empty); the builder starts over.
    public mutating func take() -> [WriteOperation] {
        let batch = operations
        operations.removeAll(keepingCapacity: true)
        index.removeAll(keepingCapacity: true)
        bytes = 0
        return batch
    }
}

/// Request bodies for the loader's DynamoDB calls, written with JSONWriter.
public enum RequestBodies {
    public static func batchWrite(table: String, _ operations: [WriteOperation]) -> [UInt8] {
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
}
