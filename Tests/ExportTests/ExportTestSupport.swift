import AWSWire
import Export
import Foundation
import TestSupport
import XCTest

/// Synthetic test data: emails only at example.invalid, hems derived from an index.
enum Synthetic {
    static let header = "hem,vup_id,email,domain,last_verified,source,updated_at"

    /// A 64-character lowercase hex hem that sorts by `index`.
    static func hem(_ index: Int, length: Int = 64) -> String {
        let digits = String(index, radix: 16)
        let body = String(repeating: "0", count: max(0, 16 - digits.count)) + digits
        return String((body + String(repeating: "ab", count: 32)).prefix(length))
    }

    static func email(_ index: Int) -> String { "user\(index)@example.invalid" }

    static func row(_ index: Int, vup: String = "", updatedAt: String = "2026-11-25T10:00:00Z") -> String {
        "\(hem(index)),\(vup),\(email(index)),example.invalid,2026-11-24T08:00:00Z,crm,\(updatedAt)"
    }

    static func csv(_ lines: [String]) -> [UInt8] { Array((lines.joined(separator: "\n") + "\n").utf8) }
}

/// Compresses with /bin/gzip (a real gzip member, CRC and all).
func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
    let directory = try TemporaryDirectory()
    let input = directory.file("in")
    try Data(bytes).write(to: input)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-c", "-n", input.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0)
    return Array(output)
}

/// What reading a whole source gave.
struct ReadResult {
    var rows: [ExportRow] = []
    var rejections: [RowRejection] = []
    var warnings: [String] = []
    var error: ExportError?
    var bytesRead: Int64 = 0
    var totalBytes: Int64?
}

/// Reads one source to its end (or its first error), checking that no text it produced
/// repeats a synthetic email.
func readAll(_ location: ExportLocation, client: AWSClient? = nil, batch: Int = 4096) async -> ReadResult {
    var result = ReadResult()
    do {
        let reader = try await ExportReader(location: location, client: client)
        result.warnings = reader.warnings
        result.totalBytes = reader.totalBytes
        while let records = try await reader.nextBatch(maxRecords: batch) {
            for record in records {
                switch record {
                case .row(let row): result.rows.append(row)
                case .rejected(let rejection): result.rejections.append(rejection)
                }
            }
        }
        result.bytesRead = reader.bytesRead
        result.warnings = reader.warnings
        XCTAssertEqual(reader.recordsRead, result.rows.count + result.rejections.count)
    } catch let error as ExportError {
        result.error = error
    } catch {
        XCTFail("unexpected error type: \(error)")
    }
    assertNoEmail(result.warnings.joined(separator: "\n"))
    for rejection in result.rejections { assertHoldsNoRowText(rejection) }
    if let error = result.error { assertNoEmail(error.description) }
    return result
}

/// Writes `bytes` to a file in `directory` and reads it.
func readBytes(_ bytes: [UInt8], named name: String = "export.csv", in directory: TemporaryDirectory) async throws
    -> ReadResult
{
    let url = directory.file(name)
    try Data(bytes).write(to: url)
    return await readAll(.file(path: url.path))
}

/// A rejection carries no text of the row: its hem only when it is a valid hem, its field only
/// as a known column name. (Its other members are a source name, a number and an enum.)
func assertHoldsNoRowText(_ rejection: RowRejection, file: StaticString = #filePath, line: UInt = #line) {
    if let hem = rejection.hem {
        XCTAssertNotNil(
            hem.wholeMatch(of: /[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}/), "not a valid hem: \(hem)", file: file, line: line)
    }
    if let field = rejection.field {
        let columns: Set = ["hem", "vup_id", "email", "domain", "last_verified", "source", "updated_at"]
        XCTAssertTrue(columns.contains(field), "not a column name: \(field)", file: file, line: line)
    }
}

func assertNoEmail(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(text.contains("@example.invalid"), "an email leaked: \(text)", file: file, line: line)
    XCTAssertFalse(text.contains("example.invalid,"), "a raw row leaked: \(text)", file: file, line: line)
}
