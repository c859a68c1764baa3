import Foundation
import TestSupport
import XCTest

/// `--rejects FILE` is the record of the rows that were not loaded: when it cannot be written the
/// load fails with one line naming the file, never a trap.
final class RejectsFileTests: XCTestCase {
    func testLoad_whenRejectsFileCannotBeWritten_failsNamingTheFile() throws {
        let dir = try TemporaryDirectory()
        let export = dir.url.appendingPathComponent("day1.csv")
        let header = "hem,vup_id,email,domain,source,last_verified,updated_at\n"
        try Data((header + "XYZ123,VUP-1,,,,,2026-11-24T06:00:00Z\n").utf8).write(to: export)
        // /dev/full: every write fails with ENOSPC, as on a full disk.
        let result = try Hemstream.run(
            ["load", "--dry-run", export.path, "--rejects", "/dev/full"],
            environment: ["AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"])
        XCTAssertEqual(result.exitCode, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("/dev/full: cannot write the rejects file: No space left on device"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        for trace in ["Fatal error", "Stack dump", "Backtrace", "Current stack trace"] {
            XCTAssertFalse(result.stderr.contains(trace), result.stderr)
        }
    }
}
