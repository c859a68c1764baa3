import AWSWire
import JSON
import XCTest

final class AttributeValueTests: XCTestCase {
    let all: [String: AttributeValue] = [
        "s": .s("héllo \"quoted\""),
        "n": .n("-12345678901234567890.123456789"),
        "b": .b([0, 1, 2, 254, 255]),
        "bool": .bool(true),
        "null": .null,
        "m": .m(["inner": .s("x"), "deep": .m(["n": .n("1")])]),
        "l": .l([.s("a"), .n("2"), .bool(false), .null]),
        "ss": .ss(["a", "b"]),
        "ns": .ns(["1", "2.5"]),
        "bs": .bs([[1], [2, 3]]),
    ]

    func testAttributeValue_allTenTypes_roundTripThroughJSONValue() throws {
        for (name, value) in all {
            let decoded = try AttributeValue(json: value.json)
            XCTAssertEqual(decoded, value, name)
        }
    }

    func testAttributeValue_allTenTypes_roundTripThroughWriterBytes() throws {
        for (name, value) in all {
            var writer = JSONWriter()
            value.write(to: &writer)
            let decoded = try AttributeValue(json: JSON.parse(writer.bytes))
            XCTAssertEqual(decoded, value, name)
        }
    }

    func testItem_roundTripsAndWriterMatchesJSONValue() throws {
        var writer = JSONWriter()
        all.write(to: &writer)
        let parsed = try JSON.parse(writer.bytes)
        XCTAssertEqual(parsed, all.itemJSON)
        XCTAssertEqual(try Item(itemJSON: parsed), all)
    }

    func testAttributeValue_wireFormat_matchesDynamoDB() throws {
        XCTAssertEqual(AttributeValue.b(Array("hi".utf8)).json, ["B": "aGk="])
        XCTAssertEqual(AttributeValue.n("1.5").json, ["N": "1.5"])
        XCTAssertEqual(AttributeValue.null.json, ["NULL": true])
        XCTAssertEqual(try AttributeValue(json: ["SS": ["x"]]), .ss(["x"]))
    }

    func testAttributeValue_invalidShapes_throwWithoutQuotingValues() {
        for bad: JSON in [["S": 1], ["B": "not base64!!"], ["X": "secret@example.invalid"], ["S": "a", "N": "1"], "plain"] {
            XCTAssertThrowsError(try AttributeValue(json: bad)) { error in
                XCTAssertFalse("\(error)".contains("secret@example.invalid"))
            }
        }
    }
}
