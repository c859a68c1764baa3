import XCTest
@testable import JSON

final class JSONTests: XCTestCase {
    func testParse_thenSerialize_roundTripsEveryKind() throws {
        let text = #"{"a":[1,-2.5e3,true,false,null],"b":{"c":"x\"y\\z\n\u00e9\ud83d\ude00"},"n":12345678901234567890}"#
        let value = try JSON.parse(text)
        XCTAssertEqual(value["a"]?[1], .number("-2.5e3"))
        XCTAssertEqual(value["b"]?["c"]?.stringValue, "x\"y\\z\né😀")
        XCTAssertEqual(value["n"], .number("12345678901234567890"), "big integers keep their digits")
        XCTAssertEqual(try JSON.parse(value.serialized()), value)
    }

    func testSerialize_sortsKeysAndEscapesControlCharacters() {
        let value: JSON = ["b": 1, "a": .string("tab\there\u{01}")]
        XCTAssertEqual(value.serialized(), #"{"a":"tab\there\u0001","b":1}"#)
    }

    /// Every character that needs an escape, at every offset of a run (the writer checks eight
    /// bytes at a time), comes back from the parser as it went in.
    func testAppendQuoted_escapesAtEveryOffset_andParsesBack() throws {
        let specials: [String] = (0..<0x20).map { String(UnicodeScalar(UInt8($0))) } + ["\"", "\\", "é", "~", "\u{7F}"]
        for special in specials {
            for offset in 0..<20 {
                let text = String(repeating: "a", count: offset) + special + String(repeating: "b", count: 19 - offset)
                var w = JSONWriter()
                var t = text
                t.withUTF8 { w.appendQuoted(utf8: $0) }
                XCTAssertEqual(try JSON.parse(w.bytes).stringValue, text, "\(Array(special.utf8)) at \(offset)")
            }
        }
    }

    func testParse_rejectsMalformedInputWithOffset() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "01", "\"\\x\"", "1 2", "\"\u{01}\""] {
            XCTAssertThrowsError(try JSON.parse(bad), bad)
        }
        do {
            _ = try JSON.parse("[1, 2, x]")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.offset, 7)
        }
    }

    func testWriter_streamingCallsInsertCommas() {
        var w = JSONWriter()
        w.beginObject()
        w.key("items")
        w.beginArray()
        w.string("a")
        w.int(2)
        w.beginObject()
        w.endObject()
        w.endArray()
        w.key("ok")
        w.bool(true)
        w.endObject()
        XCTAssertEqual(w.string, #"{"items":["a",2,{}],"ok":true}"#)
    }
}
