import AWSWire
import Foundation
import JSON
import TestSupport
import XCTest

/// `hemstream stream`, the real binary, against moto_server (table, stream, lease table) and
/// `hemstream kafka-mock` in a process of its own, read back with kcat.
final class StreamCommandTests: XCTestCase, @unchecked Sendable {  // XCTest runs one method at a time
    var moto: MotoServer!
    var env: [String: String] = [:]
    var kafka: KafkaMockProcess!
    var dir: TemporaryDirectory!
    let table = "vector_emails_operational"
    let topic = "hem-changes"

    override func setUpWithError() throws {
        // A moto of this test's own: the day-2 load's moves are TransactWriteItems, which moto
        // 5.2.1 runs by deep-copying every table it holds, stream records included.
        moto = try MotoServer()
        env = moto.awsEnvironment()
        dir = try TemporaryDirectory()
        kafka = try KafkaMockProcess(["--topic", "\(topic):3", "--topic", "hem-dlq:1"])
        let created = try Hemstream.run(["table", "create", "--table", table, "--poll-interval", "0.05"], environment: env)
        XCTAssertEqual(created.exitCode, 0, created.stderr)
    }

    override func tearDown() {
        kafka?.child.stop()
        moto?.stop()
    }

    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func genExport(rows: Int) throws -> JSON {
        let out = dir.file("export").path
        let r = try ChildProcess.run(
            "/usr/bin/env", ["python3", Self.repoRoot.appendingPathComponent("tools/gen-export").path, "--rows", "\(rows)", "--out", out, "--seed", "3"],
            timeout: 60)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        return try JSON.parse(String(contentsOfFile: out + "/expected-changes.json", encoding: .utf8))
    }

    func startStream(_ extra: [String] = [], worker: String = "w1") throws -> BackgroundProcess {
        try BackgroundProcess(
            Hemstream.binaryPath,
            [
                "stream", "--table", table, "--brokers", kafka.brokers, "--topic", topic, "--dlq-topic", "hem-dlq",
                "--pair-window", "2", "--index-grace", "1", "--lease-duration", "4", "--checkpoint-interval", "0.2",
                "--worker-id", worker,
            ] + extra, environment: env)
    }

    /// The topic's events as JSON, read by kcat in its own process.
    func events() throws -> [JSON] {
        try kafka.consume(topic, format: "%s\n").filter { !$0.isEmpty }.map { try JSON.parse($0) }
    }

    /// Waits (bounded) until the topic holds at least `count` events.
    func waitForEvents(_ count: Int, upTo seconds: Double = 120, while process: BackgroundProcess) throws -> [JSON] {
        let deadline = Date().addingTimeInterval(seconds)
        var got: [JSON] = []
        while Date() < deadline {
            got = try events()
            if got.count >= count { return got }
            XCTAssertTrue(process.process.isRunning, "the stream reader ended early: \(process.stderr)")
            if !process.process.isRunning { break }
            usleep(300_000)
        }
        XCTFail("the topic held \(got.count) events, waited for \(count)")
        return got
    }

    func leases() throws -> [Lease] {
        let client = AWSClient(configuration: try AWSConfiguration.resolve(environment: env))
        let sem = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var out: Result<[JSON], Error> = .success([])
        Task {
            do {
                let page = try await client.dynamoDB("Scan", ["TableName": .string(self.table + "-hemstream-leases"), "ConsistentRead": true])
                out = .success(page["Items"]?.arrayValue ?? [])
            } catch { out = .failure(error) }
            sem.signal()
        }
        sem.wait()
        return try out.get().map { item in
            Lease(shard: item["shard_id"]?["S"]?.stringValue ?? "", owner: item["owner"]?["S"]?.stringValue,
                  checkpoint: item["checkpoint"]?["S"]?.stringValue)
        }
    }

    struct Lease { var shard: String; var owner: String?; var checkpoint: String? }

    func testStream_day1ThenIncrementalDay2_topicHoldsExactlyTheExportsChanges_andSigtermReleases() throws {
        let expected = try genExport(rows: 300)
        let day1 = dir.file("export/day1.csv.gz").path, day2 = dir.file("export/day2.csv.gz").path
        let loaded1 = try Hemstream.run(["load", "--table", table, day1], environment: env)
        XCTAssertEqual(loaded1.exitCode, 0, loaded1.stderr)

        let stream = try startStream()
        let rows1 = expected["day1"]?["rows"]?.intValue ?? 0
        _ = try waitForEvents(rows1, while: stream)

        let loaded2 = try Hemstream.run(["load", "--table", table, day2, "--previous", day1], environment: env)
        XCTAssertEqual(loaded2.exitCode, 0, loaded2.stderr)
        let c = expected["changes"]!
        let want: [String: Int] = [
            "hem.created": rows1 + (c["added"]?.intValue ?? 0), "hem.deleted": c["removed"]?.intValue ?? 0,
            "hem.updated": c["updated"]?.intValue ?? 0, "hem.resolved": c["resolved"]?.intValue ?? 0,
            "hem.reassigned": c["reassigned"]?.intValue ?? 0, "hem.unresolved": c["unresolved"]?.intValue ?? 0,
        ]
        _ = try waitForEvents(want.values.reduce(0, +), while: stream)

        // SIGTERM: delivers, checkpoints, releases, exits 0; what is on the topic is then final.
        stream.signal(SIGTERM)
        XCTAssertEqual(stream.wait(upTo: 40), 0, stream.stderr)
        let all = try events()
        var counts: [String: Int] = [:]
        for e in all { counts[e["type"]?.stringValue ?? "?", default: 0] += 1 }
        XCTAssertEqual(counts, want, "events by type against the exports' changes")
        var seen: [String: [String]] = [:]
        for e in all { seen[e["id"]?.stringValue ?? "", default: []].append(e.serialized()) }
        for (id, copies) in seen where copies.count > 1 { XCTFail("event \(id) \(copies.count) times: \(copies)") }

        // A moved hem gives its transition and never a created-after-day-1 or a deleted.
        var byHem: [String: [String]] = [:]
        for e in all { byHem[e["subject"]?.stringValue ?? "", default: []].append(e["type"]?.stringValue ?? "") }
        for (hem, types) in byHem where types.contains(where: { ["hem.resolved", "hem.reassigned", "hem.unresolved"].contains($0) }) {
            XCTAssertFalse(types.contains("hem.deleted"), "moved hem \(hem) also got hem.deleted: \(types)")
            XCTAssertEqual(types.filter { $0 == "hem.created" }.count, 1, "moved hem \(hem): \(types)")
        }

        let ls = try leases()
        XCTAssertFalse(ls.isEmpty)
        for l in ls {
            XCTAssertNil(l.owner, "lease \(l.shard) released on SIGTERM")
            XCTAssertNotNil(l.checkpoint, "lease \(l.shard) checkpointed")
        }
        let text = try kafka.consume(topic, format: "%k %s\n").joined(separator: "\n") + stream.stderr
        XCTAssertFalse(text.contains("@example.invalid"), "an email left the table")

        // Restarted from its checkpoints, the reader publishes nothing again.
        let again = try startStream()
        let deadline = Date().addingTimeInterval(8)
        while Date() < deadline, again.process.isRunning, !again.stderr.contains("reading shard") { usleep(100_000) }
        XCTAssertTrue(again.stderr.contains("reading shard"), again.stderr)
        again.signal(SIGTERM)
        XCTAssertEqual(again.wait(upTo: 40), 0, again.stderr)
        XCTAssertEqual(try events().count, all.count, "a restart from checkpoints repeats no event")
    }

    func testStream_refusesATableWithoutAStream_inOneLine() throws {
        let client = AWSClient(configuration: try AWSConfiguration.resolve(environment: env))
        let sem = DispatchSemaphore(value: 0)
        Task {
            _ = try? await client.dynamoDB("CreateTable", [
                "TableName": "plain", "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [["AttributeName": "k", "AttributeType": "S"]],
                "KeySchema": [["AttributeName": "k", "KeyType": "HASH"]],
            ])
            sem.signal()
        }
        sem.wait()
        let r = try Hemstream.run(["stream", "--table", "plain", "--sink", "stdout"], environment: env)
        XCTAssertEqual(r.exitCode, 1)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("plain has no stream enabled"), r.stderr)
    }
}
