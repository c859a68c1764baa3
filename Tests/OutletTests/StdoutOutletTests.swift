import Foundation
@testable import Events
import Outlet
import XCTest

/// `--sink stdout`: what an audit reading the reader's stdout relies on.
final class StdoutOutletTests: XCTestCase {
    func testStdoutOutlet_writesEachEventAsOneLine_andNeverOneHoldingAnAddress() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let outlet = StdoutOutlet(descriptor: fds[1])
        let hem = String(repeating: "ab", count: 32)
        let first = Array(#"{"id":"e1","subject":"\#(hem)","type":"hem.updated"}"#.utf8)
        let second = Array(#"{"id":"e2","subject":"\#(hem)","type":"hem.deleted"}"#.utf8)
        let carrying = Array(#"{"id":"e3","data":{"after":"kim.roe@example.invalid"}}"#.utf8)
        let fields = EventScanner.Fields(key: 22..<86, id: 7..<9, type: 96..<107, specversion: nil)

        XCTAssertEqual(try outlet.send(event: first, fields, tag: 1), .acknowledged)
        XCTAssertEqual(try outlet.send(event: carrying, fields, tag: 2), .blockedPII)
        XCTAssertEqual(try outlet.send(key: [], value: carrying, headers: nil, tag: 3, toDLQ: true), .blockedPII)
        XCTAssertEqual(
            try outlet.send(key: Array(hem.utf8), value: second, headers: nil, tag: 4, toDLQ: false), .acknowledged)
        close(fds[1])
        let written = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
        XCTAssertEqual(Array(written), first + [10] + second + [10], "each event whole, on a line of its own")
        XCTAssertFalse(written.contains(UInt8(ascii: "@")), "no address reached stdout")
    }

    func testStdoutOutlet_whenStdoutCannotBeWritten_throwsAnErrorNamingStdout() {
        let outlet = StdoutOutlet(descriptor: -1)
        XCTAssertThrowsError(try outlet.send(key: [], value: Array(#"{"id":"e1"}"#.utf8), headers: nil, tag: 1, toDLQ: false)) {
            XCTAssertEqual("\($0)", "cannot write events to stdout: Bad file descriptor")
        }
    }
}
