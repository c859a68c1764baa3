import Export
import JSON
import XCTest

@testable import Loader

final class ScanPageTests: XCTestCase {
    /// The byte reader gives the same rows as the JSON tree, escapes and other types included,
    /// and keeps the other members (LastEvaluatedKey, ConsumedCapacity).
    func testScanPage_readsItemsAsTheJSONTreeDoes_andKeepsTheOtherMembers() throws {
        let text = #"""
            {"Items":[
              {"hem":{"S":"0a0b"},"vup_id":{"S":"VUP-1"},"email":{"S":"user1@example.invalid"},
               "source":{"S":"crm, \"quoted\" \u00e9"},"updated_at":{"S":"2026-11-25T10:00:00Z"},
               "count":{"N":"3"},"tags":{"L":[{"S":"x"},{"M":{"a":{"BOOL":true}}}]}},
              {"vup_id":{"S":"UNRESOLVED#0c"},"hem":{"S":"0c0d"},"previous_vup_id":{"S":"VUP-0"},"updated_at":{"S":"t"}},
              {"vup_id":{"S":"no-hem"}}
            ],"Count":3,"ScannedCount":3,
            "ConsumedCapacity":{"TableName":"t","CapacityUnits":1.5},
            "LastEvaluatedKey":{"vup_id":{"S":"UNRESOLVED#0c"},"hem":{"S":"0c0d"}}}
            """#
        let bytes = Array(text.utf8)
        let page = try XCTUnwrap(ScanPage.parse(bytes))
        let tree = try JSON.parse(bytes)
        XCTAssertEqual(page.rows, (tree["Items"]?.arrayValue ?? []).compactMap(TableScanner.row))
        XCTAssertEqual(page.rows.count, 2)
        XCTAssertEqual(page.rows[0].source, "crm, \"quoted\" é")
        XCTAssertEqual(page.members["LastEvaluatedKey"], tree["LastEvaluatedKey"])
        XCTAssertEqual(page.members["ConsumedCapacity"]?["CapacityUnits"]?.doubleValue, 1.5)
        XCTAssertNil(ScanPage.parse(Array(#"{"Items":[{"hem":{"S":"x"}"#.utf8)), "a cut-short page is not read")
    }
}
