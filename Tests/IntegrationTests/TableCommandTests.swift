import AWSWire
import Foundation
import JSON
import TestSupport
import XCTest

/// `hemstream table` and `hemstream query`, run as the real binary against moto_server.
final class TableCommandTests: XCTestCase, @unchecked Sendable {  // XCTest runs one method at a time
    var env: [String: String] = [:]
    var table = ""

    override func setUpWithError() throws {
        env = try MotoServer.sharedEnvironment()
        table = "t-\(UUID().uuidString.prefix(8).lowercased())"
    }

    func hemstream(_ args: [String], extraEnv: [String: String] = [:]) throws -> ProcessResult {
        try Hemstream.run(args, environment: env.merging(extraEnv) { _, new in new })
    }

    func client() throws -> AWSClient {
        AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: env))
    }

    func testTableCreate_runTwice_secondRunChangesNothing() throws {
        let first = try hemstream(["table", "create", "--table", table, "--poll-interval", "0.05"])
        XCTAssertEqual(first.exitCode, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("create table \(table): requested"), first.stderr)
        XCTAssertTrue(first.stderr.contains("add index hem-index: requested"), first.stderr)
        XCTAssertNotNil(
            first.stderr.range(of: #"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ index hem-index: ACTIVE"#, options: .regularExpression),
            "each index poll is a timestamped line: \(first.stderr)")
        XCTAssertTrue(first.stderr.contains("enable point-in-time recovery: done"), first.stderr)

        let second = try hemstream(["table", "create", "--table", table, "--poll-interval", "0.05"])
        XCTAssertEqual(second.exitCode, 0, second.stderr)
        for step in ["create table \(table)", "add index hem-index", "tag table", "enable point-in-time recovery"] {
            XCTAssertTrue(second.stderr.contains("\(step): already done"), "\(step) in \(second.stderr)")
        }
        XCTAssertFalse(second.stderr.contains("requested"), second.stderr)

        let verify = try hemstream(["table", "verify", "--table", table])
        XCTAssertEqual(verify.exitCode, 0, verify.stdout + verify.stderr)
        XCTAssertEqual(verify.stdout, "")

        // What users rely on: the table really has the stream, the GSI and PITR.
        let described = try runAsync { try await self.client().dynamoDB("DescribeTable", ["TableName": .string(self.table)]) }
        XCTAssertEqual(described["Table"]?["StreamSpecification"]?["StreamViewType"], "NEW_AND_OLD_IMAGES")
        XCTAssertEqual(described["Table"]?["GlobalSecondaryIndexes"]?[0]?["IndexName"], "hem-index")
        let backups = try runAsync {
            try await self.client().dynamoDB("DescribeContinuousBackups", ["TableName": .string(self.table)])
        }
        XCTAssertEqual(
            backups["ContinuousBackupsDescription"]?["PointInTimeRecoveryDescription"]?["PointInTimeRecoveryStatus"],
            "ENABLED")
    }

    func testVerifyAndCreate_onDifferentTable_exitNonZeroSayingWhatDiffers() throws {
        // Build the table from an altered definition: keys-only stream, no GSI.
        let schemas = try TemporaryDirectory()
        let original = try String(contentsOf: repositoryRoot().appendingPathComponent("schemas/table.json"), encoding: .utf8)
        var altered = try JSON.parse(original).objectValue!
        altered["StreamSpecification"] = ["StreamEnabled": true, "StreamViewType": "KEYS_ONLY"]
        altered["GlobalSecondaryIndexes"] = nil
        try JSON.object(altered).serialized().write(to: schemas.file("table.json"), atomically: true, encoding: .utf8)
        let made = try hemstream(
            ["table", "create", "--table", table, "--poll-interval", "0.05"], extraEnv: ["HEMSTREAM_SCHEMAS": schemas.path])
        XCTAssertEqual(made.exitCode, 0, made.stderr)

        let verify = try hemstream(["table", "verify", "--table", table])
        XCTAssertEqual(verify.exitCode, 3, verify.stderr)
        XCTAssertTrue(verify.stdout.contains("StreamViewType: expected NEW_AND_OLD_IMAGES, found KEYS_ONLY"), verify.stdout)
        XCTAssertTrue(verify.stdout.contains("GlobalSecondaryIndexes.hem-index: expected present, found missing"), verify.stdout)

        let create = try hemstream(["table", "create", "--table", table])
        XCTAssertEqual(create.exitCode, 1)
        XCTAssertTrue(create.stderr.contains("differs"), create.stderr)
        XCTAssertTrue(create.stderr.contains("StreamViewType"), create.stderr)
        XCTAssertEqual(create.stderr.split(separator: "\n").count, 1, "one line: \(create.stderr)")

        let missing = try hemstream(["table", "verify", "--table", table + "-none"])
        XCTAssertEqual(missing.exitCode, 3)
        XCTAssertTrue(missing.stdout.contains("Table: expected present, found missing"), missing.stdout)
    }

    func testQuery_byVupAndByHem_printsItemsWithEmailRedacted() throws {
        XCTAssertEqual(try hemstream(["table", "create", "--table", table, "--poll-interval", "0.05"]).exitCode, 0)
        let hemA = String(repeating: "a1", count: 16)
        let hemB = String(repeating: "b2", count: 20)
        let emailA = "query-person-a@example.invalid"
        try runAsync {
            let c = try self.client()
            for (hem, email) in [(hemA, emailA), (hemB, "query-person-b@example.invalid")] {
                _ = try await c.dynamoDB(
                    "PutItem",
                    [
                        "TableName": .string(self.table),
                        "Item": [
                            "vup_id": ["S": "VUP-1"], "hem": ["S": .string(hem)], "email": ["S": .string(email)],
                            "domain": ["S": "example.invalid"], "updated_at": ["S": "2026-11-24T06:00:00Z"],
                        ],
                    ])
            }
        }

        let byVup = try hemstream(["query", "--table", table, "--vup", "VUP-1"])
        XCTAssertEqual(byVup.exitCode, 0, byVup.stderr)
        let items = try byVup.stdoutLines.map { try JSON.parse($0) }
        XCTAssertEqual(items.compactMap { $0["hem"]?.stringValue }.sorted(), [hemA, hemB])
        XCTAssertEqual(Set(items.compactMap { $0["email"]?.stringValue }), ["<redacted>"])
        XCTAssertFalse((byVup.stdout + byVup.stderr).contains("query-person"), "no email in output")

        let byHem = try hemstream(["query", "--table", table, "--hem", hemA.uppercased()])
        XCTAssertEqual(byHem.exitCode, 0, byHem.stderr)
        XCTAssertEqual(byHem.stdoutLines.count, 1)
        XCTAssertEqual(try JSON.parse(byHem.stdoutLines[0])["vup_id"], "VUP-1")

        let revealed = try hemstream(["query", "--table", table, "--hem", hemA, "--reveal-pii"])
        XCTAssertEqual(try JSON.parse(revealed.stdoutLines[0])["email"]?.stringValue, emailA)

        let none = try hemstream(["query", "--table", table, "--vup", "VUP-none"])
        XCTAssertEqual(none.exitCode, 0)
        XCTAssertEqual(none.stdout, "")
    }

    func testQuery_withoutExactlyOneKey_isAUsageError() throws {
        let both = try hemstream(["query", "--vup", "x", "--hem", "y"])
        XCTAssertEqual(both.exitCode, 64, "a usage error (EX_USAGE), not a failed query")
        XCTAssertTrue(both.stderr.contains("exactly one of --vup or --hem"), both.stderr)
    }

    func testRestore_latest_createsTargetWithTheSameItems() throws {
        XCTAssertEqual(try hemstream(["table", "create", "--table", table, "--poll-interval", "0.05"]).exitCode, 0)
        let hem = String(repeating: "c3", count: 16)
        try runAsync {
            _ = try await self.client().dynamoDB(
                "PutItem",
                [
                    "TableName": .string(self.table),
                    "Item": ["vup_id": ["S": "VUP-9"], "hem": ["S": .string(hem)]],
                ])
        }
        let target = table + "-restored"
        let restore = try hemstream(
            ["table", "restore", "--table", table, "--to", "latest", "--target", target, "--poll-interval", "0.05"])
        XCTAssertEqual(restore.exitCode, 0, restore.stderr)
        let query = try hemstream(["query", "--table", target, "--vup", "VUP-9"])
        XCTAssertEqual(query.stdoutLines.count, 1, query.stderr)

        let bad = try hemstream(["table", "restore", "--table", table, "--to", "2026-11-24 06:00", "--target", target])
        XCTAssertEqual(bad.exitCode, 64, "a usage error (EX_USAGE)")
        XCTAssertTrue(bad.stderr.contains("--to must be a UTC time"), bad.stderr)
    }
}

/// Runs async work from a synchronous XCTest method.
func runAsync<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

/// The repository root, found from this file's path.
func repositoryRoot() -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}
