import Foundation
@testable import Events
import Outlet
import Synchronization
import XCTest

/// `--sink stdout`: what an audit reading the reader's stdout relies on, and what the
/// checkpoint relies on (a line is acknowledged only once it is written).
final class StdoutOutletTests: XCTestCase {
    let hem = String(repeating: "ab", count: 32)
    let fields = EventScanner.Fields(key: 22..<86, id: 7..<9, type: 96..<107, specversion: nil)

    func event(_ n: Int) -> [UInt8] { Array(#"{"id":"e\#(n)","subject":"\#(hem)","type":"hem.updated"}"#.utf8) }

    /// A file to write to, its descriptor, and what it holds.
    func file() throws -> (fd: Int32, contents: () -> [UInt8]) {
        let path = NSTemporaryDirectory() + "stdout-\(UUID().uuidString)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        addTeardownBlock {
            close(fd)
            unlink(path)
        }
        return (fd, { Array(FileManager.default.contents(atPath: path) ?? Data()) })
    }

    func testLines_areWrittenWholeAtTheBatchEnd_acknowledgedOnlyThen_andNeverOneHoldingAnAddress() throws {
        let (fd, contents) = try file()
        let acknowledged = Mutex<[UInt64]>([])
        let outlet = StdoutOutlet(descriptor: fd) { tag in acknowledged.withLock { $0.append(tag) } }
        let carrying = Array(#"{"id":"e3","data":{"after":"kim.roe@example.invalid"}}"#.utf8)

        XCTAssertEqual(try outlet.send(event: event(1), fields, tag: 1), .enqueued)
        XCTAssertEqual(try outlet.send(event: carrying, fields, tag: 2), .blockedPII)
        XCTAssertEqual(try outlet.send(key: [], value: carrying, headers: nil, tag: 3, toDLQ: true), .blockedPII)
        XCTAssertEqual(try outlet.send(key: Array(hem.utf8), value: event(4), headers: nil, tag: 4, toDLQ: false), .enqueued)
        XCTAssertEqual(contents(), [], "nothing written before the batch ends")
        XCTAssertEqual(acknowledged.withLock { $0 }, [], "nothing acknowledged before it is written")

        try outlet.endOfBatch()
        XCTAssertEqual(contents(), event(1) + [10] + event(4) + [10], "each event whole, on a line of its own")
        XCTAssertEqual(acknowledged.withLock { $0 }, [1, 4], "written lines acknowledged, in order, each once")
        try outlet.endOfBatch()
        XCTAssertEqual(acknowledged.withLock { $0 }, [1, 4])
        XCTAssertFalse(contents().contains(UInt8(ascii: "@")), "no address reached stdout")
    }

    func testAMegabyteWaiting_isWrittenBeforeTheBatchEnds() throws {
        let (fd, contents) = try file()
        let acknowledged = Mutex(0)
        let outlet = StdoutOutlet(descriptor: fd) { _ in acknowledged.withLock { $0 += 1 } }
        let line = event(1).count + 1
        let lines = (1 << 20) / line + 1
        for n in 0..<lines { _ = try outlet.send(event: event(1), fields, tag: UInt64(n)) }
        XCTAssertEqual(contents().count, lines * line, "a batch does not hold more than a megabyte back")
        XCTAssertEqual(acknowledged.withLock { $0 }, lines)
    }

    func testStdoutThatCannotBeWritten_throwsAnErrorNamingStdout_andAcknowledgesNothing() throws {
        let acknowledged = Mutex(0)
        let outlet = StdoutOutlet(descriptor: -1) { _ in acknowledged.withLock { $0 += 1 } }
        XCTAssertEqual(try outlet.send(event: event(1), fields, tag: 1), .enqueued)
        XCTAssertThrowsError(try outlet.endOfBatch()) {
            XCTAssertEqual("\($0)", "cannot write events to stdout: Bad file descriptor")
        }
        XCTAssertEqual(acknowledged.withLock { $0 }, 0)
    }
}
