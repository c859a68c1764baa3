import Export
import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

final class GzipReadingTests: XCTestCase {
    private func lines(_ range: Range<Int>, header: Bool = true) -> [UInt8] {
        Synthetic.csv((header ? [Synthetic.header] : []) + range.map { Synthetic.row($0) })
    }

    func testGzip_isDetectedByItsBytes_whateverTheName() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(try gzip(lines(0..<10)), named: "export.csv", in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 10)
        XCTAssertLessThan(result.bytesRead, Int64(lines(0..<10).count))
    }

    func testPlainCSV_namedGz_isReadAsPlain() async throws {
        let directory = try TemporaryDirectory()
        let result = try await readBytes(lines(0..<10), named: "export.csv.gz", in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 10)
    }

    func testMultiMemberGzip_isReadToTheEnd() async throws {
        let directory = try TemporaryDirectory()
        // As `cat a.gz b.gz c.gz`: the header in the first member, rows spread over three.
        let bytes =
            try gzip(lines(0..<5)) + gzip(lines(5..<4000, header: false)) + gzip(lines(4000..<4003, header: false))
        let result = try await readBytes(bytes, named: "multi.gz", in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.map(\.hem), (0..<4003).map { Synthetic.hem($0) })
        XCTAssertEqual(result.bytesRead, Int64(bytes.count))
    }

    func testMemberBoundary_insideARow_isSeamless() async throws {
        let directory = try TemporaryDirectory()
        let text = lines(0..<3)
        let cut = text.count - 17
        let bytes = try gzip(Array(text[..<cut])) + gzip(Array(text[cut...]))
        let result = try await readBytes(bytes, in: directory)
        XCTAssertEqual(result.rows.count, 3)
        XCTAssertTrue(result.rejections.isEmpty)
    }

    func testZeroPaddingAfterTheLastMember_isIgnored_butOtherTrailingBytesAreAnError() async throws {
        let directory = try TemporaryDirectory()
        let member = try gzip(lines(0..<10))
        var result = try await readBytes(member + [UInt8](repeating: 0, count: 512), named: "padded.gz", in: directory)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 10)
        result = try await readBytes(member + [0, 0, 7], named: "junk.gz", in: directory)
        XCTAssertNotNil(result.error)
        result = try await readBytes(member + Array("garbage".utf8), named: "garbage.gz", in: directory)
        let error = try XCTUnwrap(result.error)
        XCTAssertTrue(error.description.contains("garbage.gz"), error.description)
    }

    func testTruncatedGzip_isAnErrorNamingTheSource() async throws {
        let directory = try TemporaryDirectory()
        let whole = try gzip(lines(0..<2000))
        let result = try await readBytes(Array(whole[..<(whole.count / 2)]), named: "cut.csv.gz", in: directory)
        let error = try XCTUnwrap(result.error)
        XCTAssertTrue(error.description.contains("cut.csv.gz"), error.description)
        XCTAssertTrue(error.description.contains("truncated"), error.description)
        XCTAssertLessThan(result.rows.count, 2000)
    }

    func testGzipCutInsideTheTrailer_isTruncated() async throws {
        let directory = try TemporaryDirectory()
        let whole = try gzip(lines(0..<10))
        let result = try await readBytes(Array(whole.dropLast(3)), named: "cut.gz", in: directory)
        XCTAssertTrue(try XCTUnwrap(result.error).description.contains("truncated"))
    }

    func testBadCRC_isAnErrorNamingTheSource() async throws {
        let directory = try TemporaryDirectory()
        var bytes = try gzip(lines(0..<100))
        bytes[bytes.count - 8] ^= 0xff  // first byte of the CRC-32 in the trailer
        let result = try await readBytes(bytes, named: "crc.gz", in: directory)
        let error = try XCTUnwrap(result.error)
        XCTAssertTrue(error.description.contains("crc.gz"), error.description)
        XCTAssertTrue(error.description.contains("CRC"), error.description)
    }

    func testCorruptDeflateData_isAnError() async throws {
        let directory = try TemporaryDirectory()
        var bytes = try gzip(lines(0..<500))
        for i in 20..<60 { bytes[i] = 0xff }
        let result = try await readBytes(bytes, named: "corrupt.gz", in: directory)
        XCTAssertNotNil(result.error)
    }

    func testRandomBytes_giveAClearError_notACrash() async throws {
        let directory = try TemporaryDirectory()
        var generator = SplitMix(seed: 42)
        for size in [1, 2, 100, 70_000, 1_000_000] {
            var bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b { bytes[0] = 0 }
            let result = try await readBytes(bytes, named: "random.bin", in: directory)
            let error = try XCTUnwrap(result.error, "size \(size)")
            XCTAssertTrue(error.description.hasPrefix(directory.file("random.bin").path), error.description)
            XCTAssertFalse(error.description.contains("\n"))
        }
        // Random bytes behind a gzip magic: corrupt gzip.
        var bytes = [0x1f, 0x8b] + (0..<5000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[2] = 8
        let result = try await readBytes(bytes, named: "random.gz", in: directory)
        XCTAssertNotNil(result.error)
    }

    func testQuotedRandomBytes_stopAtTheHeaderLimit() async throws {
        let directory = try TemporaryDirectory()
        let bytes = Array("\"".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 2_000_000)
        let result = try await readBytes(bytes, in: directory)
        XCTAssertTrue(try XCTUnwrap(result.error).description.contains("header"))
    }

    /// Peak memory of the same read is measured in a process of its own: LoadCommandTests.
    func testLargeMultiMemberInput_isReadInOrderToTheEnd() async throws {
        let directory = try TemporaryDirectory()
        let url = directory.file("large.csv.gz")
        // 200k rows, written as 20 gzip members so the test never holds the whole text.
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        for part in 0..<20 {
            let range = (part * 10_000)..<((part + 1) * 10_000)
            try handle.write(contentsOf: try gzip(lines(range, header: part == 0)))
        }
        try handle.close()
        let reader = try await ExportReader(location: .file(path: url.path), client: nil)
        var rows = 0
        var previous = ""
        while let batch = try await reader.nextBatch() {
            for case .row(let row) in batch {
                XCTAssertLessThan(previous, row.hem)
                previous = row.hem
                rows += 1
            }
        }
        XCTAssertEqual(rows, 200_000)
        XCTAssertEqual(reader.recordsRead, 200_000)
        XCTAssertEqual(reader.bytesRead, reader.totalBytes)
    }
}

/// A seeded generator, so a failure with random bytes can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
