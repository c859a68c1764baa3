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

    /// Started with stdout closed (`>&-`), a mode that writes events there refuses in one line
    /// instead of writing them into whatever the process opens first (an epoll, a socket).
    func testExplainAndStreamToStdout_withStdoutClosed_refuseInOneLine() throws {
        let file = try write(Self.shard)
        for (arguments, name) in [
            (["events", "explain", file], "events explain"), (["stream", "--table", "t", "--sink", "stdout"], "stream"),
        ] {
            let r = try ChildProcess.run(
                "/bin/sh", ["-c", #"exec "$0" "$@" >&-"#, Hemstream.binaryPath] + arguments,
                environment: ["AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"])
            XCTAssertEqual(r.exitCode, 1, r.stderr)
            XCTAssertEqual(
                r.stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty },
                [
                    "hemstream \(name): standard output is closed: "
                        + (name == "stream" ? "--sink stdout's events" : "the events")
                        + " would be written nowhere (give the process a stdout)"
                ])
        }
    }

    /// The email entry of the hem.updated event's diff.
    func emailChange(_ r: ProcessResult) throws -> JSON? {
        let updated = try r.stdoutLines.map { try JSON.parse($0) }.first { $0["type"] == "hem.updated" }
        return updated?["data"]?["changes"]?.arrayValue?.first { $0["field"] == "email" }
    }

    func testExplain_withPIIKey_hashesEmailWithTheKeyAndNeverPrintsIt() throws {
        let file = try write(Self.shard)
        let keyFile = try TemporaryFile(name: "pii.key", contents: Data("k1-secret".utf8))
        let withFile = try Hemstream.run(["events", "explain", "--pii-key-file", keyFile.path, file])
        XCTAssertEqual(withFile.exitCode, 0, withFile.stderr)
        let change = try XCTUnwrap(try emailChange(withFile))
        let before = try XCTUnwrap(change["before_hash"]?.stringValue)
        let after = try XCTUnwrap(change["after_hash"]?.stringValue)
        // Hex HMAC-SHA256 with the key over the attribute's wire JSON, as the README documents;
        // expected from Python: hmac.new(b"k1-secret", b'{"S":"a@example.invalid"}', sha256).hexdigest().
        XCTAssertEqual(before, "2bf3c2cac570bf71b485740916d0ca9bb5fb56930cc89fb3f046bc81ea95571e")
        XCTAssertEqual(after, "82cfe2eb9888269d5e6184316946decf39d008500b93b8547ab4c987205a9d83")
        XCTAssertFalse(withFile.stdout.contains("@example.invalid"))

        let withEnv = try Hemstream.run(["events", "explain", file], environment: ["HEMSTREAM_PII_KEY": "k1-secret"])
        XCTAssertEqual(try emailChange(withEnv)?["before_hash"]?.stringValue, before, "the env key is the same key")
        let otherKey = try Hemstream.run(["events", "explain", file], environment: ["HEMSTREAM_PII_KEY": "k2"])
        XCTAssertNotEqual(try emailChange(otherKey)?["before_hash"]?.stringValue, before, "hashes depend on the key")

        let noKey = try Hemstream.run(["events", "explain", file])
        XCTAssertEqual(try emailChange(noKey), ["field": "email", "op": "modified", "class": "pii"])
    }
}
