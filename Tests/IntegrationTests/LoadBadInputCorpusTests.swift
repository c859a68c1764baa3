import Foundation
import JSON
import TestSupport
import XCTest

/// The bad-input corpus for `hemstream load`, on LoadCommandTests' table, directory and helpers:
/// one file per case, each loaded by the real binary into moto. Bad rows give exit 2 with the reason counted and every good row still written;
/// a bad file gives exit 1 with one line naming it; no email ever reaches stdout, stderr or the
/// rejects file.
extension LoadCommandTests {
    static let corpusHeader = "hem,vup_id,email,domain,source,last_verified,updated_at\n"

    /// Three good rows around one bad record, so a test can see that only the bad one is lost.
    func fileWithOneBadRecord(_ name: String, bad: [UInt8]) throws -> (path: String, good: ExportFixture) {
        let good = ExportFixture.make(count: 3, salt: name)
        var bytes = Array(Self.corpusHeader.utf8)
        func row(_ r: ExportFixture.Row) -> String { "\(r.hem),\(r.vup ?? ""),\(r.email!),example.invalid,crm,,\(r.updatedAt)\n" }
        bytes += Array(row(good.rows[0]).utf8)
        bytes += bad
        bytes += Array((row(good.rows[1]) + row(good.rows[2])).utf8)
        let url = dir.file(name)
        try Data(bytes).write(to: url)
        return (url.path, good)
    }

    func testCorpus_eachBadRowCase_exit2_reasonCounted_goodRowsWritten_noEmail() throws {
        let hem = ExportFixture.hexHash("corpus-bad")
        let big = String(repeating: "x", count: 410_000)
        let cases: [(file: String, reason: String, record: [UInt8])] = [
            ("invalid-hem.csv", "invalid_hem", Array("XYZ123,VUP-1,bad@example.invalid,,,,2026-11-24T06:00:00Z\n".utf8)),
            ("uppercase-hem.csv", "invalid_hem", Array("\(hem.uppercased()),VUP-1,bad@example.invalid,,,,2026-11-24T06:00:00Z\n".utf8)),
            ("sentinel-mismatch.csv", "sentinel_mismatch", Array("\(hem),UNRESOLVED#00,bad@example.invalid,,,,2026-11-24T06:00:00Z\n".utf8)),
            ("no-zone.csv", "invalid_timestamp", Array("\(hem),VUP-1,bad@example.invalid,,,,2026-11-24 06:00:00\n".utf8)),
            ("bad-last-verified.csv", "invalid_timestamp", Array("\(hem),VUP-1,bad@example.invalid,,,yesterday,2026-11-24T06:00:00Z\n".utf8)),
            ("no-updated-at.csv", "missing_updated_at", Array("\(hem),VUP-1,bad@example.invalid,,,,\n".utf8)),
            ("field-count.csv", "field_count", Array("\(hem),VUP-1,bad@example.invalid,2026-11-24T06:00:00Z\n".utf8)),
            ("invalid-utf8.csv", "invalid_utf8", Array("\(hem),VUP-1,bad@example.invalid,".utf8) + [0xC3, 0x28] + Array(",,,2026-11-24T06:00:00Z\n".utf8)),
            ("too-large.csv", "item_too_large", Array("\(hem),VUP-1,bad@example.invalid,,\(big),,2026-11-24T06:00:00Z\n".utf8)),
        ]
        var written = 0
        for c in cases {
            let (path, good) = try fileWithOneBadRecord(c.file, bad: c.record)
            let rejects = dir.file(c.file + ".rejects")
            let result = try load([path, "--rejects", rejects.path])
            XCTAssertEqual(result.exitCode, 2, "\(c.file): \(result.stderr)")
            let summary = try JSON.parse(result.stdoutLines.last ?? "")
            XCTAssertEqual(summary["totals"]?["rejected"]?[c.reason], 1, "\(c.file): \(result.stdout)")
            XCTAssertEqual(summary["totals"]?["rejected_total"], 1, c.file)
            XCTAssertEqual(summary["totals"]?["items_written"], 3, "\(c.file): the good rows are written")
            let rejectLines = try String(contentsOf: rejects, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(rejectLines.count, 1, c.file)
            let reject = try JSON.parse(String(rejectLines.first ?? ""))
            XCTAssertEqual(reject["line"], 3, "\(c.file): the bad record is line 3")
            XCTAssertEqual(reject["reason"], .string(c.reason), c.file)
            for text in [result.stdout, result.stderr, rejectLines.joined(separator: "\n")] {
                XCTAssertFalse(text.contains("@example.invalid"), "\(c.file): an email leaked: \(text.prefix(300))")
                XCTAssertFalse(text.contains(big.prefix(100)), "\(c.file): a raw value leaked")
            }
            written += good.rows.count
        }
        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.raw.count, written, "every good row of every file is in the table")
    }

    func testCorpus_eachBadFileCase_exit1_oneLineNamingTheFile_noEmail() throws {
        let good = ExportFixture.make(count: 200, salt: "gz")
        let goodURL = dir.file("good.csv")
        try good.write(to: goodURL)
        let gzipped = try gzip(goodURL)
        var badCRC = gzipped
        badCRC[badCRC.count - 6] ^= 0xFF  // inside the CRC-32 trailer
        var random = SystemRandomNumberGenerator()
        let cases: [(file: String, bytes: [UInt8], says: String)] = [
            ("truncated.csv.gz", Array(gzipped.prefix(gzipped.count / 2)), "truncated"),
            ("bad-crc.csv.gz", badCRC, "CRC"),
            ("random.bin", (0..<4096).map { _ in UInt8.random(in: 0...255, using: &random) }, ""),
            ("no-header.csv", Array(good.csv.split(separator: "\n").dropFirst().joined(separator: "\n").utf8), "hem"),
        ]
        for c in cases {
            let url = dir.file(c.file)
            try Data(c.bytes).write(to: url)
            let result = try load([url.path])
            XCTAssertEqual(result.exitCode, 1, "\(c.file): \(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(c.file): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.file), "\(c.file): \(result.stderr)")
            if !c.says.isEmpty {
                XCTAssertTrue(result.stderr.lowercased().contains(c.says.lowercased()), "\(c.file): \(result.stderr)")
            }
            for text in [result.stdout, result.stderr] {
                XCTAssertFalse(text.contains("@example.invalid"), "\(c.file): an email leaked: \(text.prefix(300))")
            }
        }
        // An empty file is no bad input: UNLOAD writes one for a slice without rows (a warning).
        let empty = dir.file("empty.csv")
        try Data().write(to: empty)
        let emptyResult = try load([empty.path])
        XCTAssertEqual(emptyResult.exitCode, 0, emptyResult.stderr)
        XCTAssertEqual(emptyResult.stderr, "warning: \(empty.path): empty source (0 bytes): 0 rows\n")
        let missing = try load([dir.file("nope.csv.gz").path])
        XCTAssertEqual(missing.exitCode, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("nope.csv.gz"), missing.stderr)
    }

    /// gzip's own output for the file (`gzip -k` writes FILE.gz next to it).
    private func gzip(_ url: URL) throws -> [UInt8] {
        let result = try ChildProcess.run("/bin/gzip", ["-k", "-f", url.path])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        return Array(try Data(contentsOf: URL(fileURLWithPath: url.path + ".gz")))
    }
}
