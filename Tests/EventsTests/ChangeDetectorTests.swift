import Foundation
import JSON
import XCTest
@testable import Events

final class ChangeDetectorTests: XCTestCase {
    static let hem = "0123456789abcdef0123456789abcdef"
    static let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/vector_emails_operational/stream/2026"

    static func item(_ vup: String, email: String = "a@example.invalid", domain: String = "example.invalid", extra: [String: String] = [:]) -> JSON {
        var m: [String: JSON] = ["vup_id": ["S": .string(vup)], "hem": ["S": .string(hem)], "email": ["S": .string(email)],
                                 "domain": ["S": .string(domain)], "updated_at": ["S": "2026-11-25"]]
        for (k, v) in extra { m[k] = ["S": .string(v)] }
        return .object(m)
    }
    static func record(_ name: String, seq: Int, time: Int, old: JSON? = nil, new: JSON? = nil) -> JSON {
        var d: [String: JSON] = ["SequenceNumber": .string(String(seq)), "ApproximateCreationDateTime": .int(time), "StreamViewType": "NEW_AND_OLD_IMAGES"]
        if let old { d["OldImage"] = old }
        if let new { d["NewImage"] = new }
        return ["eventID": "e", "eventName": .string(name), "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": .object(d)]
    }

    func run(_ input: [(JSON, String)], key: [UInt8]? = nil, flush: Bool = true) throws -> ([ChangeEvent], ChangeDetector) {
        var det = ChangeDetector(region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load(), window: 30, piiKey: key)
        var out: [ChangeEvent] = []
        for (r, shard) in input { out += try det.ingest(r, shardID: shard, streamARN: Self.arn) }
        if flush { out += det.flush() }
        let schema = try ChangeEventSchema.load()
        for e in out {
            XCTAssertEqual(schema.validate(e.json), [], e.type)
            XCTAssertFalse(String(decoding: e.encoded(), as: UTF8.self).contains("@example.invalid"), "PII leaked in \(e.type)")
        }
        return (out, det)
    }

    func testDetect_eachTypeFromStreamRecords() throws {
        let u = "UNRESOLVED#01"
        let cases: [(String, [(JSON, String)], [String])] = [
            ("insert", [(Self.record("INSERT", seq: 1, time: 100, new: Self.item("V1")), "s1")], ["hem.created"]),
            ("remove", [(Self.record("REMOVE", seq: 1, time: 100, old: Self.item("V1")), "s1")], ["hem.deleted"]),
            ("resolve remove first", [(Self.record("REMOVE", seq: 1, time: 100, old: Self.item(u)), "s1"), (Self.record("INSERT", seq: 2, time: 101, new: Self.item("V1")), "s1")], ["hem.resolved"]),
            ("resolve insert first", [(Self.record("INSERT", seq: 1, time: 100, new: Self.item("V1")), "s1"), (Self.record("REMOVE", seq: 2, time: 101, old: Self.item(u)), "s1")], ["hem.resolved"]),
            ("reassign across shards", [(Self.record("INSERT", seq: 5, time: 100, new: Self.item("V2", extra: ["previous_vup_id": "V1"])), "s2"), (Self.record("REMOVE", seq: 9, time: 105, old: Self.item("V1")), "s1")], ["hem.reassigned"]),
            ("unresolve", [(Self.record("REMOVE", seq: 1, time: 100, old: Self.item("V1")), "s1"), (Self.record("INSERT", seq: 2, time: 100, new: Self.item(u)), "s1")], ["hem.unresolved"]),
            ("update", [(Self.record("MODIFY", seq: 1, time: 100, old: Self.item("V1"), new: Self.item("V1", domain: "other.invalid")), "s1")], ["hem.updated"]),
            ("no-op modify with bookkeeping", [(Self.record("MODIFY", seq: 1, time: 100, old: Self.item("V1"), new: Self.item("V1", extra: ["load_id": "x"])), "s1")], []),
            ("created then deleted within the window", [(Self.record("INSERT", seq: 1, time: 100, new: Self.item("V1")), "s1"), (Self.record("REMOVE", seq: 2, time: 101, old: Self.item("V1")), "s1")], ["hem.created", "hem.deleted"]),
            ("created, then resolved by the loader within the window", [(Self.record("INSERT", seq: 1, time: 100, new: Self.item(u)), "s1"), (Self.record("REMOVE", seq: 2, time: 101, old: Self.item(u)), "s1"), (Self.record("INSERT", seq: 3, time: 101, new: Self.item("V1", extra: ["previous_vup_id": u])), "s1")], ["hem.created", "hem.resolved"]),
            ("insert names another previous vup than the remove", [(Self.record("REMOVE", seq: 1, time: 100, old: Self.item("V7")), "s1"), (Self.record("INSERT", seq: 2, time: 101, new: Self.item("V2", extra: ["previous_vup_id": "V1"])), "s2")], ["hem.deleted", "hem.reassigned"]),
            ("partner too late", [(Self.record("REMOVE", seq: 1, time: 100, old: Self.item("V1")), "s1"), (Self.record("INSERT", seq: 2, time: 200, new: Self.item("V2")), "s1")], ["hem.deleted", "hem.created"]),
        ]
        for (name, input, types) in cases {
            XCTAssertEqual(try run(input).0.map(\.type), types, name)
        }
    }

    func testMove_idDoesNotDependOnArrivalOrder() throws {
        let r = Self.record("REMOVE", seq: 1, time: 100, old: Self.item("V1")), i = Self.record("INSERT", seq: 7, time: 101, new: Self.item("V2"))
        let a = try run([(r, "s1"), (i, "s2")]).0, b = try run([(i, "s2"), (r, "s1")]).0
        XCTAssertEqual(a.map(\.id), b.map(\.id))
        XCTAssertEqual(a.first?.json["data"]?["positions"]?.arrayValue?.count, 2)
    }

    func testLoaderMoveInsert_aloneIsTheTransition_atOnce() throws {
        let i = Self.record("INSERT", seq: 3, time: 100, new: Self.item("V2", extra: ["previous_vup_id": "V1"]))
        var det = ChangeDetector(region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load())
        let outcome = try det.ingestTracked(i, shardID: "s1", streamARN: Self.arn)
        XCTAssertEqual(outcome.events.map(\.type), ["hem.reassigned"])
        XCTAssertFalse(outcome.held, "a loader move's INSERT never waits for its REMOVE")
        XCTAssertNil(outcome.events.first?.json["data"]?["partner_missing"])
        XCTAssertEqual(det.pendingCount, 0)
    }

    func testLoaderMove_oneEventWithTheSameId_whicheverHalfComesFirst_andTheRemoveIsDropped() throws {
        let r = Self.record("REMOVE", seq: 1, time: 100, old: Self.item("UNRESOLVED#01"))
        let i = Self.record("INSERT", seq: 7, time: 100, new: Self.item("V2", extra: ["previous_vup_id": "UNRESOLVED#01"]))
        let (a, detA) = try run([(r, "s1"), (i, "s2")])
        let (b, detB) = try run([(i, "s2"), (r, "s1")])
        XCTAssertEqual(a.map(\.type), ["hem.resolved"])
        XCTAssertEqual(b.map(\.type), ["hem.resolved"])
        XCTAssertEqual(a.map(\.id), b.map(\.id))
        XCTAssertEqual(detA.departedHalvesDropped, 1)
        XCTAssertEqual(detB.departedHalvesDropped, 1)
        XCTAssertEqual(a.first?.json["data"]?["positions"]?[0]?["shard_id"], "s2", "the id comes from the INSERT alone")
    }

    func testHeldRemove_isReleasedWhenItsLoaderInsertArrives() throws {
        var det = ChangeDetector(region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load())
        let r = Self.record("REMOVE", seq: 1, time: 100, old: Self.item("V1"))
        XCTAssertTrue(try det.ingestTracked(r, shardID: "s1", streamARN: Self.arn).held)
        XCTAssertEqual(det.drainReleased(), [])
        let i = Self.record("INSERT", seq: 2, time: 101, new: Self.item("V2", extra: ["previous_vup_id": "V1"]))
        _ = try det.ingestTracked(i, shardID: "s2", streamARN: Self.arn)
        XCTAssertEqual(det.drainReleased().map(\.sequenceNumber), ["1"])
    }

    func testIdleSettling_countsTheWindowFromWhenAHalfWasRead_notFromItsOldRecordTime() throws {
        var det = ChangeDetector(region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load())
        // A REMOVE from hours ago (replayed history), then its INSERT a moment later on another page.
        let r = Self.record("REMOVE", seq: 1, time: 1_000, old: Self.item("V1"))
        _ = try det.ingest(r, shardID: "s1", streamARN: Self.arn)
        XCTAssertEqual(det.settleHeld(readBefore: Date().addingTimeInterval(-30)).count, 0, "read just now: it waits")
        let i = Self.record("INSERT", seq: 2, time: 1_000, new: Self.item("V2"))
        XCTAssertEqual(try det.ingest(i, shardID: "s1", streamARN: Self.arn).map(\.type), ["hem.reassigned"])
        let lone = Self.record("REMOVE", seq: 3, time: 1_000, old: Self.item("V9"))
        _ = try det.ingest(lone, shardID: "s1", streamARN: Self.arn)
        XCTAssertEqual(det.settleHeld(readBefore: Date().addingTimeInterval(1)).map(\.type), ["hem.deleted"], "waited: settles")
    }

    func testPendingHalves_areBounded_oldestSettleFirst() throws {
        var det = ChangeDetector(
            region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load(), maxPending: 100)
        var created = 0
        for n in 0..<1_000 {
            var item = Self.item("V\(n)").objectValue!
            item["hem"] = ["S": .string(String(format: "%032x", n))]
            created += try det.ingest(Self.record("INSERT", seq: n + 1, time: 100, new: .object(item)), shardID: "s1", streamARN: Self.arn).count
        }
        XCTAssertEqual(det.pendingCount, 100)
        XCTAssertEqual(created, 900)
        XCTAssertEqual(det.drainReleased().count, 900)
        XCTAssertEqual(det.flush().count, 100)
    }

    /// A reader on an idle stream settles by wall clock only (record time stops with the records):
    /// what the detector holds must drain then, whatever number of distinct hems went through.
    func testHeldState_drainsOnIdleSettling_andDoesNotGrowWithDistinctHems() throws {
        var det = ChangeDetector(region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load())
        func item(_ hem: Int, _ vup: String, previous: String? = nil) -> JSON {
            var item = Self.item(vup, extra: previous.map { ["previous_vup_id": $0] } ?? [:]).objectValue!
            item["hem"] = ["S": .string(String(format: "%032x", hem))]
            return .object(item)
        }
        var seq = 0
        func feed(_ name: String, old: JSON? = nil, new: JSON? = nil) throws -> [ChangeEvent] {
            seq += 1
            // One record-time second for everything: record time never passes the window.
            return try det.ingest(Self.record(name, seq: seq, time: 100, old: old, new: new), shardID: "s1", streamARN: Self.arn)
        }
        for round in 0..<5 {
            var events: [ChangeEvent] = []
            for k in 0..<1_000 {
                let h = round * 10_000 + k * 4
                // A loader move whose REMOVE never comes, a created hem, a move of another writer
                // (REMOVE then INSERT, paired in memory), a loader move whose REMOVE comes after it.
                events += try feed("INSERT", new: item(h, "V2", previous: "V1"))
                events += try feed("INSERT", new: item(h + 1, "V1"))
                events += try feed("REMOVE", old: item(h + 2, "V1"))
                events += try feed("INSERT", new: item(h + 2, "V2"))
                events += try feed("INSERT", new: item(h + 3, "V2", previous: "V1"))
                events += try feed("REMOVE", old: item(h + 3, "V1"))
            }
            XCTAssertGreaterThan(det.heldStateCount, 0, "round \(round): the created hems wait in the window")
            events += det.settleHeld(readBefore: Date().addingTimeInterval(1))
            XCTAssertEqual(events.count, 4_000, "round \(round): one event per hem")
            XCTAssertEqual(det.heldStateCount, 0, "round \(round): nothing held once everything settled")
        }
        XCTAssertEqual(det.flush().count, 0)
    }

    func testModifyOfEmailAlone_saysModifiedWithoutValue_andHashesOnlyWithKey() throws {
        let m = Self.record("MODIFY", seq: 1, time: 100, old: Self.item("V1", email: "a@example.invalid"), new: Self.item("V1", email: "b@example.invalid"))
        let plain = try run([(m, "s1")]).0
        XCTAssertEqual(plain.first?.json["data"]?["changes"], [["field": "email", "op": "modified", "class": "pii"]])
        let keyed = try run([(m, "s1")], key: Array("k".utf8)).0
        let change = keyed.first?.json["data"]?["changes"]?[0]
        // HMAC-SHA256 with the key over the attribute's wire JSON, as the README documents;
        // expected values from Python's hmac: hmac.new(b"k", b'{"S":"a@example.invalid"}', sha256).
        XCTAssertEqual(change?["before_hash"], "36de89722480183afb5f424e89339197b109b405819e069daf5f6dfc2ca8797b")
        XCTAssertEqual(change?["after_hash"], "1a387aebc8d4823609c26402964c58c3d4b5c9b927ac7d8d259821993d061141")
    }
}

final class EventTimestampTests: XCTestCase {
    func testUTCTimestamp_matchesFoundationAcrossLeapYearsAndEpochEdges() {
        let fmt = ISO8601DateFormatter()
        fmt.timeZone = TimeZone(identifier: "UTC")
        for t in [0.0, 59, 86_399, 86_400, 951_782_400, 951_868_799.9, 1_709_164_800, 1_764_442_800, 4_102_444_799, -1] {
            XCTAssertEqual(ChangeDetector.utcTimestamp(t), fmt.string(from: Date(timeIntervalSince1970: t.rounded(.down))), "\(t)")
        }
    }
}
