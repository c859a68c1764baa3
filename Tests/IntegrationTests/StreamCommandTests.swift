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

    func genExport(rows: Int) throws -> JSON {
        let out = dir.file("export").path
        let r = try ChildProcess.run(
            "/usr/bin/env", ["python3", repositoryRoot().appendingPathComponent("tools/gen-export").path, "--rows", "\(rows)", "--out", out, "--seed", "3"],
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

    /// Waits (bounded) until the topic holds `count` distinct events (by id): a redelivered
    /// event is not a new one, and counting it would end the wait while events are still to come.
    func waitForEvents(_ count: Int, upTo seconds: Double = 120, while process: BackgroundProcess) throws -> [JSON] {
        let deadline = Date().addingTimeInterval(seconds)
        var got: [JSON] = []
        while Date() < deadline {
            got = try events()
            if Set(got.compactMap { $0["id"]?.stringValue }).count >= count { return got }
            XCTAssertTrue(process.process.isRunning, "the stream reader ended early: \(process.stderr)")
            if !process.process.isRunning { break }
            usleep(300_000)
        }
        XCTFail("the topic held \(got.count) events, waited for \(count)")
        return got
    }

    func leases() throws -> [Lease] {
        try leaseTableItems(table + "-hemstream-leases", environment: env).map { item in
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
        _ = try runAsync { [env] in
            try await AWSClient(configuration: try AWSConfiguration.resolve(environment: env)).dynamoDB("CreateTable", [
                "TableName": "plain", "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [["AttributeName": "k", "AttributeType": "S"]],
                "KeySchema": [["AttributeName": "k", "KeyType": "HASH"]],
            ])
        }
        let r = try Hemstream.run(["stream", "--table", "plain", "--sink", "stdout"], environment: env)
        XCTAssertEqual(r.exitCode, 1)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("plain has no stream enabled"), r.stderr)
    }

    /// Events by type, each id counted once (at-least-once delivery may repeat an event).
    func uniqueCounts(_ events: [JSON]) -> [String: Int] {
        var ids: [String: Set<String>] = [:]
        for e in events { ids[e["type"]?.stringValue ?? "?", default: []].insert(e["id"]?.stringValue ?? "") }
        return ids.mapValues(\.count)
    }

    func want(_ expected: JSON) -> [String: Int] {
        let c = expected["changes"]!
        return [
            "hem.created": (expected["day1"]?["rows"]?.intValue ?? 0) + (c["added"]?.intValue ?? 0),
            "hem.deleted": c["removed"]?.intValue ?? 0, "hem.updated": c["updated"]?.intValue ?? 0,
            "hem.resolved": c["resolved"]?.intValue ?? 0, "hem.reassigned": c["reassigned"]?.intValue ?? 0,
            "hem.unresolved": c["unresolved"]?.intValue ?? 0,
        ]
    }

    func testStream_secondReplica_takesTheShardAtOnceOnSigterm_andAfterExpiryOnSigkill_losingNothing() throws {
        let expected = try genExport(rows: 200)
        let day1 = dir.file("export/day1.csv.gz").path, day2 = dir.file("export/day2.csv.gz").path
        XCTAssertEqual(try Hemstream.run(["load", "--table", table, day1], environment: env).exitCode, 0)

        let a = try startStream(worker: "a")
        try waitUntil("a holds the lease", timeout: 60, every: 0.2) { try leases().contains { $0.owner == "a" } }
        let b = try startStream(worker: "b")
        try waitUntil("b has scanned the leases", timeout: 60, every: 0.2) { b.stderr.contains("stream reader started") }
        // One shard (moto): a keeps it, b waits its turn.
        usleep(1_500_000)
        XCTAssertEqual(try leases().filter { $0.owner == "b" }.count, 0, "b must not take a live lease")

        // SIGTERM a: it hands the lease over; b takes it within one lease scan, not after expiry (4 s).
        a.signal(SIGTERM)
        XCTAssertEqual(a.wait(upTo: 40), 0, a.stderr)
        let released = Date()
        try waitUntil("b takes the released lease", timeout: 3.5, every: 0.2) { try leases().contains { $0.owner == "b" } }
        XCTAssertLessThan(Date().timeIntervalSince(released), 3.5)

        let loaded2 = try Hemstream.run(["load", "--table", table, day2, "--previous", day1], environment: env)
        XCTAssertEqual(loaded2.exitCode, 0, loaded2.stderr)
        let total = want(expected).values.reduce(0, +)
        _ = try waitForEvents(total, while: b)

        // SIGKILL b: a new replica takes the lease once it stops moving (lease duration + a scan).
        b.signal(SIGKILL)
        _ = b.wait(upTo: 10)
        let c = try startStream(worker: "c")
        let killed = Date()
        try waitUntil("c takes the dead replica's lease", timeout: 15, every: 0.2) { try leases().contains { $0.owner == "c" } }
        XCTAssertLessThan(Date().timeIntervalSince(killed), 4 + 2 + 3, "lease duration + one scan (+ start-up)")
        // Whatever b had read but not settled (held halves, lookups) is c's to send: from b's
        // checkpoint, which never passed it.
        try waitUntil("every expected event is in Kafka", timeout: 120, every: 0.2) {
            uniqueCounts(try events()).values.reduce(0, +) >= total
        }
        c.signal(SIGTERM)
        XCTAssertEqual(c.wait(upTo: 40), 0, c.stderr)

        let all = try events()
        XCTAssertEqual(uniqueCounts(all), want(expected))
        XCTAssertLessThanOrEqual(all.count - Set(all.compactMap { $0["id"]?.stringValue }).count, 1000, "duplicates bounded")
    }

    func testStream_killedAtRandomTenTimes_losesNoEvent() throws {
        let expected = try genExport(rows: 200)
        let day1 = dir.file("export/day1.csv.gz").path, day2 = dir.file("export/day2.csv.gz").path
        XCTAssertEqual(try Hemstream.run(["load", "--table", table, day1], environment: env).exitCode, 0)
        var generator = SystemRandomNumberGenerator()
        let loader = try BackgroundProcess(
            Hemstream.binaryPath, ["load", "--table", table, day2, "--previous", day1, "--concurrency", "1"], environment: env)
        for round in 0..<10 {
            // Each replica restarts with a new name, so it must wait out the dead one's lease.
            let s = try startStream(["--lease-duration", "1"], worker: "k\(round)")
            usleep(UInt32.random(in: 300_000...2_500_000, using: &generator))
            s.signal(SIGKILL)
            _ = s.wait(upTo: 10)
        }
        XCTAssertEqual(loader.wait(upTo: 120), 0, loader.stderr)
        let last = try startStream(["--lease-duration", "1"], worker: "final")
        let total = want(expected).values.reduce(0, +)
        try waitUntil("every expected event is in Kafka", timeout: 120, every: 0.2) { uniqueCounts(try events()).values.reduce(0, +) >= total }
        last.signal(SIGTERM)
        XCTAssertEqual(last.wait(upTo: 40), 0, last.stderr)
        XCTAssertEqual(uniqueCounts(try events()), want(expected), "no event missing (nor invented) after 10 SIGKILLs")
    }

    func scrape(_ port: Int) throws -> [PrometheusText.Sample] {
        let reply = try HTTP.request("GET", port: port, path: "/metrics")
        XCTAssertEqual(reply.status, 200)
        return try PrometheusText.parse(reply.body)
    }

    /// /metrics read by Prometheus's reference parser; /healthz and /readyz for the probes; the
    /// iterator age rises while Kafka is away (records read, not acknowledged) and returns to 0.
    func testMetrics_countWhatWasRead_andIteratorAgeRisesWhileKafkaIsDown_thenReturnsToZero() throws {
        let expected = try genExport(rows: 100)
        let day1 = dir.file("export/day1.csv.gz").path, day2 = dir.file("export/day2.csv.gz").path
        XCTAssertEqual(try Hemstream.run(["load", "--table", table, day1], environment: env).exitCode, 0)
        let port = LocalPorts.free()
        let stream = try startStream(["--metrics-port", "\(port)", "--metrics-host", "127.0.0.1"])
        let rows = expected["day1"]?["rows"]?.intValue ?? 0
        _ = try waitForEvents(rows, while: stream)
        // What the last scrape showed, for the failure message (this wait timed out once in a
        // full CI run and never alone; the next time should say why).
        var seen = ""
        do {
            try waitUntil("caught up: iterator age 0", timeout: 60, every: 0.2) {
                let m = try scrape(port)
                let ages = m.all("hemstream_stream_iterator_age_seconds").map(\.value)
                seen = "records read \(m.value("hemstream_stream_records_read_total") ?? -1) of \(rows), iterator ages \(ages)"
                return m.value("hemstream_stream_records_read_total") == Double(rows)
                    && ages.allSatisfy { $0 == 0 } && !ages.isEmpty
            }
        } catch {
            XCTFail("\(error); last /metrics: \(seen); the reader's log ends: \(stream.stderr.suffix(4000))")
            throw error
        }
        let m = try scrape(port)
        XCTAssertEqual(m.value("hemstream_stream_events_total", ["type": "hem.created"]), Double(rows))
        XCTAssertEqual(m.value("hemstream_stream_leases_held"), 1)
        XCTAssertGreaterThan(m.value("hemstream_stream_getrecords_calls_total") ?? 0, 0)
        XCTAssertGreaterThanOrEqual(m.value("hemstream_stream_delivery_latency_seconds_count") ?? 0, Double(rows))
        XCTAssertEqual(try HTTP.request("GET", port: port, path: "/healthz").status, 200)
        XCTAssertEqual(try HTTP.request("GET", port: port, path: "/readyz").status, 200)

        // Kafka stops answering: day 2 is read, not acknowledged; the age climbs and readiness drops.
        kafka.child.signal(SIGSTOP)
        XCTAssertEqual(try Hemstream.run(["load", "--table", table, day2, "--previous", day1], environment: env).exitCode, 0)
        try waitUntil("iterator age ≥ 3 s while Kafka is away", timeout: 30, every: 0.2) {
            (try scrape(port).all("hemstream_stream_iterator_age_seconds").map(\.value).max() ?? 0) >= 3
        }
        try waitUntil("/readyz says Kafka is unreachable", timeout: 30, every: 0.2) {
            try HTTP.request("GET", port: port, path: "/readyz").status == 503
        }
        kafka.child.signal(SIGCONT)
        try waitUntil("iterator age back to 0 once Kafka is back", timeout: 60, every: 0.2) {
            try scrape(port).all("hemstream_stream_iterator_age_seconds").allSatisfy { $0.value == 0 }
        }
        try waitUntil("ready again", timeout: 30, every: 0.2) { try HTTP.request("GET", port: port, path: "/readyz").status == 200 }
        stream.signal(SIGTERM)
        XCTAssertEqual(stream.wait(upTo: 40), 0, stream.stderr)
        XCTAssertEqual(uniqueCounts(try events()), want(expected), "nothing lost across the outage")
    }
}
