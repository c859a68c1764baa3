import Foundation
import JSON
import TestSupport
import XCTest

final class EventsExplainTests: XCTestCase {
    static let shard = #"""
{"Records": [{"eventID": "e", "eventName": "REMOVE", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": {"SequenceNumber": "1", "ApproximateCreationDateTime": 100, "StreamViewType": "NEW_AND_OLD_IMAGES", "OldImage": {"vup_id": {"S": "UNRESOLVED#01"}, "hem": {"S": "0123456789abcdef0123456789abcdef"}, "email": {"S": "a@example.invalid"}, "domain": {"S": "example.invalid"}, "updated_at": {"S": "2026-11-25"}}}}]}
{"Records": [{"eventID": "e", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": {"SequenceNumber": "2", "ApproximateCreationDateTime": 101, "StreamViewType": "NEW_AND_OLD_IMAGES", "NewImage": {"vup_id": {"S": "V1"}, "hem": {"S": "0123456789abcdef0123456789abcdef"}, "email": {"S": "a@example.invalid"}, "domain": {"S": "example.invalid"}, "updated_at": {"S": "2026-11-25"}}}}, {"eventID": "e", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": {"SequenceNumber": "3", "ApproximateCreationDateTime": 102, "StreamViewType": "NEW_AND_OLD_IMAGES", "OldImage": {"vup_id": {"S": "V1"}, "hem": {"S": "0123456789abcdef0123456789abcdef"}, "email": {"S": "a@example.invalid"}, "domain": {"S": "example.invalid"}, "updated_at": {"S": "2026-11-25"}}, "NewImage": {"vup_id": {"S": "V1"}, "hem": {"S": "0123456789abcdef0123456789abcdef"}, "email": {"S": "b@example.invalid"}, "domain": {"S": "example.invalid"}, "updated_at": {"S": "2026-11-25"}}}}]}
"""#

    func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "explain-\(UUID().uuidString).ndjson"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testExplain_whenGivenGetRecordsBodies_printsPairedMoveAndUpdateWithoutEmails() throws {
        let file = try write(Self.shard)
        let r = try Hemstream.run(["events", "explain", file])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let types = try r.stdoutLines.map { try JSON.parse($0)["type"]?.stringValue }
        XCTAssertEqual(types, ["hem.resolved", "hem.updated"])
        XCTAssertFalse(r.stdout.contains("@example.invalid"))
    }

    func testExplain_whenRecordsAreMissing_failsWithFileAndLine() throws {
        let file = try write("{\"x\": 1}\n")
        let r = try Hemstream.run(["events", "explain", file])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertTrue(r.stderr.contains("\(file):1: missing Records"), r.stderr)
    }
}
