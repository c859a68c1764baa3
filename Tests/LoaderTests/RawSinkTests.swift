import Export
import XCTest

@testable import Loader

/// The bulk body writer checks its room before each write: a size counted wrong gives up on the
/// fast path (the caller re-encodes with JSONWriter) instead of writing past the buffer.
final class RawSinkTests: XCTestCase {
    func testRawSink_whenAWriteWouldPassTheEnd_writesNothingPastItAndIsIncomplete() {
        let capacity = 24
        let guardBytes = 64
        let memory = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity + guardBytes)
        defer { memory.deallocate() }
        memory.initialize(repeating: 0xEE, count: capacity + guardBytes)

        var sink = RawSink(cursor: memory, end: memory + capacity)
        sink.fragment(RawFragment.vupID)  // 16 bytes: fits
        XCTAssertTrue(sink.complete)
        sink.string("VUP-0123456789")  // 16 more: does not
        XCTAssertFalse(sink.complete)
        sink.byte(0x7D)
        sink.fragment(RawFragment.close)
        sink.string("x")
        XCTAssertFalse(sink.complete)
        XCTAssertLessThanOrEqual(sink.cursor - memory, capacity)
        XCTAssertTrue((capacity..<(capacity + guardBytes)).allSatisfy { memory[$0] == 0xEE }, "wrote past the end")
    }

    func testRawBatchWrite_whenEscapesOutgrowTheSlack_fallsBackWithoutWritingPastTheBody() throws {
        let hem = "0f343b0931126a20f133d67c2b018a3b"
        // Every quote doubles when escaped: far more than any slack.
        let quoted = String(repeating: "\"", count: 4000)
        let rows: [WriteOperation] = (0..<25).map {
            .put(ExportRow(hem: hem, vupID: "VUP-\($0)", source: quoted, updatedAt: "2026-11-24T06:00:00Z", line: $0 + 2))
        }
        XCTAssertNil(RequestBodies.rawBatchWrite(table: "t", rows, slack: 8))
        XCTAssertEqual(RequestBodies.batchWrite(table: "t", rows), RequestBodies.writerBatchWrite(table: "t", rows))
    }
}
