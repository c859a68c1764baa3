import JSON
import Schemas
import XCTest
@testable import Events

final class ChangeEventSchemaTests: XCTestCase {
    static let valid: JSON = [
        "specversion": "1.0",
        "id": .string(String(repeating: "a", count: 64)),
        "source": "aws:dynamodb:us-east-1:vector_emails_operational",
        "type": "hem.resolved",
        "subject": .string(String(repeating: "b", count: 32)),
        "time": "2026-11-25T05:00:00Z",
        "datacontenttype": "application/json",
        "dataschema": "https://schemas.hemstream.dev/events/change-event.v1.json",
        "data": [
            "hem": .string(String(repeating: "b", count: 32)),
            "vup_id_before": "UNRESOLVED#bb",
            "vup_id_after": "VUP-1",
            "changes": [["field": "email", "op": "modified", "class": "pii"]],
            "updated_at": "2026-11-25",
            "positions": [["stream_arn": "arn:x", "shard_id": "shardId-1", "sequence_number": "100", "event_name": "INSERT"]],
        ],
    ]

    func testValidate_whenEventIsValid_reportsNothing() throws {
        XCTAssertEqual(try ChangeEventSchema.load().validate(Self.valid), [])
    }

    func testValidate_whenFieldsAreWrong_namesThePathsWithoutValues() throws {
        guard case .object(var e) = Self.valid, case .object(var d) = e["data"]! else { return XCTFail() }
        d["hem"] = "someone@example.invalid"
        d["vup_id_before"] = "VUP-2"
        d["extra"] = true
        d["leaked.person@example.invalid"] = "x"  // a member whose name is an address
        e["data"] = .object(d)
        e["time"] = "yesterday"
        e.removeValue(forKey: "id")
        let problems = try ChangeEventSchema.load().validate(.object(e))
        XCTAssertTrue(problems.contains("id: required"), "\(problems)")
        XCTAssertTrue(problems.contains { $0.hasPrefix("data.hem: does not match pattern ^[0-9a-f]{32}$") }, "\(problems)")
        // Undeclared members are named by count (in key order), never by their names.
        XCTAssertTrue(problems.contains("data: property not allowed (undeclared member 1; names are not echoed)"), "\(problems)")
        XCTAssertTrue(problems.contains("data: property not allowed (undeclared member 2; names are not echoed)"), "\(problems)")
        XCTAssertFalse(problems.joined().contains("extra"), "\(problems)")
        XCTAssertFalse(problems.joined().contains("leaked.person"), "\(problems)")
        XCTAssertTrue(problems.contains("time: not an RFC 3339 date-time"), "\(problems)")
        XCTAssertTrue(problems.contains { $0.hasPrefix("data.vup_id_before: does not match pattern ^UNRESOLVED") }, "\(problems)")
        XCTAssertFalse(problems.joined().contains("example.invalid"))
    }

    func testEmbeddedSchemas_equalTheFilesInSchemasDirectory() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("schemas")
        let files = FileManager.default.enumerator(atPath: dir.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") }
        XCTAssertEqual(Set(files), Set(EmbeddedSchemas.files.keys), "run tools/embed-schemas")
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            XCTAssertEqual(EmbeddedSchemas.files[f].map { $0 + "\n" } ?? "", text.hasSuffix("\n") ? text : text + "\n", "\(f): run tools/embed-schemas")
        }
    }
}

final class ChangeEventExamplesTests: XCTestCase {
    func testExamples_oneOfEachType_validateAgainstTheSchema() throws {
        let schema = try ChangeEventSchema.load()
        var types: Set<String> = []
        for (name, text) in EmbeddedSchemas.files where name.hasPrefix("events/examples/") {
            let e = try JSON.parse(text)
            XCTAssertEqual(schema.validate(e), [], name)
            XCTAssertFalse(text.contains("@"), "\(name) must hold no email")
            if let t = e["type"]?.stringValue { types.insert(t) }
        }
        XCTAssertEqual(types, ["hem.created", "hem.deleted", "hem.resolved", "hem.reassigned", "hem.unresolved", "hem.updated", "stream.gap"])
    }

    func testGapEvent_hasItsOwnDataShape_andHemEventsStillNeedAHemSubject() throws {
        let schema = try ChangeEventSchema.load()
        var gap = try JSON.parse(EmbeddedSchemas.files["events/examples/stream.gap.json"]!).objectValue!
        var created = try JSON.parse(EmbeddedSchemas.files["events/examples/hem.created.json"]!).objectValue!
        XCTAssertEqual(schema.validate(.object(gap)), [])
        let shard = gap["subject"]!
        gap["data"] = created["data"]
        XCTAssertFalse(schema.validate(.object(gap)).isEmpty, "a gap event carries gap data, not a change")
        created["subject"] = shard
        XCTAssertFalse(schema.validate(.object(created)).isEmpty, "a hem event's subject is a hem")
    }
}
