import Export
import JSON
import XCTest

@testable import Loader

final class ScanPageTests: XCTestCase {
    /// The byte reader gives the same records as rows made from the JSON tree, byte for byte:
    /// escapes (in values and in a name) decoded, missing attributes absent (updated_at ""),
    /// other types skipped, items without a key left out; the other members kept.
    func testScanPage_readsItemsAsTheJSONTreeDoes_andKeepsTheOtherMembers() throws {
        let text = #"""
            {"Items":[
              {"hem":{"S":"0a0b"},"vup_id":{"S":"VUP-1"},"em\u0061il":{"S":"user1@example.invalid"},
               "source":{"S":"crm, \"quoted\" \u00e9 \\ back"},"updated_at":{"S":"2026-11-25T10:00:00Z"},
               "domain":{"S":""},"last_verified":{"NULL":true},
               "count":{"N":"3"},"tags":{"L":[{"S":"x"},{"M":{"a":{"BOOL":true}}}]}},
              {"vup_id":{"S":"UNRESOLVED#0c"},"hem":{"S":"0c0d"},"previous_vup_id":{"S":"VUP-0"},"updated_at":{"S":"t"}},
              {"vup_id":{"S":"no-hem"}},
              {"hem":{"S":"0e0f"},"vup_id":{"S":"VUP-2"}}
            ],"Count":4,"ScannedCount":4,
            "ConsumedCapacity":{"TableName":"t","CapacityUnits":1.5},
            "LastEvaluatedKey":{"vup_id":{"S":"UNRESOLVED#0c"},"hem":{"S":"0c0d"}}}
            """#
        let bytes = Array(text.utf8)
        let page = try XCTUnwrap(ScanPage.parse(bytes))
        let tree = try JSON.parse(bytes)
        let rows = (tree["Items"]?.arrayValue ?? []).compactMap(TableScanner.row)
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(rows[0].source, "crm, \"quoted\" é \\ back")
        XCTAssertNotNil(rows[0].email)
        var expected = SortRecordBuffer()
        for row in rows { expected.append(.row(row), part: 0) }
        XCTAssertEqual(page.records.count, 3)
        XCTAssertEqual(page.records.bytes, expected.bytes)
        XCTAssertEqual(try Self.decoded(page.records), rows)
        XCTAssertEqual(page.members["LastEvaluatedKey"], tree["LastEvaluatedKey"])
        XCTAssertEqual(page.members["ConsumedCapacity"]?["CapacityUnits"]?.doubleValue, 1.5)
        XCTAssertNil(ScanPage.parse(Array(#"{"Items":[{"hem":{"S":"x"}"#.utf8)), "a cut-short page is not read")
    }

    /// A page's records through the sort, back as rows (in hem order).
    static func decoded(_ records: SortRecordBuffer) throws -> [ExportRow] {
        let sorter = ExternalSorter(memoryLimit: 64 * 1024)
        try sorter.add(records)
        let sorted = try sorter.finish()
        var rows: [ExportRow] = []
        while let item = try sorted.nextItem(partNames: ["table"]) {
            guard case .keyed(_, .row(let row), _) = item else { continue }
            rows.append(row)
        }
        return rows
    }
}
