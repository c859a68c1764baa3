import Foundation
import JSON
import XCTest

@testable import Events

/// The GetRecords byte reader and the byte-level event writer: whatever path a page takes
/// (tape, or the JSON tree for what the tape leaves alone), the same events come out, and each
/// event's bytes are its canonical JSON (what the tree-built events were).
final class StreamRecordTests: XCTestCase {
    typealias T = ChangeDetectorTests

    /// A page in wire form: a loader move, a MODIFY of public fields (one a number, one a map),
    /// a delete, a plain INSERT, and a record missing its images.
    static func page(domain: String = "example.invalid") -> JSON {
        var modOld = T.item("V1", domain: domain).objectValue!
        var modNew = T.item("V1", domain: "other.invalid").objectValue!
        modOld["last_verified"] = ["N": "3"]
        modNew["last_verified"] = ["N": "4"]
        modNew["source"] = ["M": ["b": ["S": "2"], "a": ["BOOL": true]]]
        var bad = T.record("MODIFY", seq: 6, time: 103).objectValue!
        var d = bad["dynamodb"]!.objectValue!
        d["Keys"] = ["hem": ["S": .string(T.hem)], "vup_id": ["S": "V1"]]
        bad["dynamodb"] = .object(d)
        let records: [JSON] = [
            T.record("REMOVE", seq: 1, time: 100, old: T.item("V0")),
            T.record("INSERT", seq: 2, time: 100, new: T.item("V1", extra: ["previous_vup_id": "V0"])),
            T.record("MODIFY", seq: 3, time: 101, old: .object(modOld), new: .object(modNew)),
            T.record("REMOVE", seq: 4, time: 102, old: T.item("V1")),
            T.record("INSERT", seq: 5, time: 102, new: T.item("UNRESOLVED#01")),
            .object(bad),
        ]
        return ["Records": .array(records), "NextShardIterator": "it-2"]
    }

    /// Events (or the error) for each record, through a fresh detector, flushed at the end.
    func events(_ records: [StreamRecord], key: [UInt8]? = nil) throws -> [String] {
        var det = ChangeDetector(
            region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load(), piiKey: key
        )
        var out: [String] = []
        for r in records {
            do {
                out += try det.ingestTracked(r, shardID: "s1", streamARN: T.arn).events.map {
                    String(decoding: $0.bytes, as: UTF8.self)
                }
            } catch {
                out.append("error: \(error)")
            }
        }
        return out + det.flush().map { String(decoding: $0.bytes, as: UTF8.self) }
    }

    func testPageBytes_giveTheSameEventsAsItsJSON_onTheTapeAndOnTheTreePath() throws {
        for key in [nil, Array("k".utf8)] {
            // The tape takes a plain page; an escaped or non-ASCII string sends a page to the tree.
            for domain in ["example.invalid", #"quo\"ted.invalid"#, "exämple.invalid"] {
                let page = Self.page(domain: domain)
                let read = try StreamRecord.readPage(page.serializedBytes())
                XCTAssertEqual(read.nextIterator, "it-2")
                let records = try XCTUnwrap(read.records)
                XCTAssertEqual(records.map(\.sequenceNumber), ["1", "2", "3", "4", "5", "6"])
                let fromBytes = try events(records, key: key)
                let fromTree = try events(page["Records"]!.arrayValue!.map(StreamRecord.init), key: key)
                XCTAssertEqual(fromBytes, fromTree, domain)
                XCTAssertEqual(
                    fromBytes.filter { $0.hasPrefix("error:") }, ["error: MODIFY record missing OldImage or NewImage"])
                XCTAssertEqual(
                    records.last?.keyHem, T.hem, "a record it cannot read keeps its keys for the dead letter")
                XCTAssertFalse(fromBytes.joined().contains("@example.invalid"))
            }
        }
    }

    func testAPageWithSpaces_givesTheSameEventsAsCompactOne() throws {
        // Values are used straight from the body only where their bytes are canonical already;
        // a body with spaces in every value takes the copying path, with the same events.
        let compact = String(decoding: Self.page().serializedBytes(), as: UTF8.self)
        let spaced = compact.replacingOccurrences(of: "\":", with: "\": ").replacingOccurrences(of: "{\"", with: "{ \"")
        XCTAssertNotEqual(spaced, compact)
        let a = try XCTUnwrap(StreamRecord.readPage(Array(compact.utf8)).records)
        let b = try XCTUnwrap(StreamRecord.readPage(Array(spaced.utf8)).records)
        XCTAssertEqual(try events(a, key: Array("k".utf8)), try events(b, key: Array("k".utf8)))
    }

    func testAHeldHalf_doesNotKeepItsPage() throws {
        // An INSERT without previous_vup_id waits in the pairing window; what the detector holds
        // is a copy of its image, not a view into the page (which would keep the page's whole
        // body alive for as long as one of its records waits).
        let page: JSON = ["Records": [T.record("INSERT", seq: 1, time: 100, new: T.item("V1"))]]
        let records = try XCTUnwrap(StreamRecord.readPage(page.serializedBytes()).records)
        XCTAssertEqual(records[0].newImage?.shared, true, "read from the page without a copy")
        var det = ChangeDetector(region: "us-east-1", table: "t", fields: try FieldClassification.load())
        XCTAssertTrue(try det.ingestTracked(records[0], shardID: "s1", streamARN: T.arn).held)
        let held = try XCTUnwrap(det.pending[T.hem])
        XCTAssertEqual(held.image.shared, false)
        let attributeBytes = (0..<held.image.count).reduce(0) {
            $0 + held.image.name(at: $1).count + held.image.valueBytes(at: $1).count
        }
        XCTAssertEqual(held.image.bytes.count, attributeBytes, "its own bytes are its attributes' only")
        XCTAssertEqual(det.flush().map(\.type), ["hem.created"])
    }

    func testEventBytes_areTheirCanonicalJSON_andValidAgainstTheSchema() throws {
        let schema = try ChangeEventSchema.load()
        let read = try StreamRecord.readPage(Self.page(domain: "a\"b\\c\u{1}é").serializedBytes())
        let all = try events(try XCTUnwrap(read.records), key: Array("k".utf8)).filter { !$0.hasPrefix("error:") }
        XCTAssertEqual(all.count, 3)
        for text in all {
            let json = try JSON.parse(text)
            XCTAssertEqual(json.serialized(), text, "keys sorted, compact, escaped as the JSON writer does")
            XCTAssertEqual(schema.validate(json), [], text)
        }
        let modify = try JSON.parse(all.first { $0.contains("hem.updated") }!)
        let changes = modify["data"]?["changes"]?.arrayValue ?? []
        XCTAssertEqual(changes.map { $0["field"] }, ["domain", "last_verified", "source"])
        XCTAssertEqual(changes[1]["after"], #"{"N":"4"}"#, "a non-string public value is its JSON text")
        XCTAssertEqual(changes[2]["after"], #"{"M":{"a":{"BOOL":true},"b":{"S":"2"}}}"#)
    }

    func testABodyThatIsNotJSON_isAnError() {
        XCTAssertThrowsError(try StreamRecord.readPage(Array(#"{"Records":[{"eventName":"INSERT""#.utf8)))
        XCTAssertNil(try StreamRecord.readPage([]).records, "no Records array")
        XCTAssertEqual(try StreamRecord.readPage(Array(#"{"Records":[]}"#.utf8)).records?.count, 0)
    }
}
