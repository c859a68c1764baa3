import AWSWire
import Foundation
import JSON
import TestSupport
import XCTest

/// A `hemstream stream --sink stdout` process: its events, polled from the file its stdout goes to.
typealias StreamProcess = BackgroundProcess

extension BackgroundProcess {
    convenience init(stream arguments: [String], environment: [String: String], standardOutput: FileHandle? = nil) throws {
        try self.init(
            Hemstream.binaryPath, ["stream", "--sink", "stdout"] + arguments, environment: environment,
            stdoutToFile: true, standardOutput: standardOutput)
    }

    var lines: [JSON] { stdoutText.split(separator: "\n").compactMap { try? JSON.parse(String($0)) } }
}

/// The stream reader against a scripted DynamoDB Streams server (what moto cannot show:
/// several shards over pages, splits, trimming, expiry, throttling) and moto for the rest
/// (DescribeTable is skipped with --stream-arn; the lease table and hem-index are moto's).
final class StreamScriptedTests: XCTestCase, @unchecked Sendable {
    static let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/vector_emails_operational/stream/2026-11-01T00:00:00.000"
    var moto: MotoServer!
    var streams: ScriptedStreamsServer!
    var env: [String: String] = [:]
    var leaseTable = ""

    override func setUpWithError() throws {
        env = try MotoServer.sharedEnvironment()
        streams = try ScriptedStreamsServer(streamArn: Self.arn, describePageSize: 2)
        env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = streams.endpoint
        leaseTable = "leases-\(UUID().uuidString.prefix(8).lowercased())"
    }

    override func tearDown() { streams?.stop() }

    func start(_ extra: [String] = [], worker: String = "w1", standardOutput: FileHandle? = nil) throws -> StreamProcess {
        try StreamProcess(
            stream: [
                "--stream-arn", Self.arn, "--lease-table", leaseTable, "--worker-id", worker, "--pair-window", "0",
                "--lease-duration", "3", "--checkpoint-interval", "0.2", "--log-level", "debug",
            ] + extra, environment: env, standardOutput: standardOutput)
    }

    static func hem(_ n: Int) -> String { String(repeating: "0", count: 56) + String(format: "%08x", n) }

    static func item(_ n: Int, vup: String = "VUP-1", domain: String) -> JSON {
        [
            "hem": ["S": .string(hem(n))], "vup_id": ["S": .string(vup)], "domain": ["S": .string(domain)],
            "email": ["S": .string("user\(n)@example.invalid")],
        ]
    }

    /// A MODIFY of item n changing its domain from `a` to `b`.
    static func modify(_ n: Int, _ a: String, _ b: String) -> JSON {
        ScriptedStreamsServer.record(
            eventName: "MODIFY", keys: ["hem": ["S": .string(hem(n))], "vup_id": ["S": "VUP-1"]],
            newImage: item(n, domain: b), oldImage: item(n, domain: a))
    }

    func waitFor(_ what: String, upTo seconds: Double = 60, _ process: StreamProcess? = nil, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            if let process, !process.process.isRunning { XCTFail("the reader ended: \(process.stderr)"); return }
            usleep(100_000)
        }
        XCTFail("timed out waiting until \(what)")
    }

    /// The domain changes of item n, in the order they were published.
    func domains(_ events: [JSON], _ n: Int) -> [String] {
        events.filter { $0["subject"]?.stringValue == Self.hem(n) }.compactMap {
            $0["data"]?["changes"]?.arrayValue?.first { $0["field"] == "domain" }?["after"]?.stringValue
        }
    }

    func assertNoEmail(_ texts: String..., file: StaticString = #filePath, line: UInt = #line) {
        for t in texts { XCTAssertFalse(t.contains("@example.invalid"), "an email left the table", file: file, line: line) }
    }

    /// Several roots over DescribeStream pages of two, a split into two children and a
    /// single-child rotation, empty pages before records, ShardFilter on and off: every event
    /// once, and each item's events in lineage order.
    func testLineage_splitsAndRotations_eachItemInOrder_withShardFilter() throws {
        try lineage(shardFilter: true)
    }

    func testLineage_splitsAndRotations_eachItemInOrder_withoutShardFilter_fallsBackToListing() throws {
        try lineage(shardFilter: false)
    }

    func lineage(shardFilter: Bool) throws {
        streams.supportsShardFilter = shardFilter
        streams.emptyPagesBeforeRecords = 2
        let id = ScriptedStreamsServer.shardID
        // Five roots; root 0 holds item 0's first change, its children the next ones.
        for r in 0..<5 { streams.addShard(id: id(r), records: [Self.modify(r, "a", "b")]) }
        streams.split(shard: id(0), into: [id(10), id(11)])
        streams.append(shard: id(10), records: [Self.modify(0, "b", "c")])
        streams.append(shard: id(11), records: [Self.modify(100, "a", "b")])
        streams.split(shard: id(10), into: [id(20)])  // a rotation: one child
        streams.append(shard: id(20), records: [Self.modify(0, "c", "d")])

        let reader = try start()
        waitFor("all eight events", reader) { reader.lines.count >= 8 }
        // Children appear after the reader started: found through the finished parent.
        streams.split(shard: id(11), into: [id(21), id(22)])
        streams.append(shard: id(21), records: [Self.modify(100, "b", "c")])
        streams.append(shard: id(22), records: [Self.modify(101, "a", "b")])
        waitFor("the grandchildren's events", reader) { reader.lines.count >= 10 }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        let events = reader.lines
        XCTAssertEqual(events.count, 10, "ShardFilter \(shardFilter): \(events.map { $0["subject"] ?? "" })")
        XCTAssertEqual(domains(events, 0), ["b", "c", "d"], "item 0 in lineage order (ShardFilter \(shardFilter))")
        XCTAssertEqual(domains(events, 100), ["b", "c"], "item 100 in lineage order")
        XCTAssertEqual(Set(events.compactMap { $0["id"]?.stringValue }).count, 10, "no event twice")
        if !shardFilter { XCTAssertGreaterThan(streams.callCount("DescribeStream"), 3, "fell back to full listings") }
        assertNoEmail(reader.stderr, events.map { $0.serialized() }.joined())
    }

    /// An expired iterator is renewed from the last record read, and throttled GetRecords back
    /// off and keep the shard: nothing lost, nothing repeated.
    func testExpiredIteratorAndThrottling_loseAndRepeatNothing() throws {
        let shard = ScriptedStreamsServer.shardID(1)
        streams.addShard(id: shard, records: (0..<5).map { Self.modify($0, "a", "b") })
        let reader = try start()
        waitFor("the first five events", reader) { reader.lines.count >= 5 }
        streams.expireAllIterators()
        streams.throttleNextGetRecords(6)
        streams.append(shard: shard, records: (5..<10).map { Self.modify($0, "a", "b") })
        waitFor("the next five events", reader) { reader.lines.count >= 10 }
        waitFor("the throttled calls seen") {
            streams.getRecordsCalls(shard: shard).contains { $0.errorCode == "ExpiredIteratorException" }
                && streams.getRecordsCalls(shard: shard).filter { $0.errorCode == "LimitExceededException" }.count == 6
        }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        let events = reader.lines
        XCTAssertEqual(events.compactMap { $0["subject"]?.stringValue }, (0..<10).map(Self.hem))
    }

    /// Records trimmed before they were read: a stream.gap event with the sequence numbers on
    /// each side and an error line naming the shard; reading goes on. With --on-gap halt: exit 4.
    func testTrimmedRecords_areAGapEvent_orExit4WithOnGapHalt() throws {
        let shard = ScriptedStreamsServer.shardID(1)
        let first = streams.addShard(id: shard, records: (0..<3).map { Self.modify($0, "a", "b") })
        var reader = try start()
        waitFor("three events", reader) { reader.lines.count >= 3 }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)

        // While no reader runs, more records arrive and the oldest unread ones are trimmed.
        let more = streams.append(shard: shard, records: (3..<8).map { Self.modify($0, "a", "b") })
        streams.trim(shard: shard, before: more[2])

        let halted = try start(["--on-gap", "halt"])
        XCTAssertEqual(halted.wait(), 4, halted.stderr)
        XCTAssertTrue(halted.stderr.contains(shard), halted.stderr)
        XCTAssertEqual(halted.lines.count, 0, "halt publishes nothing past the gap")

        reader = try start()
        waitFor("the gap and the records kept", reader) { reader.lines.count >= 4 }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        let events = reader.lines
        let gap = try XCTUnwrap(events.first)
        XCTAssertEqual(gap["type"], "stream.gap")
        XCTAssertEqual(gap["subject"]?.stringValue, shard)
        XCTAssertEqual(gap["data"]?["last_sequence_number_before"]?.stringValue, first.last)
        XCTAssertEqual(gap["data"]?["first_sequence_number_after"]?.stringValue, more[2])
        XCTAssertEqual(events.dropFirst().compactMap { $0["subject"]?.stringValue }, (5..<8).map(Self.hem))
        XCTAssertTrue(reader.stderr.contains("trimmed") && reader.stderr.contains(shard), reader.stderr)
    }

    /// `--sink stdout` on a stdout that fails (a full disk: /dev/full) while an INSERT without
    /// `previous_vup_id` settles out of the pairing window on the idle timer (no record after it
    /// settles it while a page is processed): the reader stops with exit 1 and the reason (it
    /// retried the round for ever, the event gone), and checkpoints nothing past it: a reader
    /// started afterwards publishes it.
    func testStdoutThatCannotBeWritten_stopsTheReaderWithTheReason_andTheEventIsReadAgain() throws {
        let shard = ScriptedStreamsServer.shardID(1)
        let insert = ScriptedStreamsServer.record(
            eventName: "INSERT", keys: ["hem": ["S": .string(Self.hem(0))], "vup_id": ["S": "VUP-1"]],
            newImage: Self.item(0, domain: "a.invalid"))
        streams.addShard(id: shard, records: [insert])
        let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
        let failing = try start(standardOutput: full)
        XCTAssertEqual(failing.wait(upTo: 60), 1, failing.stderr)
        XCTAssertTrue(failing.stderr.contains("cannot write events to stdout: No space left on device"), failing.stderr)

        let reader = try start()
        waitFor("the event", reader) { reader.lines.count >= 1 }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        XCTAssertEqual(reader.lines.map { $0["subject"]?.stringValue }, [Self.hem(0)])
        XCTAssertEqual(reader.lines.map { $0["type"]?.stringValue }, ["hem.created"])
        assertNoEmail(failing.stderr, reader.stderr, reader.stdoutText)
    }

    /// `--sink stdout | true`: the reader of stdout is gone before the first line; the stream
    /// reader says so and exits 1 (it died by SIGPIPE without a word).
    func testStdoutReaderThatGoesAway_stopsTheReaderWithTheReason() throws {
        streams.addShard(id: ScriptedStreamsServer.shardID(1), records: [Self.modify(0, "a", "b")])
        let r = try ChildProcess.run(
            "/bin/bash",
            [
                "-c", #""$0" "$@" | true; exit "${PIPESTATUS[0]}""#, Hemstream.binaryPath,
                "stream", "--sink", "stdout", "--stream-arn", Self.arn, "--lease-table", leaseTable, "--worker-id", "w1",
                "--pair-window", "0",
            ], environment: env, timeout: 120)
        XCTAssertEqual(r.exitCode, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot write events to stdout: Broken pipe"), r.stderr)
        assertNoEmail(r.stderr, r.stdout)
    }

    /// A shard read to its end and then trimmed from the stream loses its lease at the next
    /// listing; a shard not at SHARD_END keeps its lease whatever the stream says.
    func testFinishedShardTrimmedFromTheStream_hasItsLeaseDeleted() throws {
        let done = ScriptedStreamsServer.shardID(1), open = ScriptedStreamsServer.shardID(2)
        streams.addShard(id: done, records: [Self.modify(1, "a", "b")])
        streams.close(shard: done)
        streams.addShard(id: open, records: [Self.modify(2, "a", "b")])
        let reader = try start(["--discovery-interval", "1"])
        func leases() -> [String: String] {
            var out: [String: String] = [:]
            for l in (try? leaseItems()) ?? [] {
                if let id = l["shard_id"]?["S"]?.stringValue { out[id] = l["checkpoint"]?["S"]?.stringValue ?? "-" }
            }
            return out
        }
        waitFor("the closed shard checkpointed at its end", reader) { leases()[done] == "SHARD_END" }
        streams.removeShard(done)
        waitFor("its lease deleted", reader) { leases()[done] == nil }
        XCTAssertNotNil(leases()[open], "the open shard keeps its lease")
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        XCTAssertEqual(reader.lines.count, 2)
    }

    /// A record the detector cannot read goes to the dead-letter output with its position, keys
    /// and reason (never its images), and the shard moves on.
    func testPoisonRecord_goesToTheDeadLetters_andTheShardMovesOn() throws {
        let shard = ScriptedStreamsServer.shardID(1)
        var poison = Self.modify(1, "a", "b").objectValue!
        var d = poison["dynamodb"]!.objectValue!
        d["NewImage"] = nil
        poison["dynamodb"] = .object(d)
        streams.addShard(id: shard, records: [Self.modify(0, "a", "b"), .object(poison), Self.modify(2, "a", "b")])
        let reader = try start(["--dlq-topic", "dlq", "--log-format", "json"])
        waitFor("two events and a dead letter", reader) { reader.lines.count >= 3 }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        // --log-format json: every stderr line is one JSON object; the dead letter is logged.
        let logs = reader.stderr.split(separator: "\n").map { try? JSON.parse(String($0)) }
        XCTAssertFalse(logs.isEmpty)
        XCTAssertTrue(logs.allSatisfy { $0?["level"] != nil && $0?["message"] != nil }, reader.stderr)
        XCTAssertTrue(logs.contains { $0?["level"] == "error" && $0?["message"]?.stringValue?.contains(shard) == true }, reader.stderr)
        let lines = reader.lines
        let dead = try XCTUnwrap(lines.first { $0["error"] != nil })
        XCTAssertEqual(dead["keys"]?["hem"]?.stringValue, Self.hem(1))
        XCTAssertEqual(dead["shard_id"]?.stringValue, shard)
        XCTAssertNil(dead["NewImage"])
        XCTAssertEqual(lines.filter { $0["type"] == "hem.updated" }.count, 2)
        assertNoEmail(reader.stderr, lines.map { $0.serialized() }.joined())
    }

    /// A poison record whose key holds an address (a writer that put one where the hash belongs):
    /// its dead letter still says where the record sits, with that key withheld by name, and no
    /// address leaves in it or in the log.
    func testPoisonRecordWithAnAddressInItsKey_deadLetterWithholdsTheKey_andStillSaysWhere() throws {
        let shard = ScriptedStreamsServer.shardID(1)
        var poison = Self.modify(1, "a", "b").objectValue!
        var d = poison["dynamodb"]!.objectValue!
        d["NewImage"] = nil
        d["Keys"] = ["hem": ["S": "leaked.person@example.invalid"], "vup_id": ["S": "VUP-1"]]
        poison["dynamodb"] = .object(d)
        streams.addShard(id: shard, records: [Self.modify(0, "a", "b"), .object(poison), Self.modify(2, "a", "b")])
        let reader = try start(["--dlq-topic", "dlq"])
        waitFor("two events and a dead letter", reader) { reader.lines.count >= 3 }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        let dead = try XCTUnwrap(reader.lines.first { $0["error"] != nil }, reader.stdoutText)
        XCTAssertEqual(dead["shard_id"]?.stringValue, shard)
        XCTAssertNotNil(dead["sequence_number"]?.stringValue)
        XCTAssertEqual(dead["keys"], ["vup_id": "VUP-1"])
        XCTAssertEqual(dead["withheld"], ["hem"])
        XCTAssertFalse(reader.stderr.contains("email-shaped value: not sent"), "the guard had nothing left to stop")
        XCTAssertEqual(reader.lines.filter { $0["type"] == "hem.updated" }.count, 2)
        XCTAssertFalse(reader.stdoutText.contains("leaked.person"), reader.stdoutText)
        XCTAssertFalse(reader.stderr.contains("leaked.person"))
        assertNoEmail(reader.stderr, reader.stdoutText)
    }

    /// A public field that carries an address (bad data upstream) would put it in the event's
    /// diff: the PII guard stops that event, says where by position only, and the shard moves on.
    func testEventHoldingAnAddress_isStoppedByThePIIGuard_andNamedByPositionOnly() throws {
        let shard = ScriptedStreamsServer.shardID(1)
        streams.addShard(id: shard, records: [
            Self.modify(0, "a", "b"), Self.modify(1, "a", "leaked.person@example.invalid"), Self.modify(2, "a", "b"),
        ])
        let reader = try start()
        waitFor("the two clean events", reader) { reader.lines.count >= 2 }
        waitFor("the guard's line", reader) { reader.stderr.contains("email-shaped") }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        XCTAssertEqual(reader.lines.compactMap { $0["subject"]?.stringValue }, [Self.hem(0), Self.hem(2)])
        XCTAssertTrue(reader.stderr.contains(shard), reader.stderr)
        assertNoEmail(reader.stderr, reader.stdoutText)
    }

    /// Two replicas split six shards three and three, and a SIGTERM hands one's shards to the other.
    func testTwoReplicas_splitTheShards_andHandOverOnSigterm() throws {
        for r in 0..<6 { streams.addShard(id: ScriptedStreamsServer.shardID(r), records: [Self.modify(r, "a", "b")]) }
        func owners() -> [String: Int] {
            var n: [String: Int] = [:]
            for l in (try? leaseItems()) ?? [] { if let o = l["owner"]?["S"]?.stringValue { n[o, default: 0] += 1 } }
            return n
        }
        // One after the other, as a rolling deployment starts them: moto 5.2.1 does not make a
        // conditional write atomic against a concurrent one (two replicas starting in the same
        // instant both "took" one lease there); DynamoDB does.
        let a = try start(worker: "a")
        waitFor("a holds the six leases", a) { owners() == ["a": 6] }
        let b = try start(worker: "b")
        waitFor("both replicas hold three leases") { owners() == ["a": 3, "b": 3] }
        XCTAssertEqual(a.lines.count + b.lines.count, 6, "each record once while the leases moved")
        a.signal(SIGTERM)
        XCTAssertEqual(a.wait(), 0, a.stderr)
        waitFor("b holds all six", upTo: 10) { owners() == ["b": 6] }
        for r in 0..<6 { streams.append(shard: ScriptedStreamsServer.shardID(r), records: [Self.modify(r, "b", "c")]) }
        // a read all six before b came; the handed-over shards resume from a's checkpoints.
        waitFor("b publishes the six new records", b) { a.lines.count + b.lines.count >= 12 }
        b.signal(SIGTERM)
        XCTAssertEqual(b.wait(), 0, b.stderr)
        let ids = (a.lines + b.lines).compactMap { $0["id"]?.stringValue }
        XCTAssertEqual(ids.count, 12)
        XCTAssertEqual(Set(ids).count, 12, "a handover repeats nothing")
    }

    /// A loader move's halves on shards read by different replicas, REMOVE first for some and
    /// INSERT first for others: one transition event each, never a created or a deleted; a
    /// real delete still is `hem.deleted`.
    func testMoves_halvesOnShardsOfDifferentReplicas_inBothOrders_giveOneTransitionEach() throws {
        let table = "moves-\(UUID().uuidString.prefix(8).lowercased())"
        let created = try Hemstream.run(["table", "create", "--table", table, "--poll-interval", "0.05"], environment: env)
        XCTAssertEqual(created.exitCode, 0, created.stderr)
        let s0 = ScriptedStreamsServer.shardID(0), s1 = ScriptedStreamsServer.shardID(1)
        streams.addShard(id: s0)
        streams.addShard(id: s1)
        func owners() -> [String: String] {
            var o: [String: String] = [:]
            for l in (try? leaseItems()) ?? [] {
                if let shard = l["shard_id"]?["S"]?.stringValue, let w = l["owner"]?["S"]?.stringValue { o[shard] = w }
            }
            return o
        }
        let a = try StreamProcess(stream: ["--table", table] + commonFlags(worker: "a"), environment: env)
        waitFor("a holds both shards", a) { owners().count == 2 }
        let b = try StreamProcess(stream: ["--table", table] + commonFlags(worker: "b"), environment: env)
        waitFor("each replica holds one shard", b) { Set(owners().values) == ["a", "b"] }
        let owner = owners()

        // Moves 0-9: the table after each move's transaction (the new item, with previous_vup_id).
        func old(_ n: Int) -> String { n % 2 == 0 ? "UNRESOLVED#00" : "VUP-OLD-\(n)" }
        func new(_ n: Int) -> String { n % 3 == 0 ? "UNRESOLVED#00" : "VUP-NEW-\(n)" }
        func image(_ n: Int, _ vup: String, previous: String? = nil) -> JSON {
            var i = Self.item(n, vup: vup, domain: "d").objectValue!
            if let previous { i["previous_vup_id"] = ["S": .string(previous)] }
            return .object(i)
        }
        func keys(_ n: Int, _ vup: String) -> JSON { ["hem": ["S": .string(Self.hem(n))], "vup_id": ["S": .string(vup)]] }
        let moves = (0..<10).filter { old($0) != new($0) }
        let items = moves.map { image($0, new($0), previous: old($0)) }
        _ = try runAsync { [env] in
            let client = AWSClient(configuration: try AWSConfiguration.resolve(environment: env))
            for item in items { _ = try await client.dynamoDB("PutItem", ["TableName": .string(table), "Item": item]) }
            return true
        }
        let removes = moves.map { n in
            ScriptedStreamsServer.record(eventName: "REMOVE", keys: keys(n, old(n)), oldImage: image(n, old(n)))
        }
        let inserts = moves.map { n in
            ScriptedStreamsServer.record(eventName: "INSERT", keys: keys(n, new(n)), newImage: image(n, new(n), previous: old(n)))
        }
        let half = moves.count / 2
        // REMOVE first for the first half (on s0, INSERT on s1); INSERT first for the rest (on s1, REMOVE on s0).
        func read(_ shard: String) -> Int { streams.getRecordsCalls(shard: shard).reduce(0) { $0 + $1.recordCount } }
        streams.append(shard: s0, records: Array(removes[..<half]))
        waitFor("the first REMOVEs read") { read(s0) >= half }
        streams.append(shard: s1, records: Array(inserts[..<half]) + Array(inserts[half...]))
        waitFor("the transitions", b) { a.lines.count + b.lines.count >= moves.count }
        streams.append(shard: s0, records: Array(removes[half...]))
        // A real delete: nothing left under another vup_id.
        streams.append(shard: s0, records: [
            ScriptedStreamsServer.record(eventName: "REMOVE", keys: keys(50, "VUP-GONE"), oldImage: image(50, "VUP-GONE"))
        ])
        waitFor("the delete", a) { a.lines.count + b.lines.count >= moves.count + 1 }
        waitFor("every REMOVE read") { read(s0) >= moves.count + 1 }
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        XCTAssertEqual(a.wait(), 0, a.stderr)
        XCTAssertEqual(b.wait(), 0, b.stderr)
        XCTAssertNotEqual(owner[s0], owner[s1])

        let events = a.lines + b.lines
        var byHem: [String: [String]] = [:]
        for e in events { byHem[e["subject"]?.stringValue ?? "", default: []].append(e["type"]?.stringValue ?? "") }
        for n in moves {
            let want = old(n).hasPrefix("UNRESOLVED#") ? "hem.resolved" : new(n).hasPrefix("UNRESOLVED#") ? "hem.unresolved" : "hem.reassigned"
            XCTAssertEqual(byHem[Self.hem(n)], [want], "move \(n): \(old(n)) → \(new(n))")
        }
        XCTAssertEqual(byHem[Self.hem(50)], ["hem.deleted"])
        XCTAssertEqual(events.count, moves.count + 1)
    }

    /// REMOVEs of one hem in one page share one hem-index lookup: a hem whose two items the
    /// loader replaced (one move, one extra item deleted) costs one Query, a real delete one
    /// more; `hemstream_stream_index_lookups_total` counts them (each costs read capacity).
    func testRemovesOfOneHemInOnePage_shareOneIndexLookup_countedOnMetrics() throws {
        let table = "lookups-\(UUID().uuidString.prefix(8).lowercased())"
        let created = try Hemstream.run(["table", "create", "--table", table, "--poll-interval", "0.05"], environment: env)
        XCTAssertEqual(created.exitCode, 0, created.stderr)
        func keys(_ n: Int, _ vup: String) -> JSON { ["hem": ["S": .string(Self.hem(n))], "vup_id": ["S": .string(vup)]] }
        // The table after the load: hem 70 moved from VUP-A to VUP-C (its extra item VUP-B
        // deleted); hem 71 is gone.
        var moved = Self.item(70, vup: "VUP-C", domain: "d").objectValue!
        moved["previous_vup_id"] = ["S": "VUP-A"]
        let item = JSON.object(moved)
        _ = try runAsync { [env] in
            let client = AWSClient(configuration: try AWSConfiguration.resolve(environment: env))
            _ = try await client.dynamoDB("PutItem", ["TableName": .string(table), "Item": item])
            return true
        }
        // Older than --index-grace, so no lookup is asked twice.
        let then = Date().addingTimeInterval(-60)
        let page = [(70, "VUP-A"), (70, "VUP-B"), (71, "VUP-X")].map { n, vup in
            ScriptedStreamsServer.record(
                eventName: "REMOVE", keys: keys(n, vup), oldImage: Self.item(n, vup: vup, domain: "d"), time: then)
        }
        let shard = ScriptedStreamsServer.shardID(0)
        streams.addShard(id: shard, records: page)
        let port = LocalPorts.free()
        let reader = try StreamProcess(
            stream: ["--table", table, "--metrics-port", "\(port)", "--metrics-host", "127.0.0.1"]
                + commonFlags(worker: "w1"),
            environment: env)
        waitFor("the delete", reader) { !reader.lines.isEmpty }
        var metrics: [PrometheusText.Sample] = []
        try waitUntil("the page's records counted", timeout: 30, every: 0.1) {
            let reply = try HTTP.request("GET", port: port, path: "/metrics")
            metrics = try PrometheusText.parse(reply.body)
            return metrics.value("hemstream_stream_records_read_total") == 3
        }
        reader.signal(SIGTERM)
        XCTAssertEqual(reader.wait(), 0, reader.stderr)
        XCTAssertEqual(reader.lines.map { $0["type"]?.stringValue ?? "" }, ["hem.deleted"])
        XCTAssertEqual(reader.lines.first?["subject"]?.stringValue, Self.hem(71))
        XCTAssertEqual(metrics.value("hemstream_stream_index_lookups_total"), 2, "one Query per hem, not per REMOVE")
        XCTAssertEqual(metrics.value("hemstream_stream_moves_classified_total", ["path": "index"]), 2)
        assertNoEmail(reader.stdoutText, reader.stderr)
    }

    func commonFlags(worker: String) -> [String] {
        [
            "--stream-arn", Self.arn, "--lease-table", leaseTable, "--worker-id", worker, "--pair-window", "2",
            "--index-grace", "1", "--lease-duration", "3", "--checkpoint-interval", "0.2",
        ]
    }

    func leaseItems() throws -> [JSON] { try leaseTableItems(leaseTable, environment: env) }
}

/// The lease table's items (strongly consistent); none while the reader has not made the table.
func leaseTableItems(_ table: String, environment: [String: String]) throws -> [JSON] {
    try runAsync {
        let client = AWSClient(configuration: try AWSConfiguration.resolve(environment: environment))
        do {
            return try await client.dynamoDB("Scan", ["TableName": .string(table), "ConsistentRead": true])["Items"]?
                .arrayValue ?? []
        } catch let e as AWSError where e.code == "ResourceNotFoundException" {
            return []
        }
    }
}
