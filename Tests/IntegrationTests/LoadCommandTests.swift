import AWSWire
import Foundation
import JSON
import Synchronization
import TestSupport
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `hemstream load`, run as the real binary against moto_server.
final class LoadCommandTests: XCTestCase, @unchecked Sendable {  // XCTest runs one method at a time
    var env: [String: String] = [:]
    var table = ""
    var dir: TemporaryDirectory!

    override func setUpWithError() throws {
        env = try MotoServer.sharedEnvironment()
        table = "load-\(UUID().uuidString.prefix(8).lowercased())"
        dir = try TemporaryDirectory()
        let created = try Hemstream.run(
            ["table", "create", "--table", table, "--poll-interval", "0.05"], environment: env)
        XCTAssertEqual(created.exitCode, 0, created.stderr)
    }

    /// A moto_server of this test's own, for tests that move hems or write many items: moto
    /// 5.2.1 deep-copies a table for every action of a TransactWriteItems (a move costs two
    /// copies), which grows slow and memory-hungry on the suite's shared server.
    var ownMoto: MotoServer?

    func useOwnMoto() throws {
        let server = try MotoServer()
        ownMoto = server
        env = server.awsEnvironment()
        let created = try Hemstream.run(
            ["table", "create", "--table", table, "--poll-interval", "0.05"], environment: env)
        XCTAssertEqual(created.exitCode, 0, created.stderr)
    }

    override func tearDown() {
        ownMoto?.stop()
        ownMoto = nil
    }

    func load(_ args: [String], environment: [String: String]? = nil) throws -> ProcessResult {
        try Hemstream.run(["load", "--table", table] + args, environment: environment ?? env)
    }

    func summary(_ result: ProcessResult) throws -> JSON {
        try JSON.parse(result.stdoutLines.last ?? "")
    }

    func assertNoEmails(_ texts: [String], _ emails: [String], file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            XCTAssertFalse(
                text.contains("@example.invalid"), "an email leaked: \(text.prefix(300))", file: file, line: line)
        }
    }

    func testLoad_fullExport_tableMatchesExportItemForItem_andSecondLoadChangesNothing() throws {
        let export = ExportFixture.make(count: 600)
        let path = dir.file("day1.csv")
        try export.write(to: path)

        let first = try load([path.path])
        XCTAssertEqual(first.exitCode, 0, first.stderr)
        XCTAssertEqual(first.stderr, "", "no progress line when stderr is not a terminal")
        let s = try summary(first)
        XCTAssertEqual(s["totals"]?["rows_read"], 600)
        XCTAssertEqual(s["totals"]?["items_written"], 600)
        let afterFirst = try scanTable(table, environment: env)
        XCTAssertEqual(afterFirst.items, export.expectedItems)
        XCTAssertEqual(afterFirst.raw.count, 600)

        let second = try load([path.path, "--max-wcu", "5000"])
        XCTAssertEqual(second.exitCode, 0, second.stderr)
        let afterSecond = try scanTable(table, environment: env)
        XCTAssertEqual(afterSecond.items, afterFirst.items)
        XCTAssertEqual(afterSecond.raw.count, 600)
        assertNoEmails([first.stdout, first.stderr, second.stdout, second.stderr], export.emails)
    }

    func testLoad_unresolvedThenResolved_withoutPrevious_leavesOneItemPerHem() throws {
        try useOwnMoto()
        let day1 = ExportFixture.make(count: 150)
        var day2 = day1
        for i in day2.rows.indices where day2.rows[i].vup == nil { day2.rows[i].vup = "VUP-RESOLVED-\(i)" }
        try day1.write(to: dir.file("day1.csv"))
        try day2.write(to: dir.file("day2.csv"))

        XCTAssertEqual(try load([dir.file("day1.csv").path]).exitCode, 0)
        // --concurrency 1: moto 5.2.1 deep-copies the table in TransactWriteItems and races with
        // concurrent writes (HTTP 500 "dictionary changed size during iteration", or no answer).
        let result = try load([dir.file("day2.csv").path, "--concurrency", "1"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        let unresolved = day1.rows.filter { $0.vup == nil }.count
        XCTAssertEqual(try summary(result)["totals"]?["moved"], .int(unresolved))

        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.items, day2.expectedItems)
        XCTAssertEqual(scanned.raw.count, 150, "one item per hem")
        XCTAssertTrue(scanned.itemsPerHem.values.allSatisfy { $0 == 1 })
        // The moved items say where they came from, for the stream reader.
        let marked = scanned.raw.filter { $0["previous_vup_id"]?["S"]?.stringValue?.hasPrefix("UNRESOLVED#") == true }
        XCTAssertEqual(marked.count, unresolved)
    }

    func testLoad_incrementalDay1ToDay2_tableEqualsDay2_andOnlyChangesAreWritten() throws {
        try useOwnMoto()
        let day1 = ExportFixture.make(count: 200)
        let (day2, changedRows, moves) = day1.nextDay()
        try day1.write(to: dir.file("day1.csv"))
        try day2.write(to: dir.file("day2.csv"))
        XCTAssertEqual(try load([dir.file("day1.csv").path]).exitCode, 0)

        // Count write requests on the wire: a proxy in front of moto records every call.
        let proxy = try CountingProxy(upstream: env["AWS_ENDPOINT_URL"]!)
        var proxied = env
        proxied["AWS_ENDPOINT_URL"] = proxy.server.endpoint
        let result = try load(
            [dir.file("day2.csv").path, "--previous", dir.file("day1.csv").path, "--concurrency", "1"],
            environment: proxied)
        XCTAssertEqual(result.exitCode, 0, result.stderr)

        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.items, day2.expectedItems)
        XCTAssertTrue(scanned.itemsPerHem.values.allSatisfy { $0 == 1 })
        let counts = proxy.writeRequestCounts()
        XCTAssertEqual(counts.puts + counts.deletes, changedRows, "one put or delete per changed row")
        XCTAssertEqual(counts.transactionActions, moves * 2, "a delete and a put per moved hem")
        let s = try summary(result)
        XCTAssertEqual(s["totals"]?["moved"], .int(moves))
        let before = Dictionary(uniqueKeysWithValues: day1.rows.map { ($0.hem, $0) })
        XCTAssertEqual(s["sources"]?[0]?["unchanged"], .int(day2.rows.filter { before[$0.hem] == $0 }.count))
    }

    func testLoad_killedMidwayAndResumed_endsEqualToTheExport() throws {
        try useOwnMoto()
        let export = ExportFixture.make(count: 12_000)
        let path = dir.file("big.csv")
        try export.write(to: path)
        let checkpoint = dir.file("load.ckpt").path

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Hemstream.binaryPath)
        process.arguments = [
            "load", "--table", table, path.path, "--checkpoint", checkpoint, "--checkpoint-interval", "0.1",
            "--concurrency", "2",
        ]
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint) && process.isRunning && Date() < deadline {
            usleep(20_000)
        }
        XCTAssertTrue(process.isRunning, "the load should still be running when its first checkpoint appears")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let written = try scanTable(table, environment: env).raw.count
        XCTAssertLessThan(written, 12_000, "killed midway")

        let resumed = try load([path.path, "--checkpoint", checkpoint])
        XCTAssertEqual(resumed.exitCode, 0, resumed.stderr)
        let s = try summary(resumed)
        XCTAssertGreaterThan(s["totals"]?["skipped_by_checkpoint"]?.intValue ?? 0, 0, "resumed, not restarted")
        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.items, export.expectedItems)
        XCTAssertEqual(scanned.raw.count, 12_000)
    }

    func testLoad_badRows_exit2_rejectsCountedByReason_noEmailAnywhere() throws {
        var text = "hem,vup_id,email,domain,updated_at\n"
        let good = ExportFixture.make(count: 5)
        for r in good.rows { text += "\(r.hem),\(r.vup ?? ""),\(r.email!),example.invalid,\(r.updatedAt)\n" }
        text += "not-a-hem,VUP-1,bad1@example.invalid,example.invalid,2026-11-24T06:00:00Z\n"
        text += "\(ExportFixture.hexHash("x")),UNRESOLVED#zz,bad2@example.invalid,,2026-11-24T06:00:00Z\n"
        text += "\(ExportFixture.hexHash("y")),VUP-1,bad3@example.invalid,,2026-11-24 06:00:00\n"
        text += "\(ExportFixture.hexHash("z")),VUP-1,bad4@example.invalid,,\n"
        text += "\(ExportFixture.hexHash("w")),VUP-1,bad5@example.invalid\n"
        try text.write(to: dir.file("bad.csv"), atomically: true, encoding: .utf8)
        let rejects = dir.file("rejects.jsonl")

        let result = try load([dir.file("bad.csv").path, "--rejects", rejects.path])
        XCTAssertEqual(result.exitCode, 2, result.stderr)
        let s = try summary(result)
        XCTAssertEqual(s["totals"]?["items_written"], 5)
        XCTAssertEqual(s["totals"]?["rejected_total"], 5)
        let reasons = s["totals"]?["rejected"]
        XCTAssertEqual(reasons?["invalid_hem"], 1)
        XCTAssertEqual(reasons?["sentinel_mismatch"], 1)
        XCTAssertEqual(reasons?["invalid_timestamp"], 1)
        XCTAssertEqual(reasons?["missing_updated_at"], 1)
        XCTAssertEqual(reasons?["field_count"], 1)
        let lines = try String(contentsOf: rejects, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        let first = try JSON.parse(String(lines[0]))
        XCTAssertEqual(first["line"], 7)
        XCTAssertEqual(first["reason"], "invalid_hem")
        XCTAssertEqual(first["source"], .string(dir.file("bad.csv").path))
        assertNoEmails([result.stdout, result.stderr, lines.joined(separator: "\n")], [])
        XCTAssertEqual(try scanTable(table, environment: env).raw.count, 5)
    }

    func testLoad_missingHemColumn_exit1_oneLineNamingTheSource() throws {
        try "vup_id,email,updated_at\nVUP-1,a@example.invalid,2026-11-24T06:00:00Z\n".write(
            to: dir.file("nohem.csv"), atomically: true, encoding: .utf8)
        let result = try load([dir.file("nohem.csv").path])
        XCTAssertEqual(result.exitCode, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("nohem.csv"), result.stderr)
        XCTAssertTrue(result.stderr.contains("hem"), result.stderr)
        XCTAssertFalse(result.stderr.contains("@example.invalid"))
    }

    func testLoad_missingTable_exit1_oneLineNamingSourceLineAndAWSCode() throws {
        try ExportFixture.make(count: 10).write(to: dir.file("t.csv"))
        let result = try Hemstream.run(["load", "--table", "no-such-table", dir.file("t.csv").path], environment: env)
        XCTAssertEqual(result.exitCode, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("t.csv line "), result.stderr)
        XCTAssertTrue(result.stderr.contains("ResourceNotFoundException"), result.stderr)
        assertNoEmails([result.stdout, result.stderr], [])
    }

    func testLoad_incrementalAssumeSortedWithUnsortedExport_exit1_namesTheLine() throws {
        let day1 = ExportFixture.make(count: 20)
        var day2 = day1
        day2.rows.swapAt(10, 11)
        try day1.write(to: dir.file("day1.csv"))
        try day2.write(to: dir.file("day2.csv"))
        let result = try load([dir.file("day2.csv").path, "--previous", dir.file("day1.csv").path, "--assume-sorted"])
        XCTAssertEqual(result.exitCode, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("day2.csv"), result.stderr)
        XCTAssertTrue(result.stderr.contains("13"), "the line of the out-of-order hem: \(result.stderr)")
        assertNoEmails([result.stdout, result.stderr], [])
    }

    func testLoad_gzipFromS3Prefix_tableMatchesExport() throws {
        let export = ExportFixture.make(count: 120)
        try export.write(to: dir.file("part.csv"))
        let gzip = try ChildProcess.run("gzip", ["-kf", dir.file("part.csv").path])
        XCTAssertEqual(gzip.exitCode, 0, gzip.stderr)
        let bytes = try Data(contentsOf: dir.file("part.csv.gz"))
        let bucket = "bucket-\(table)"
        try runAsync {
            let client = AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: self.env))
            try await client.s3CreateBucket(bucket)
            try await client.s3PutObject(bucket: bucket, key: "day1/part_000", body: Array(bytes))
        }
        let result = try load(["s3://\(bucket)/day1/"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        XCTAssertEqual(try scanTable(table, environment: env).items, export.expectedItems)
    }

    func testLoad_onATerminal_showsAProgressLine() throws {
        try ExportFixture.make(count: 50).write(to: dir.file("p.csv"))
        // script(1) gives the command a terminal; its output comes back on script's stdout.
        let command = ([Hemstream.binaryPath, "load", "--table", table, dir.file("p.csv").path, "--dry-run"])
            .map { "'\($0)'" }.joined(separator: " ")
        let result = try ChildProcess.run("script", ["-qefc", command, "/dev/null"], environment: env)
        XCTAssertEqual(result.exitCode, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rows/s"), result.stdout)
        XCTAssertTrue(result.stdout.contains("p.csv: 50 rows"), result.stdout)
        XCTAssertTrue(result.stdout.contains(" of "), "bytes read of the total: \(result.stdout)")
    }

    func testLoad_dryRun_writesNothing() throws {
        try ExportFixture.make(count: 50).write(to: dir.file("d.csv"))
        let result = try load([dir.file("d.csv").path, "--dry-run"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        XCTAssertEqual(try summary(result)["totals"]?["items_written"], 50)
        XCTAssertEqual(try scanTable(table, environment: env).raw.count, 0)
    }

    func testLoad_metricsCloudWatch_publishesItemsProcessedPerFile() throws {
        try ExportFixture.make(count: 30).write(to: dir.file("m.csv"))
        let namespace = "Hemstream/Test-\(table)"
        let result = try load([dir.file("m.csv").path, "--metrics", "cloudwatch", "--metrics-namespace", namespace])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        let listed = try runAsync {
            let client = AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: self.env))
            return try await client.query(
                .cloudWatch, action: "ListMetrics", version: "2010-08-01", parameters: [("Namespace", namespace)])
        }
        XCTAssertTrue(listed.contains("ItemsProcessed"), listed)
        XCTAssertTrue(listed.contains("ItemsFailed"), listed)
        XCTAssertTrue(listed.contains("m.csv"), listed)
    }
}

/// Forwards every request to moto and records it, so a test can count write requests on the wire.
final class CountingProxy: Sendable {
    let server: ScriptedHTTPServer

    init(upstream: String) throws {
        server = try ScriptedHTTPServer { request, _ in
            var urlRequest = URLRequest(url: URL(string: upstream + request.target)!)
            urlRequest.httpMethod = request.method
            urlRequest.httpBody = Data(request.body)
            for (name, value) in request.headers
            where !["host", "content-length", "connection", "expect"].contains(name.lowercased()) {
                urlRequest.setValue(value, forHTTPHeaderField: name)
            }
            let box = Mutex<ScriptedResponse>(.text(502, "proxy: no answer"))
            let done = DispatchSemaphore(value: 0)
            URLSession.shared.dataTask(with: urlRequest) { data, response, _ in
                if let http = response as? HTTPURLResponse {
                    let type = http.value(forHTTPHeaderField: "Content-Type") ?? "application/x-amz-json-1.0"
                    box.withLock {
                        $0 = ScriptedResponse(
                            status: http.statusCode, headers: [("Content-Type", type)], body: Array(data ?? Data()))
                    }
                }
                done.signal()
            }.resume()
            done.wait()
            return box.withLock { $0 }
        }
    }

    /// Put and delete requests in BatchWriteItem calls, and actions in TransactWriteItems calls.
    func writeRequestCounts() -> (puts: Int, deletes: Int, transactionActions: Int) {
        var puts = 0
        var deletes = 0
        var actions = 0
        for request in server.requests {
            let target = request.header("X-Amz-Target") ?? ""
            guard let body = try? JSON.parse(request.body) else { continue }
            if target.hasSuffix(".BatchWriteItem") {
                for (_, list) in body["RequestItems"]?.objectValue ?? [:] {
                    for r in list.arrayValue ?? [] {
                        if r["PutRequest"] != nil { puts += 1 }
                        if r["DeleteRequest"] != nil { deletes += 1 }
                    }
                }
            } else if target.hasSuffix(".TransactWriteItems") {
                actions += body["TransactItems"]?.arrayValue?.count ?? 0
            }
        }
        return (puts, deletes, actions)
    }
}
