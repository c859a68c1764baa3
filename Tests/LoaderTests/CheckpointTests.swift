import Foundation
import TestSupport
import XCTest

@testable import Loader

/// The checkpoint file: what a rerun reads back, and when it refuses to trust it.
final class CheckpointTests: XCTestCase {
    func testCheckpoint_savedAndReadBack_perSource() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("ckpt").path
        let first = try CheckpointFile(path: path)
        XCTAssertNil(first.progress(for: "a.csv", size: 10))
        first.record(.line(4097), for: "a.csv", size: 10)
        first.record(.hem("0f34"), for: "b.csv since a.csv", size: nil)
        try first.save()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"), "written through a rename")

        let again = try CheckpointFile(path: path)
        XCTAssertEqual(again.progress(for: "a.csv", size: 10), .line(4097))
        XCTAssertEqual(again.progress(for: "b.csv since a.csv", size: nil), .hem("0f34"))
        XCTAssertNil(again.progress(for: "a.csv", size: 11), "a source of another size starts over")
        again.record(.done, for: "a.csv", size: 10)
        try again.save()
        XCTAssertEqual(try CheckpointFile(path: path).progress(for: "a.csv", size: 10), .done)
    }

    func testCheckpoint_notACheckpointFile_isAnError() throws {
        let dir = try TemporaryDirectory()
        try "hem,vup_id\n".write(to: dir.file("x"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CheckpointFile(path: dir.file("x").path)) { error in
            XCTAssertTrue(String(describing: error).contains("not a hemstream checkpoint"))
        }
    }
}
