import Export
import Foundation
import TestSupport
import XCTest

final class RowValidationTests: XCTestCase {
    /// Reads a file with the standard header and these data lines.
    private func read(_ lines: [String]) async throws -> ReadResult {
        let directory = try TemporaryDirectory()
        return try await readBytes(Synthetic.csv([Synthetic.header] + lines), named: "rows.csv", in: directory)
    }

    private func onlyRejection(_ lines: [String]) async throws -> RowRejection {
        let result = try await read(lines)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.rows.count, 0)
        XCTAssertEqual(result.rejections.count, 1)
        let rejection = try XCTUnwrap(result.rejections.first)
        XCTAssertEqual(rejection.source.hasSuffix("rows.csv"), true)
        XCTAssertEqual(rejection.line, 2)
        return rejection
    }

    func testValidRow_isTrimmed_andEmptyOptionalFieldsAreNil() async throws {
        let line = "  \(Synthetic.hem(1))  , vup-1 , u1@example.invalid ,  , , crm ,2026-11-25T10:00:00Z "
        let result = try await read([line])
        XCTAssertEqual(
            result.rows,
            [
                ExportRow(
                    hem: Synthetic.hem(1), vupID: "vup-1", email: "u1@example.invalid", domain: nil, source: "crm",
                    lastVerified: nil, updatedAt: "2026-11-25T10:00:00Z", line: 2)
            ])
    }

    func testHemsOf32And40And64HexCharacters_areAccepted() async throws {
        let lines = [32, 40, 64].map { "\(Synthetic.hem(7, length: $0)),,,,,,2026-11-25T10:00:00Z" }
        let result = try await read(lines)
        XCTAssertEqual(result.rows.map(\.hem.count), [32, 40, 64])
        XCTAssertTrue(result.rejections.isEmpty)
    }

    func testInvalidHem_isRejected_withoutTheHem() async throws {
        let bad = [
            String(repeating: "g", count: 64),  // not hex
            String(Synthetic.hem(1).prefix(63)),  // wrong length
            Synthetic.hem(1).uppercased(),  // uppercase hex is rejected (see README)
            "u@example.invalid",  // columns swapped upstream: the email where the hem belongs
            "",
        ]
        for hem in bad {
            let rejection = try await onlyRejection(["\(hem),vup-1,u@example.invalid,,,,2026-11-25T10:00:00Z"])
            XCTAssertEqual(rejection.reason, .invalidHem)
            XCTAssertNil(rejection.hem)
            XCTAssertEqual(rejection.field, "hem")
        }
    }

    func testEmptyVupID_getsTheShardedSentinel() async throws {
        let hem = "ab" + String(Synthetic.hem(3).dropFirst(2))
        let result = try await read([
            "\(hem),  ,,,,,2026-11-25T10:00:00Z",
            "\(hem.replacingOccurrences(of: "ab", with: "cd")),UNRESOLVED#cd,,,,,2026-11-25T10:00:00Z",
        ])
        XCTAssertEqual(result.rows.map(\.vupID), ["UNRESOLVED#ab", "UNRESOLVED#cd"])
    }

    func testSentinelOfAnotherShard_isRejected_asSentinelMismatch() async throws {
        let rejection = try await onlyRejection(["\(Synthetic.hem(1)),UNRESOLVED#ff,,,,,2026-11-25T10:00:00Z"])
        XCTAssertEqual(rejection.reason, .sentinelMismatch)
        XCTAssertEqual(rejection.hem, Synthetic.hem(1))
        XCTAssertEqual(rejection.field, "vup_id")
    }

    func testVupIDOver1024Bytes_isRejected_asInvalidVupID() async throws {
        let long = String(repeating: "v", count: 1025)
        let rejection = try await onlyRejection(["\(Synthetic.hem(1)),\(long),,,,,2026-11-25T10:00:00Z"])
        XCTAssertEqual(rejection.reason, .invalidVupID)
        XCTAssertEqual(rejection.field, "vup_id")
        let result = try await read(["\(Synthetic.hem(1)),\(long.dropLast()),,,,,2026-11-25T10:00:00Z"])
        XCTAssertEqual(result.rows.count, 1)
    }

    func testMissingUpdatedAt_isRejected() async throws {
        let rejection = try await onlyRejection(["\(Synthetic.hem(1)),vup-1,u@example.invalid,,,,  "])
        XCTAssertEqual(rejection.reason, .missingUpdatedAt)
        XCTAssertEqual(rejection.hem, Synthetic.hem(1))
        XCTAssertEqual(rejection.field, "updated_at")
    }

    func testTimestampWithoutZone_isRejected_namingTheField() async throws {
        var rejection = try await onlyRejection(["\(Synthetic.hem(1)),vup-1,,,,,2026-11-25 10:00:00"])
        XCTAssertEqual(rejection.reason, .invalidTimestamp)
        XCTAssertEqual(rejection.field, "updated_at")
        rejection = try await onlyRejection(["\(Synthetic.hem(1)),vup-1,,,2026-11-25T10:00:00,,2026-11-25T10:00:00Z"])
        XCTAssertEqual(rejection.reason, .invalidTimestamp)
        XCTAssertEqual(rejection.field, "last_verified")
    }

    func testUnparsableTimestamps_areRejected() async throws {
        for value in [
            "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00+2500", "2026-11-25T10:00Z", "2026-11-25T10:00:00Zjunk", "2026-11-25",
            "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00", "2026-11-25T10:00:60Z",
        ] {
            let rejection = try await onlyRejection(["\(Synthetic.hem(1)),vup-1,,,,,\(value)"])
            XCTAssertEqual(rejection.reason, .invalidTimestamp, value)
        }
    }

    func testTimestamps_withZ_areKept_andOffsetsAreConvertedToUTC() async throws {
        let cases: [(String, String)] = [
            ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z"),
            ("2026-11-25T10:00:00.123456Z", "2026-11-25T10:00:00.123456Z"),
            ("2026-11-25 10:00:00Z", "2026-11-25T10:00:00Z"),
            ("2026-11-25T10:00:00+02:00", "2026-11-25T08:00:00Z"),
            ("2026-11-25T22:30:00-0500", "2026-11-26T03:30:00Z"),
            ("2026-11-25 10:00:00+00", "2026-11-25T10:00:00Z"),
            ("2026-01-01T01:00:00.5+05:30", "2025-12-31T19:30:00.5Z"),
            ("2024-02-28T23:00:00-01:00", "2024-02-29T00:00:00Z"),
            ("2026-12-31T23:59:59-00:01", "2027-01-01T00:00:59Z"),
        ]
        let lines = cases.enumerated().map { "\(Synthetic.hem($0.offset)),v,,,,,\($0.element.0)" }
        let result = try await read(lines)
        XCTAssertTrue(result.rejections.isEmpty, "\(result.rejections)")
        XCTAssertEqual(result.rows.map(\.updatedAt), cases.map(\.1))
    }

    func testInvalidUTF8_isRejected_namingTheField() async throws {
        var bytes = Array((Synthetic.header + "\n\(Synthetic.hem(1)),vup-1,u").utf8)
        bytes += [0xff, 0xfe]
        bytes += Array("@example.invalid,,,,2026-11-25T10:00:00Z\n".utf8)
        let directory = try TemporaryDirectory()
        let result = try await readBytes(bytes, in: directory)
        XCTAssertEqual(result.rejections.count, 1)
        XCTAssertEqual(result.rejections.first?.reason, .invalidUTF8)
        XCTAssertEqual(result.rejections.first?.field, "email")
        XCTAssertEqual(result.rejections.first?.hem, Synthetic.hem(1))
    }

    func testValidUTF8_isKept() async throws {
        let result = try await read(["\(Synthetic.hem(1)),vup-1,ü@example.invalid,,,Zürich ✓,2026-11-25T10:00:00Z"])
        XCTAssertEqual(result.rows.first?.source, "Zürich ✓")
    }

    func testWrongFieldCount_isRejected_keepingAValidHem() async throws {
        let result = try await read([
            "\(Synthetic.hem(1)),vup-1,u@example.invalid,,,2026-11-25T10:00:00Z",
            "\(Synthetic.hem(2)),vup-1,u@example.invalid,,,,2026-11-25T10:00:00Z,extra",
            Synthetic.row(3),
        ])
        XCTAssertEqual(result.rejections.map(\.reason), [.fieldCount, .fieldCount])
        XCTAssertEqual(result.rejections.map(\.hem), [Synthetic.hem(1), Synthetic.hem(2)])
        XCTAssertEqual(result.rejections.map(\.line), [2, 3])
        XCTAssertEqual(result.rows.map(\.line), [4])
    }

    func testItemOver400KB_isRejected_andReadingGoesOn() async throws {
        let big = String(repeating: "x", count: 420 * 1024)
        let huge = String(repeating: "y", count: 3 * 1024 * 1024)
        let result = try await read([
            "\(Synthetic.hem(1)),vup-1,u@example.invalid,,,\(big),2026-11-25T10:00:00Z",
            "\(Synthetic.hem(2)),vup-1,u@example.invalid,,,\"\(huge)\",2026-11-25T10:00:00Z",
            Synthetic.row(3),
        ])
        XCTAssertEqual(result.rejections.map(\.reason), [.itemTooLarge, .itemTooLarge])
        XCTAssertEqual(result.rejections.first?.hem, Synthetic.hem(1))
        XCTAssertEqual(result.rows.map(\.line), [4])
    }

    func testEveryRejectReasonText_isFreeOfEmails() async throws {
        // readAll asserts it for every rejection; this makes one of each reason at once.
        var bytes = Array(
            Synthetic.csv([
                Synthetic.header,
                "nothex,v,a@example.invalid,,,,2026-11-25T10:00:00Z",
                "\(Synthetic.hem(1)),UNRESOLVED#zz,b@example.invalid,,,,2026-11-25T10:00:00Z",
                "\(Synthetic.hem(2)),v,c@example.invalid,,,,2026-11-25T10:00:00",
                "\(Synthetic.hem(3)),v,d@example.invalid,,,,",
                "\(Synthetic.hem(4)),v,e@example.invalid,,,",
                "\(Synthetic.hem(5)),v,f@example.invalid,,,\(String(repeating: "z", count: 410_000)),2026-11-25T10:00:00Z",
                "\(Synthetic.hem(7)),\(String(repeating: "v", count: 2000)),h@example.invalid,,,,2026-11-25T10:00:00Z",
            ]))
        bytes +=
            Array("\(Synthetic.hem(6)),v,g@example.invalid,\u{1}".utf8) + [0xc3]
            + Array(",,,2026-11-25T10:00:00Z\n".utf8)
        let directory = try TemporaryDirectory()
        let result = try await readBytes(bytes, in: directory)
        XCTAssertEqual(
            Set(result.rejections.map(\.reason)),
            [
                .invalidHem, .sentinelMismatch, .invalidTimestamp, .missingUpdatedAt, .fieldCount, .itemTooLarge,
                .invalidUTF8, .invalidVupID,
            ])
    }
}
