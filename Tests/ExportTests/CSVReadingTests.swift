import Export
import Foundation
import TestSupport
import XCTest

final class CSVReadingTests: XCTestCase {
    func testQuotedFields_withCommasDoubledQuotesAndNewlines_areUnescaped() async throws {
        let directory = try TemporaryDirectory()
        let text =
            Synthetic.header + "\n"
            + "\(Synthetic.hem(1)),vup-1,\"a@example.invalid\",\"exa,mple.invalid\",,\"say \"\"hi\"\"\",2026-11-25T10:00:00Z\n"
            + "\(Synthetic.hem(2)),vup-2,,,,\"multi\nline\r\nsource\",2026-11-25T10:00:00Z\n"
            + "\(Synthetic.hem(3)),\"\",,,,\"\",2026-11-25T10:00:00Z\n"
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 3)
        XCTAssertEqual(result.rows[0].domain, "exa,mple.invalid")
        XCTAssertEqual(result.rows[0].source, "say \"hi\"")
        XCTAssertEqual(result.rows[0].email, "a@example.invalid")
        XCTAssertEqual(result.rows[1].source, "multi\nline\r\nsource")
        XCTAssertEqual(result.rows[2].source, nil)
        // Physical lines: header 1, rows on 2, 3 (spanning 3-5) and 6.
        XCTAssertEqual(result.rows.map(\.line), [2, 3, 6])
    }

    func testCRLFLineEndingsAndByteOrderMark_areAccepted() async throws {
        let directory = try TemporaryDirectory()
        let text =
            "\u{FEFF}" + [Synthetic.header, Synthetic.row(1), Synthetic.row(2)].joined(separator: "\r\n") + "\r\n"
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.map(\.hem), [Synthetic.hem(1), Synthetic.hem(2)])
        XCTAssertEqual(result.rows[0].updatedAt, "2026-11-25T10:00:00Z")
        XCTAssertEqual(result.rows[0].source, "crm")
        XCTAssertTrue(result.warnings.isEmpty)
    }

    func testByteOrderMark_beforeAQuotedHeader_isSkipped() async throws {
        let directory = try TemporaryDirectory()
        let text = "\u{FEFF}\"hem\",\"updated_at\"\n\(Synthetic.hem(1)),2026-11-25T10:00:00Z\n"
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 1)
    }

    func testColumns_inAnyOrder_areFoundByName() async throws {
        let directory = try TemporaryDirectory()
        let text = """
            updated_at,Source,email,HEM,domain,vup_id,last_verified
            2026-11-25T10:00:00Z,crm,u1@example.invalid,\(Synthetic.hem(1)),example.invalid,vup-9,2026-01-02T03:04:05Z

            """
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(
            result.rows,
            [
                ExportRow(
                    hem: Synthetic.hem(1), vupID: "vup-9", email: "u1@example.invalid", domain: "example.invalid",
                    source: "crm", lastVerified: "2026-01-02T03:04:05Z", updatedAt: "2026-11-25T10:00:00Z", line: 2)
            ])
    }

    func testOnlyHemAndUpdatedAt_areRequiredColumns() async throws {
        let directory = try TemporaryDirectory()
        let text = "hem,updated_at\n\(Synthetic.hem(1)),2026-11-25T10:00:00Z\n"
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.first?.vupID, "UNRESOLVED#00")
        XCTAssertNil(result.rows.first?.email)
    }

    func testUnknownColumns_giveOneWarningEach_andAreIgnored() async throws {
        let directory = try TemporaryDirectory()
        var lines = ["hem,extra_score,vup_id,updated_at,x@example.invalid"]
        for i in 0..<50 { lines.append("\(Synthetic.hem(i)),0.5,vup-\(i),2026-11-25T10:00:00Z,\(Synthetic.email(i))") }
        let result = try await readBytes(Synthetic.csv(lines), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 50)
        XCTAssertEqual(result.warnings.count, 2)
        XCTAssertTrue(result.warnings[0].contains("extra_score"))
        // A column name that looks like data is not repeated.
        XCTAssertTrue(result.warnings[1].contains("column 5"))
    }

    func testMissingHemColumn_isFatal_andNamesTheSource() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(
            Synthetic.csv(["vup_id,updated_at", "vup-1,2026-11-25T10:00:00Z"]), named: "nohem.csv", in: directory)
        let error = try XCTUnwrap(result.error)
        XCTAssertTrue(error.description.contains("nohem.csv"))
        XCTAssertTrue(error.description.contains("hem"))
        XCTAssertEqual(error.line, 1)
    }

    func testHeaderlessFile_isFatal_withoutRepeatingItsFirstRow() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(Synthetic.csv([Synthetic.row(1), Synthetic.row(2)]), in: directory)
        let error = try XCTUnwrap(result.error)
        XCTAssertFalse(error.description.contains(Synthetic.hem(1)))
    }

    func testMissingUpdatedAtColumn_isFatal() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(Synthetic.csv(["hem,vup_id", "\(Synthetic.hem(1)),vup-1"]), in: directory)
        let error = try XCTUnwrap(result.error)
        XCTAssertTrue(error.description.contains("updated_at"))
    }

    // UNLOAD writes a part for every slice, also for one without rows: such a part is 0 rows
    // and a warning, never a failure of the load.
    func testEmptyFile_givesNoRecords_andAWarning() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes([], in: directory)
        XCTAssertNil(result.error)
        XCTAssertTrue(result.rows.isEmpty && result.rejections.isEmpty)
        XCTAssertEqual(result.warnings, ["empty source (0 bytes): 0 rows"])
    }

    func testGzipOfNothing_givesNoRecords_andAWarning() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(try gzip([]), named: "0000_part_00.gz", in: directory)
        XCTAssertNil(result.error)
        XCTAssertTrue(result.rows.isEmpty && result.rejections.isEmpty)
        XCTAssertEqual(result.warnings, ["empty source (a gzip of nothing): 0 rows"])
    }

    func testHeaderOnly_givesNoRecords_andAWarning() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(Array(Synthetic.header.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertTrue(result.rows.isEmpty && result.rejections.isEmpty)
        XCTAssertEqual(result.warnings, ["a header row and no data rows: 0 rows"])
    }

    func testLastRowWithoutLineBreak_andBlankLines_areHandled() async throws {
        let directory = try TemporaryDirectory()
        let text = Synthetic.header + "\n\n" + Synthetic.row(1) + "\n\n" + Synthetic.row(2)
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.map(\.line), [3, 5])
    }

    func testUnterminatedQuoteAtEnd_isFatal_namingTheLine() async throws {
        let directory = try TemporaryDirectory()
        let text = Synthetic.header + "\n" + Synthetic.row(1) + "\n\(Synthetic.hem(2)),v,\"open quote@example.invalid\n"
        let result = try await readBytes(Array(text.utf8), in: directory)
        XCTAssertEqual(result.rows.count, 1)
        let error = try XCTUnwrap(result.error)
        XCTAssertEqual(error.line, 3)
    }

    func testRecordsSplitAcrossTinyBatches_areAllRead() async throws {
        let directory = try TemporaryDirectory()
        let lines = [Synthetic.header] + (0..<100).map { Synthetic.row($0) }
        let url = directory.file("small.csv")
        try Data(Synthetic.csv(lines)).write(to: url)
        let result = await readAll(.file(path: url.path), batch: 7)
        XCTAssertEqual(result.rows.map(\.hem), (0..<100).map { Synthetic.hem($0) })
        XCTAssertEqual(result.bytesRead, Int64(Synthetic.csv(lines).count))
        XCTAssertEqual(result.totalBytes, result.bytesRead)
    }

    func testCRLFAndQuotedFields_acrossManyChunkBoundaries_parseTheSame() async throws {
        // ~5 MB, so 256 KiB chunks cut through CRLF pairs, quotes and doubled quotes alike.
        let directory = try TemporaryDirectory()
        var text = Synthetic.header + "\r\n"
        for i in 0..<30_000 {
            text += "\"\(Synthetic.hem(i))\",vup-\(i),\"\(Synthetic.email(i))\",\"a,\"\"b\"\"\r\nc\",,"
            text += "\"src \(i % 97)\",2026-11-25T10:00:00+01:00\r\n"
        }
        let url = directory.file("crlf.csv")
        try Data(text.utf8).write(to: url)
        for (name, bytes) in [("crlf.csv", Array(text.utf8)), ("crlf.csv.gz", try gzip(Array(text.utf8)))] {
            try Data(bytes).write(to: directory.file(name))
            let result = await readAll(.file(path: directory.file(name).path))
            XCTAssertNil(result.error)
            XCTAssertTrue(result.rejections.isEmpty)
            XCTAssertEqual(result.rows.count, 30_000)
            for (i, row) in result.rows.enumerated() where i % 1000 == 0 || i == 29_999 {
                XCTAssertEqual(row.hem, Synthetic.hem(i))
                XCTAssertEqual(row.domain, "a,\"b\"\r\nc")
                XCTAssertEqual(row.source, "src \(i % 97)")
                XCTAssertEqual(row.updatedAt, "2026-11-25T09:00:00Z")
                XCTAssertEqual(row.line, 2 + 2 * i)
            }
            XCTAssertTrue(result.rows.allSatisfy { $0.domain == "a,\"b\"\r\nc" && $0.vupID.hasPrefix("vup-") })
        }
    }
}
