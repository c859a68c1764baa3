import Export
import JSON

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
    /// The sentinel partition of an unresolved HEM: `UNRESOLVED#` + its first two hex chars.
    public static func sentinel(forHem hem: String) -> String { "UNRESOLVED#" + hem.prefix(2) }

    public static func isSentinel(_ vupID: String) -> Bool { vupID.hasPrefix("UNRESOLVED#") }

    /// The item for `row`; `previousVupID` marks an item written by a move (the stream
    /// reader's detector reads it to tell a move from a new HEM).
    public static func writeItem(_ row: ExportRow, previousVupID: String? = nil, to w: inout JSONWriter) {
        w.beginObject()
        attribute("vup_id", row.vupID, &w)
        attribute("hem", row.hem, &w)
        if let v = row.email { attribute("email", v, &w) }
        if let v = row.domain { attribute("domain", v, &w) }
        if let v = row.source { attribute("source", v, &w) }
        if let v = row.lastVerified { attribute("last_verified", v, &w) }
        attribute("updated_at", row.updatedAt, &w)
        if let previousVupID { attribute("previous_vup_id", previousVupID, &w) }
        w.endObject()
    }

    public static func writeKey(_ key: ItemKey, to w: inout JSONWriter) {
        w.beginObject()
        attribute("vup_id", key.vupID, &w)
        attribute("hem", key.hem, &w)
        w.endObject()
    }

    @inline(__always) static func attribute(_ name: String, _ value: String, _ w: inout JSONWriter) {
        w.key(name)
        w.beginObject()
        w.key("S")
        w.string(value)
        w.endObject()
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
