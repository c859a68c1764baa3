import AWSWire
import Foundation
import JSON
import TestSupport
import XCTest

/// `hemstream load --reconcile`, multi-part exports and hems repeated within one load, run as the
/// real binary against moto_server.
///
/// Every table here is created WITHOUT a stream and kept small (at most a few hundred items):
/// moto 5.2.1 deep-copies every table a TransactWriteItems touches, stream records included,
/// once per action, and races under concurrent transactions; the stream is not under test here.
/// Commands that move hems run with `--concurrency 1` for the same reason.
final class ReconcileTests: XCTestCase, @unchecked Sendable {  // XCTest runs one method at a time
    var env: [String: String] = [:]
    var table = ""
    var dir: TemporaryDirectory!

    override func setUpWithError() throws {
        env = try MotoServer.sharedEnvironment()
        table = "rec-\(UUID().uuidString.prefix(8).lowercased())"
        dir = try TemporaryDirectory()
        try runAsync {
            let client = AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: self.env))
            _ = try await client.dynamoDB(
                "CreateTable",
                [
                    "TableName": .string(self.table),
                    "KeySchema": [
                        ["AttributeName": "vup_id", "KeyType": "HASH"], ["AttributeName": "hem", "KeyType": "RANGE"],
                    ],
                    "AttributeDefinitions": [
                        ["AttributeName": "vup_id", "AttributeType": "S"],
                        ["AttributeName": "hem", "AttributeType": "S"],
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                ])
        }
    }

    func load(_ args: [String]) throws -> ProcessResult {
        try Hemstream.run(["load", "--table", table, "--concurrency", "1"] + args, environment: env)
    }

    func summary(_ result: ProcessResult) throws -> JSON {
        try JSON.parse(result.stdoutLines.last ?? "")
    }

    func put(_ items: [[String: String]]) throws {
        try runAsync {
            let client = AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: self.env))
            for item in items {
                _ = try await client.dynamoDB(
                    "PutItem",
                    ["TableName": .string(self.table), "Item": .object(item.mapValues { ["S": .string($0)] })])
            }
        }
    }

    func assertTableEquals(_ export: ExportFixture, file: StaticString = #filePath, line: UInt = #line) throws {
        let scanned = try scanTable(table, environment: env)
        XCTAssertEqual(scanned.items, export.expectedItems, file: file, line: line)
        XCTAssertEqual(scanned.raw.count, export.rows.count, "one item per hem", file: file, line: line)
    }

    func assertNoEmails(_ texts: [String], file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            XCTAssertFalse(
                text.contains("@example.invalid"), "an email leaked: \(text.prefix(300))", file: file, line: line)
        }
    }

    /// The export split into `count` parts, row i in part i % count: each part sorted, their hem
    /// ranges interleaved (as Redshift UNLOAD with PARALLEL ON writes them).
    func writeParts(_ export: ExportFixture, count: Int, prefix: String) throws -> String {
        for part in 0..<count {
            let rows = export.rows.enumerated().filter { $0.offset % count == part }.map(\.element)
            try ExportFixture(rows: rows).write(to: dir.file("\(prefix)_000\(part)_part_00"))
        }
        return dir.file(prefix).path + "_*_part_00"
    }

    func testReconcile_damagedTable_endsEqualToTheExport_andASecondReconcileWritesNothing() throws {
        let export = ExportFixture.make(count: 90)
        try export.write(to: dir.file("day.csv"))
        XCTAssertEqual(try load([dir.file("day.csv").path]).exitCode, 0)
        // Damage as the seed's loader and other writers leave it: stale sentinels beside resolved
        // items, a hem under a second VUP, an item of a hem the export does not have, a changed item.
        let resolved = export.rows.filter { $0.vup != nil }
        var damage: [[String: String]] = []
        for row in resolved.prefix(5) {
            damage.append([
                "vup_id": "UNRESOLVED#" + row.hem.prefix(2), "hem": row.hem, "updated_at": "2026-11-20T06:00:00Z",
            ])
        }
        damage.append(["vup_id": "VUP-STALE", "hem": resolved[6].hem, "updated_at": "2026-11-20T06:00:00Z"])
        damage.append([
            "vup_id": "VUP-GONE", "hem": ExportFixture.hexHash("gone"), "updated_at": "2026-11-20T06:00:00Z",
        ])
        var changed = export.expectedItems[resolved[7].hem]!
        changed["domain"] = "drifted.invalid"
        damage.append(changed)
        try put(damage)
        XCTAssertEqual(try scanTable(table, environment: env).raw.count, 90 + 7)

        let first = try load(["--reconcile", dir.file("day.csv").path])
        XCTAssertEqual(first.exitCode, 0, first.stderr)
        try assertTableEquals(export)
        let s = try summary(first)["totals"]
        XCTAssertEqual(s?["scanned"], 97)
        XCTAssertEqual(s?["repaired"], 6, "five hems with a stale sentinel, one with a second VUP")
        XCTAssertEqual(s?["deleted"], 7, "the six extra items and the vanished hem")
        XCTAssertEqual(s?["items_written"], 1, "the drifted item")
        XCTAssertEqual(s?["unchanged"], 89)

        let second = try load(["--reconcile", dir.file("day.csv").path])
        XCTAssertEqual(second.exitCode, 0, second.stderr)
        XCTAssertEqual(try summary(second)["totals"]?["write_requests"], 0, second.stdout)
        try assertTableEquals(export)
        assertNoEmails([first.stdout, first.stderr, second.stdout, second.stderr])
    }

    func testReconcile_afterAFullLoadOfDay2OverDay1_tableEqualsDay2() throws {
        let day1 = ExportFixture.make(count: 120)
        let (day2, _, moves) = day1.nextDay()
        try day1.write(to: dir.file("day1.csv"))
        try day2.write(to: dir.file("day2.csv"))
        XCTAssertEqual(try load([dir.file("day1.csv").path]).exitCode, 0)
        XCTAssertEqual(try load([dir.file("day2.csv").path]).exitCode, 0)
        let drifted = try scanTable(table, environment: env)
        XCTAssertGreaterThan(drifted.raw.count, day2.rows.count, "a full load leaves stale items (the premise)")

        let dryRun = try load(["--reconcile", dir.file("day2.csv").path, "--dry-run"])
        XCTAssertEqual(dryRun.exitCode, 0, dryRun.stderr)
        let planned = dryRun.stdoutLines.dropLast()
        XCTAssertFalse(planned.isEmpty, "the dry run lists what it would write")
        XCTAssertTrue(
            planned.allSatisfy { $0.hasPrefix(#"{"put""#) || $0.hasPrefix(#"{"delete""#) || $0.hasPrefix(#"{"move""#) })
        XCTAssertEqual(try scanTable(table, environment: env).raw.count, drifted.raw.count, "a dry run writes nothing")

        let result = try load(["--reconcile", dir.file("day2.csv").path])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        try assertTableEquals(day2)
        XCTAssertGreaterThan(moves, 0)
        assertNoEmails([dryRun.stdout, result.stdout, result.stderr])
    }

    func testMultiPartExport_loadsWithPreviousAndWithReconcile_unsortedPartSorted() throws {
        let day1 = ExportFixture.make(count: 160)
        let (day2, _, _) = day1.nextDay()
        let day1Parts = try writeParts(day1, count: 4, prefix: "day1")
        let day2Parts = try writeParts(day2, count: 4, prefix: "day2")
        // One part of day 2 in reverse order: the external sort orders it.
        let reversed = dir.file("day2_0002_part_00")
        let lines = try String(contentsOf: reversed, encoding: .utf8).split(separator: "\n")
        try ([lines[0]] + lines.dropFirst().reversed()).joined(separator: "\n").appending("\n")
            .write(to: reversed, atomically: true, encoding: .utf8)

        let full = try load([day1Parts])
        XCTAssertEqual(full.exitCode, 0, full.stderr)
        try assertTableEquals(day1)

        let incremental = try load([day2Parts, "--previous", day1Parts, "--sort-buffer-mb", "1"])
        XCTAssertEqual(incremental.exitCode, 0, incremental.stderr)
        try assertTableEquals(day2)
        let s = try summary(incremental)["totals"]
        XCTAssertEqual(s?["rows_read"], .int(day2.rows.count))
        XCTAssertEqual(s?["rejected_total"], 0)

        // Back to day 1 by reconcile, from its parts.
        let reconcile = try load(["--reconcile", day1Parts])
        XCTAssertEqual(reconcile.exitCode, 0, reconcile.stderr)
        try assertTableEquals(day1)
        XCTAssertEqual(try summary(reconcile)["totals"]?["scanned"], .int(day2.rows.count))

        // --assume-sorted trusts the parts, and stops at the reversed one, naming it and the line.
        let strict = try load(["--reconcile", day2Parts, "--assume-sorted"])
        XCTAssertEqual(strict.exitCode, 1, strict.stderr)
        XCTAssertEqual(strict.stderr.split(separator: "\n").count, 1, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("day2_0002_part_00:3:"), strict.stderr)
        XCTAssertTrue(strict.stderr.contains("out of order"), strict.stderr)
        assertNoEmails([incremental.stdout, reconcile.stdout, strict.stdout, strict.stderr])
    }

    func testFullLoad_hemMovedWithinOneFile_endsAsOneItem_theLastRows() throws {
        let export = ExportFixture.make(count: 30)
        // The same hems again further down the file: one resolved, one reassigned, one unresolved,
        // one repeated unchanged; and one hem three times.
        var rows = export.rows
        let unresolved = export.rows.filter { $0.vup == nil }
        let resolvedRows = export.rows.filter { $0.vup != nil }
        var later: [ExportFixture.Row] = []
        var a = unresolved[0]
        a.vup = "VUP-LATER-A"
        later.append(a)
        var b = resolvedRows[0]
        b.vup = "VUP-LATER-B"
        later.append(b)
        var c = resolvedRows[1]
        c.vup = nil
        later.append(c)
        later.append(resolvedRows[2])
        var d1 = resolvedRows[3]
        d1.vup = "VUP-D1"
        var d2 = resolvedRows[3]
        d2.vup = "VUP-D2"
        d2.updatedAt = "2026-11-25T06:00:00Z"
        later += [d1, d2]
        rows += later
        try ExportFixture(rows: rows).write(to: dir.file("moves.csv"))

        let result = try load([dir.file("moves.csv").path])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        var expected = export
        for row in later {
            expected.rows[expected.rows.firstIndex { $0.hem == row.hem }!] = row
        }
        try assertTableEquals(expected)
        XCTAssertEqual(try summary(result)["totals"]?["repeated_hems"], 5)
        assertNoEmails([result.stdout, result.stderr])
    }

    // A wrong prefix, or an UNLOAD whose every slice came out empty, must not empty the table.
    func testReconcile_withAnExportOfNoRows_refusesAndWritesNothing_unlessAllowed() throws {
        let export = ExportFixture.make(count: 20, salt: "empty")
        let day1 = dir.file("day1.csv")
        try export.write(to: day1)
        XCTAssertEqual(try load([day1.path]).exitCode, 0)
        for part in ["empty_0000_part_00", "empty_0001_part_00"] { try Data().write(to: dir.file(part)) }
        let parts = dir.file("empty").path + "_*_part_00"

        let refused = try load(["--reconcile", parts])
        XCTAssertEqual(refused.exitCode, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("has no rows"), refused.stderr)
        try assertTableEquals(export)
        let refusedPrevious = try load(["--previous", day1.path, parts])
        XCTAssertEqual(refusedPrevious.exitCode, 64, refusedPrevious.stderr)
        try assertTableEquals(export)

        let allowed = try load(["--reconcile", "--allow-empty-export", parts])
        XCTAssertEqual(allowed.exitCode, 0, allowed.stderr)
        XCTAssertEqual(try summary(allowed)["totals"]?["deleted"]?.intValue, 20)
        XCTAssertEqual(try scanTable(table, environment: env).raw.count, 0)
    }

}
