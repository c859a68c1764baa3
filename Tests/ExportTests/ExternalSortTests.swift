import Export
import Foundation
import TestSupport
import XCTest

final class ExternalSortTests: XCTestCase {
    /// Records with random keys, many runs spilled: the output is in key order, equal keys in the
    /// order they were added, every record once; the run files are gone from the directory.
    func testSorter_spillsRuns_returnsKeyOrder_equalKeysInInsertionOrder_andLeavesNoFiles() throws {
        let directory = try TemporaryDirectory()
        let sorter = ExternalSorter(directory: directory.url.path, memoryLimit: 64 * 1024)
        var generator = SystemRandomNumberGenerator()
        var expected: [(key: String, sequence: Int)] = []
        for sequence in 0..<20_000 {
            let key = Synthetic.hem(Int.random(in: 0..<5_000, using: &generator))
            expected.append((key, sequence))
            try sorter.add(key: key) { out in
                withUnsafeBytes(of: UInt32(sequence).littleEndian) { out.append(contentsOf: $0) }
            }
        }
        XCTAssertGreaterThan(sorter.spilledRuns, 10, "the memory limit forces runs to disk")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.url.path), [], "runs are unlinked")
        let records = try sorter.finish()
        var got: [(key: String, sequence: Int)] = []
        while let record = try records.next({ key, payload in
            (String(decoding: key, as: UTF8.self), Int(payload.loadUnaligned(as: UInt32.self).littleEndian))
        }) {
            got.append(record)
        }
        let sorted = expected.sorted { $0.key != $1.key ? $0.key < $1.key : $0.sequence < $1.sequence }
        XCTAssertEqual(got.map(\.key), sorted.map(\.key))
        XCTAssertEqual(got.map(\.sequence), sorted.map(\.sequence))
    }

    /// Export records through the binary record format: a row and a rejection come back equal.
    func testSorter_exportRecords_roundTrip() throws {
        let sorter = ExternalSorter(memoryLimit: 64 * 1024)
        let row = ExportRow(
            hem: Synthetic.hem(2), vupID: "VUP-1", email: Synthetic.email(2), domain: nil, source: "crm, \"x\"",
            lastVerified: nil, updatedAt: "2026-11-25T10:00:00Z", line: 7)
        let rejection = RowRejection(
            source: "p1", line: 9, reason: .invalidTimestamp, hem: Synthetic.hem(1), field: "updated_at")
        let loose = RowRejection(source: "p0", line: 3, reason: .invalidHem, hem: nil, field: "hem")
        try sorter.add(.row(row), part: 0)
        try sorter.add(.rejected(rejection), part: 1)
        try sorter.add(.rejected(loose), part: 0)
        let records = try sorter.finish()
        let names = ["p0", "p1"]
        guard case .loose(let first)? = try records.nextItem(partNames: names) else { return XCTFail() }
        XCTAssertEqual(first, loose)
        guard case .keyed(_, .rejected(let second), 1)? = try records.nextItem(partNames: names) else {
            return XCTFail()
        }
        XCTAssertEqual(second, rejection)
        guard case .keyed(_, .row(let third), 0)? = try records.nextItem(partNames: names) else { return XCTFail() }
        XCTAssertEqual(third, row)
        XCTAssertNil(try records.nextItem(partNames: names))
    }
}
