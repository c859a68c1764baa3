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

    /// Fails when any of `emails` (the addresses the input held), or any synthetic address,
    /// appears in `texts`. Without the input's emails the check would prove nothing.
    func assertNoEmails(_ texts: [String], _ emails: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(emails.isEmpty, "give the emails the input held", file: file, line: line)
        for text in texts {
            for email in emails where text.contains(email) {
                XCTFail("\(email) leaked: \(text.prefix(300))", file: file, line: line)
            }
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

    /// Starts `hemstream load` (stdout and stderr into the files "stdout" and "stderr" of the
    /// test's directory) and returns once its checkpoint file (with `--checkpoint-interval 0.1`)
    /// first appears, that is once some writes are acknowledged.
    func startLoadUntilCheckpoint(_ args: [String]) throws -> Process {
        let checkpoint = try XCTUnwrap(args.firstIndex(of: "--checkpoint").map { args[$0 + 1] })
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Hemstream.binaryPath)
        process.arguments = ["load", "--table", table, "--checkpoint-interval", "0.1"] + args
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        for name in ["stdout", "stderr"] { FileManager.default.createFile(atPath: dir.file(name).path, contents: nil) }
        process.standardOutput = try FileHandle(forWritingTo: dir.file("stdout"))
        process.standardError = try FileHandle(forWritingTo: dir.file("stderr"))
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint) && process.isRunning && Date() < deadline {
            usleep(20_000)
        }
        XCTAssertTrue(process.isRunning, "the load should still be running when its first checkpoint appears")
        return process
    }

    /// A 12,000-row export on a moto_server of the test's own, long enough to interrupt.
    func interruptibleLoadFixture() throws -> (export: ExportFixture, path: URL, checkpoint: String) {
        try useOwnMoto()
        let export = ExportFixture.make(count: 12_000)
        let path = dir.file("big.csv")
        try export.write(to: path)
        return (export, path, dir.file("load.ckpt").path)
    }

    /// The same load run again resumes from the checkpoint and ends with the table equal to the export.
    func assertRerunResumesToTheExport(
        _ export: ExportFixture, path: URL, checkpoint: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let resumed = try load([path.path, "--checkpoint", checkpoint])
        XCTAssertEqual(resumed.exitCode, 0, resumed.stderr, file: file, line: line)
        let s = try summary(resumed)
        XCTAssertGreaterThan(
            s["totals"]?["skipped_by_checkpoint"]?.intValue ?? 0, 0, "resumed, not restarted", file: file, line: line)
        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.items, export.expectedItems, file: file, line: line)
        XCTAssertEqual(scanned.raw.count, 12_000, file: file, line: line)
    }

    func testLoad_killedMidwayAndResumed_endsEqualToTheExport() throws {
        let (export, path, checkpoint) = try interruptibleLoadFixture()

        let process = try startLoadUntilCheckpoint([path.path, "--checkpoint", checkpoint, "--concurrency", "2"])
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let written = try scanTable(table, environment: env).raw.count
        XCTAssertLessThan(written, 12_000, "killed midway")

        try assertRerunResumesToTheExport(export, path: path, checkpoint: checkpoint)
    }

    // Kubernetes stops a Job's pod with SIGTERM, then SIGKILL after the grace period.
    func testLoad_sigtermMidway_finishesInFlight_savesCheckpointAndSummary_exit5_andRerunCompletes() throws {
        let (export, path, checkpoint) = try interruptibleLoadFixture()
        // --max-wcu keeps the load going for several seconds, so the signal lands mid-way.
        let process = try startLoadUntilCheckpoint([path.path, "--checkpoint", checkpoint, "--max-wcu", "1000"])
        _ = try assertStoppedBySIGTERM(process)
        let saved = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: checkpoint))))
        let entry = saved["sources"]?[path.path]
        XCTAssertNil(entry?["done"], "a stopped source is not done")
        XCTAssertGreaterThan(entry?["line"]?.intValue ?? 0, 1)

        try assertRerunResumesToTheExport(export, path: path, checkpoint: checkpoint)
    }

    // The same stop in `--reconcile`'s write phase (Scan, sort and merge-join done, puts going
    // out): the rerun scans the table again and writes only what the stopped run did not.
    func testReconcile_sigtermInTheWritePhase_exit5_summaryStopped_andRerunEndsEqualToTheExport() throws {
        let (export, path, checkpoint) = try interruptibleLoadFixture()
        let process = try startLoadUntilCheckpoint([
            "--reconcile", path.path, "--checkpoint", checkpoint, "--max-wcu", "1000",
        ])
        let written = try assertStoppedBySIGTERM(process)

        let rerun = try load(["--reconcile", path.path, "--checkpoint", checkpoint])
        XCTAssertEqual(rerun.exitCode, 0, rerun.stderr)
        let totals = try summary(rerun)["totals"]
        XCTAssertEqual(totals?["scanned"]?.intValue, written, "the rerun reads what the stopped run wrote")
        XCTAssertEqual(totals?["items_written"]?.intValue, 12_000 - written, "and writes only the rest")
        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.items, export.expectedItems)
        XCTAssertEqual(scanned.raw.count, 12_000)
    }

    /// A load stopped by SIGTERM mid-way: exit 5, the summary says stopped (the load's and its
    /// source's) and holds what reached the table (the calls in flight were finished), stderr
    /// names the signal. Returns the items written.
    func assertStoppedBySIGTERM(_ process: Process, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let stderr = try String(contentsOf: dir.file("stderr"), encoding: .utf8)
        XCTAssertEqual(process.terminationStatus, 5, stderr, file: file, line: line)
        let stdout = try String(contentsOf: dir.file("stdout"), encoding: .utf8)
        let printed = try JSON.parse(stdout.split(separator: "\n").last.map(String.init) ?? "")
        XCTAssertEqual(printed["stopped"]?.boolValue, true, file: file, line: line)
        XCTAssertEqual(printed["sources"]?[0]?["stopped"]?.boolValue, true, file: file, line: line)
        let written = printed["totals"]?["items_written"]?.intValue ?? -1
        XCTAssertGreaterThan(written, 0, file: file, line: line)
        XCTAssertLessThan(written, 12_000, "stopped midway", file: file, line: line)
        XCTAssertEqual(try scanTable(table, environment: env).raw.count, written, file: file, line: line)
        XCTAssertTrue(stderr.contains("SIGTERM"), stderr, file: file, line: line)
        return written
    }

    // A checkpoint that claims more than reached the disk would make a rerun after a power loss
    // skip rows: its new version is fsynced before the rename, and the directory after.
    func testLoad_checkpoint_isFsyncedBeforeItsRename_andItsDirectoryAfter() throws {
        guard (try? ChildProcess.run("/usr/bin/strace", ["-o", "/dev/null", "/bin/true"]).exitCode) == 0 else {
            throw XCTSkip("strace cannot trace here (tools/test installs it; ptrace may be forbidden)")
        }
        let export = ExportFixture.make(count: 30)
        let path = dir.file("small.csv")
        try export.write(to: path)
        let checkpoint = dir.file("load.ckpt").path
        let trace = dir.file("trace").path
        let result = try ChildProcess.run(
            "/usr/bin/strace",
            [
                "-f", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2", "-o", trace,
                Hemstream.binaryPath, "load", "--table", table, path.path, "--checkpoint", checkpoint,
            ], environment: env)
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        // Lines like: 123 openat(AT_FDCWD, "/tmp/x/load.ckpt.tmp", O_WRONLY|...) = 7
        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").map(String.init)
        func descriptor(_ line: String) -> String? { line.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespaces) } }
        var temporaryFD: String?, synced = false, renamed = false, directoryFD: String?, directorySynced = false
        let directory = (checkpoint as NSString).deletingLastPathComponent
        for line in lines {
            if line.contains("openat(") && line.contains("\"\(checkpoint).tmp\"") {
                temporaryFD = descriptor(line)
                synced = false
            } else if let fd = temporaryFD, line.contains("fsync(\(fd))") || line.contains("fdatasync(\(fd))") {
                synced = true
            } else if line.contains("rename") && line.contains("\"\(checkpoint).tmp\"") {
                XCTAssertTrue(synced, "renamed before the new checkpoint was fsynced: \(line)")
                renamed = true
                directorySynced = false
                temporaryFD = nil  // its number is free again: the directory may get it
            } else if renamed && line.contains("openat(") && line.contains("\"\(directory)\"")
                && line.contains("O_DIRECTORY")
            {
                directoryFD = descriptor(line)
            } else if renamed, let fd = directoryFD, line.contains("fsync(\(fd))") {
                directorySynced = true
            }
        }
        XCTAssertTrue(renamed, "no checkpoint rename in the trace")
        XCTAssertTrue(directorySynced, "the directory was not fsynced after the last rename")
    }

    // Redshift UNLOAD writes a part per slice, also for slices without rows.
    func testLoad_emptyPartsAmongGoodParts_exit0_warningsNameThem_goodRowsWritten() throws {
        let export = ExportFixture.make(count: 40)
        let parts = dir.file("unload")
        try FileManager.default.createDirectory(at: parts, withIntermediateDirectories: true)
        try export.write(to: parts.appendingPathComponent("0000_part_00"))
        try Data().write(to: parts.appendingPathComponent("0001_part_00"))
        let nothing = dir.file("0002_part_00")
        try Data().write(to: nothing)
        XCTAssertEqual(try ChildProcess.run("/bin/gzip", ["-n", "-f", nothing.path]).exitCode, 0)
        try FileManager.default.moveItem(
            at: dir.file("0002_part_00.gz"), to: parts.appendingPathComponent("0002_part_00.gz"))
        let header = String(export.csv.prefix { $0 != "\n" }) + "\n"
        try header.write(to: parts.appendingPathComponent("0003_part_00"), atomically: true, encoding: .utf8)

        let result = try load([parts.path + "/*"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        for (part, why) in [
            ("0001_part_00", "0 bytes"), ("0002_part_00.gz", "a gzip of nothing"), ("0003_part_00", "no data rows"),
        ] {
            XCTAssertTrue(
                result.stderr.split(separator: "\n").contains {
                    $0.hasPrefix("warning: ") && $0.contains(part) && $0.contains(why)
                },
                "no warning naming \(part): \(result.stderr)")
        }
        XCTAssertFalse(result.stderr.contains("0000_part_00"), result.stderr)
        XCTAssertEqual(try summary(result)["totals"]?["items_written"]?.intValue, 40)
        XCTAssertEqual(try scanTable(table, environment: env).items, export.expectedItems)
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
        assertNoEmails(
            [result.stdout, result.stderr, lines.joined(separator: "\n")],
            good.emails + (1...5).map { "bad\($0)@example.invalid" })
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
        let export = ExportFixture.make(count: 10)
        try export.write(to: dir.file("t.csv"))
        let result = try Hemstream.run(["load", "--table", "no-such-table", dir.file("t.csv").path], environment: env)
        XCTAssertEqual(result.exitCode, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertNotNil(
            result.stderr.range(of: #"t\.csv:[0-9]+: "#, options: .regularExpression), "SOURCE:LINE: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("ResourceNotFoundException"), result.stderr)
        assertNoEmails([result.stdout, result.stderr], export.emails)
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
        // Rows 10 and 11 swapped: row 11 (line 13, the header is line 1) is lower than row 10 on line 12.
        let hems = day1.rows.map(\.hem)
        XCTAssertTrue(
            result.stderr.hasPrefix("hemstream load: \(dir.file("day2.csv").path):13: hem \(hems[10]) is out of order"),
            "SOURCE:LINE of the out-of-order hem: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("lower than hem \(hems[11]) on line 12"), result.stderr)
        assertNoEmails([result.stdout, result.stderr], day1.emails)
    }

    /// Memory stays flat whatever the export's size: each read runs in a process of its own,
    /// so its peak RSS is its own and not a high-water mark left by other tests.
    func testLoad_dryRunOfGzipExport_peakRSSDoesNotGrowWithTheRows() throws {
        func peak(rows: Int) throws -> Int {
            let csv = dir.file("rss-\(rows).csv")
            try ExportFixture.make(count: rows, salt: "rss").write(to: csv)
            let gzip = try ChildProcess.run("gzip", ["-f", csv.path])
            XCTAssertEqual(gzip.exitCode, 0, gzip.stderr)
            let run = try ChildProcess.peakRSS(
                Hemstream.binaryPath, ["load", "--table", table, "--dry-run", csv.path + ".gz"], environment: env)
            XCTAssertEqual(run.exitCode, 0, run.stderr)
            return run.peakRSS
        }
        let small = try peak(rows: 20_000)
        let large = try peak(rows: 200_000)  // ~20 MB of CSV
        let mib = { (bytes: Int) in bytes / 1_048_576 }
        XCTAssertLessThan(large - small, 10 * 1_048_576, "20k rows: \(mib(small)) MiB, 200k rows: \(mib(large)) MiB")
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

    func testLoad_metricsCloudWatch_publishesItemsProcessedAndFailedPerFile_withTheirValues() throws {
        let export = ExportFixture.make(count: 30)
        let file = dir.file("m.csv")
        try (export.csv + "not-a-hem,VUP-1,,,2026-11-24T06:00:00Z\n\(ExportFixture.hexHash("m")),VUP-1,,,\n").write(
            to: file, atomically: true, encoding: .utf8)
        let namespace = "Hemstream/Test-\(table)"
        let start = Date().addingTimeInterval(-600)
        let result = try load([file.path, "--metrics", "cloudwatch", "--metrics-namespace", namespace])
        XCTAssertEqual(result.exitCode, 2, result.stderr)
        let end = Date().addingTimeInterval(600)
        /// The sum of `metric` for this file, as CloudWatch has it.
        func sum(_ metric: String) throws -> Double? {
            let xml = try runAsync {
                let client = AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: self.env))
                return try await client.query(
                    .cloudWatch, action: "GetMetricStatistics", version: "2010-08-01",
                    parameters: [
                        ("Namespace", namespace), ("MetricName", metric),
                        ("Dimensions.member.1.Name", "File"), ("Dimensions.member.1.Value", file.path),
                        ("StartTime", ISO8601DateFormatter().string(from: start)),
                        ("EndTime", ISO8601DateFormatter().string(from: end)),
                        ("Period", "3600"), ("Statistics.member.1", "Sum"),
                    ])
            }
            let sums = xml.matches(of: /<Sum>([0-9.]+)<\/Sum>/).compactMap { Double($0.1) }
            return sums.isEmpty ? nil : sums.reduce(0, +)
        }
        XCTAssertEqual(try sum("ItemsProcessed"), 30, "every valid row written, counted once")
        XCTAssertEqual(try sum("ItemsFailed"), 2, "the two rejected rows")
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
