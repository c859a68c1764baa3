import Export
import JSON
import Schemas
import XCTest

@testable import Loader

/// Pure parts of the loader: item JSON, batching and deduplication, request bodies, pacing.
final class EncodingTests: XCTestCase {
    let hem = "0f343b0931126a20f133d67c2b018a3b"

    func row(_ hem: String, vup: String? = nil, email: String? = "a\"b@example.invalid", line: Int = 2) -> ExportRow {
        ExportRow(
            hem: hem, vupID: vup ?? Sentinel.vupID(forHem: hem), email: email, domain: "example.invalid",
            source: nil, lastVerified: "2026-11-20T00:00:00Z", updatedAt: "2026-11-24T06:00:00Z", line: line)
    }

    func testItem_isDynamoDBJSON_withoutNilAttributes() throws {
        var w = JSONWriter()
        ItemEncoding.writeItem(row(hem, vup: "VUP-1"), to: &w)
        let item = try JSON.parse(w.bytes)
        XCTAssertEqual(item["vup_id"]?["S"], "VUP-1")
        XCTAssertEqual(item["hem"]?["S"], .string(hem))
        XCTAssertEqual(item["email"]?["S"], "a\"b@example.invalid")
        XCTAssertEqual(item["domain"]?["S"], "example.invalid")
        XCTAssertEqual(item["last_verified"]?["S"], "2026-11-20T00:00:00Z")
        XCTAssertEqual(item["updated_at"]?["S"], "2026-11-24T06:00:00Z")
        XCTAssertNil(item["source"])
        XCTAssertNil(item["previous_vup_id"])
        XCTAssertEqual(item.objectValue?.count, 6)
    }

    func testMovedItem_carriesPreviousVupID() throws {
        var w = JSONWriter()
        ItemEncoding.writeItem(row(hem, vup: "VUP-2"), previousVupID: "UNRESOLVED#0f", to: &w)
        XCTAssertEqual(try JSON.parse(w.bytes)["previous_vup_id"]?["S"], "UNRESOLVED#0f")
    }

    func testItemSize_countsNamesAndValues() {
        let r = ExportRow(hem: hem, vupID: "V", updatedAt: "2026-11-24T06:00:00Z", line: 2)
        XCTAssertEqual(ItemEncoding.itemSize(r), "vup_id".count + 1 + "hem".count + 32 + "updated_at".count + 20)
        XCTAssertEqual(ItemEncoding.writeUnits(forSize: 1), 1)
        XCTAssertEqual(ItemEncoding.writeUnits(forSize: 1024), 1)
        XCTAssertEqual(ItemEncoding.writeUnits(forSize: 1025), 2)
    }

    func testBatchBuilder_25PerBatch_lastWriteOfAKeyWins() {
        var builder = BatchBuilder()
        var batches: [[WriteOperation]] = []
        for i in 0..<30 {
            // Ten hems, each three times: one batch, each key once, with its last line.
            if let full = builder.add(.put(row(String(format: "%032x", i % 10), line: i + 2))) { batches.append(full) }
        }
        batches.append(builder.take())
        XCTAssertEqual(batches.map(\.count), [10])
        XCTAssertEqual(batches[0].map(\.line), Array(22...31))
        for i in 0..<26 {
            if let full = builder.add(.put(row(String(format: "%032x", i), line: i + 2))) { batches.append(full) }
        }
        batches.append(builder.take())
        XCTAssertEqual(batches.map(\.count), [10, 25, 1])
    }

    func testBatchWriteBody_hasPutsDeletesAndAsksForCapacity() throws {
        let body = RequestBodies.batchWrite(
            table: "t", [.put(row(hem)), .delete(ItemKey(vupID: "VUP-9", hem: hem), line: 3)])
        let json = try JSON.parse(body)
        XCTAssertEqual(json["ReturnConsumedCapacity"], "TOTAL")
        let requests = try XCTUnwrap(json["RequestItems"]?["t"]?.arrayValue)
        XCTAssertEqual(requests.count, 2)
        XCTAssertEqual(requests[0]["PutRequest"]?["Item"]?["hem"]?["S"], .string(hem))
        XCTAssertEqual(requests[1]["DeleteRequest"]?["Key"]?["vup_id"]?["S"], "VUP-9")
    }

    func testRawBodies_matchTheJSONWriterPath_evenWithEscapes_andFallBackWhenSlackRunsOut() throws {
        let plain: [WriteOperation] = [
            .put(row(hem, vup: "VUP-1", email: "a.b@example.invalid")),
            .put(ExportRow(hem: "ab" + hem.dropFirst(2), vupID: "UNRESOLVED#ab", updatedAt: "2026-11-24T06:00:00Z", line: 3)),
            .delete(ItemKey(vupID: "VUP-9", hem: hem), line: 4),
            .move(from: ItemKey(vupID: "UNRESOLVED#0f", hem: hem), to: row(hem, vup: "VUP-3", email: nil)),
        ]
        XCTAssertEqual(
            RequestBodies.rawBatchWrite(table: "t", plain), RequestBodies.writerBatchWrite(table: "t", plain))
        let escaped: [WriteOperation] = [.put(row(hem)), .put(row(hem, email: "tab\there@example.invalid"))]
        XCTAssertEqual(
            RequestBodies.rawBatchWrite(table: "t", escaped), RequestBodies.writerBatchWrite(table: "t", escaped))
        XCTAssertNil(RequestBodies.rawBatchWrite(table: "t", escaped, slack: 1))
        let body = RequestBodies.batchWrite(table: "t", escaped)
        XCTAssertEqual(
            try JSON.parse(body)["RequestItems"]?["t"]?.arrayValue?[0]["PutRequest"]?["Item"]?["email"]?["S"],
            "a\"b@example.invalid")

        let keys = [ItemKey(vupID: "UNRESOLVED#0f", hem: hem), ItemKey(vupID: "UNRESOLVED#ab", hem: "ab")]
        XCTAssertEqual(RequestBodies.rawBatchGet(table: "t", keys), RequestBodies.writerBatchGet(table: "t", keys))
        let quoted = [ItemKey(vupID: "V\"", hem: hem)]
        XCTAssertEqual(RequestBodies.rawBatchGet(table: "t", quoted), RequestBodies.writerBatchGet(table: "t", quoted))
        XCTAssertNil(RequestBodies.rawBatchGet(table: "t", quoted, slack: 0))
    }

    func testSentinel_isUnresolvedAndTheHemsFirstTwoCharacters() {
        for hem in [hem, "ab", "é0ff", "x"] {
            XCTAssertEqual(Sentinel.vupID(forHem: hem), "UNRESOLVED#" + hem.prefix(2))
        }
        XCTAssertTrue(Sentinel.isSentinel(Sentinel.vupID(forHem: hem)))
        XCTAssertFalse(Sentinel.isSentinel("VUP-1"))
        XCTAssertFalse(Sentinel.isSentinel("unresolved#ab"), "the prefix is case-sensitive")
    }

    func testSentinelKeys_eachHemOnce_inOrder() {
        let sorted = ["00", "0a", "ff"].map { row($0 + hem.dropFirst(2), vup: "VUP-1") }
        XCTAssertEqual(Loader.sentinelKeys(sorted[...]).map(\.hem), sorted.map(\.hem))
        let repeated = [sorted[1], sorted[0], sorted[1], sorted[2], sorted[0]]
        XCTAssertEqual(
            Loader.sentinelKeys(repeated[...]).map(\.vupID), ["UNRESOLVED#0a", "UNRESOLVED#00", "UNRESOLVED#ff"])
    }

    func testMoveBody_deletesOldKeyAndPutsNewItemInOneTransaction() throws {
        let body = RequestBodies.moves(
            table: "t", [(ItemKey(vupID: "UNRESOLVED#0f", hem: hem), row(hem, vup: "VUP-1"))])
        let items = try XCTUnwrap(JSON.parse(body)["TransactItems"]?.arrayValue)
        XCTAssertEqual(items.count, 2)
        XCTAssertEqual(items[0]["Delete"]?["Key"]?["vup_id"]?["S"], "UNRESOLVED#0f")
        XCTAssertEqual(items[1]["Put"]?["Item"]?["vup_id"]?["S"], "VUP-1")
        XCTAssertEqual(items[1]["Put"]?["Item"]?["previous_vup_id"]?["S"], "UNRESOLVED#0f")
    }

    func testCapacityBucket_chargesDebtAsWaitingTime() {
        let bucket = WriteCapacityBucket(unitsPerSecond: 100)
        XCTAssertEqual(bucket.reserve(100), 0)
        let wait = bucket.reserve(50)
        XCTAssertGreaterThan(wait, 0.4)
        XCTAssertLessThanOrEqual(wait, 0.5)
    }

    func testAdaptiveConcurrency_halvesOnThrottleOncePerCooldown_andRecoversSlowly() {
        let limit = AdaptiveConcurrency(maximum: 8, cooldown: 3600)
        limit.throttled()
        limit.throttled()
        XCTAssertEqual(limit.limit, 4)
        for _ in 0..<5 { limit.succeeded() }
        XCTAssertEqual(limit.limit, 5)
        for _ in 0..<100 { limit.succeeded() }
        XCTAssertEqual(limit.limit, 8)
    }
}
