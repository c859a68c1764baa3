import AWSWire
import Export
import Foundation
import TestSupport
import XCTest

final class ExportSourcesTests: XCTestCase {
    func testFilesAndGlobs_expandInOrder_withSizes() async throws {
        let directory = try TemporaryDirectory()
        for name in ["part_002.gz", "part_000.gz", "part_001.gz", "other.txt"] {
            try Data(Synthetic.csv([Synthetic.header, Synthetic.row(1)])).write(to: directory.file(name))
        }
        let single = directory.file("other.txt").path
        let sources = try await ExportSources.expand([directory.path + "/part_*.gz", single], client: nil)
        XCTAssertEqual(
            sources.map(\.location),
            ["part_000.gz", "part_001.gz", "part_002.gz", "other.txt"].map { .file(path: directory.file($0).path) })
        XCTAssertEqual(
            sources.map(\.size),
            Array(repeating: Int64(Synthetic.csv([Synthetic.header, Synthetic.row(1)]).count), count: 4))
    }

    func testMissingFile_throwsNamingIt() async throws {
        do {
            _ = try await ExportSources.expand(["/nonexistent/hemstream/export.csv.gz"], client: nil)
            XCTFail("expected an error")
        } catch let error as ExportError {
            XCTAssertEqual(error.source, "/nonexistent/hemstream/export.csv.gz")
            XCTAssertTrue(error.description.contains("no such file"), error.description)
        }
    }

    func testGlobMatchingNothing_throws() async throws {
        let directory = try TemporaryDirectory()
        do {
            _ = try await ExportSources.expand([directory.path + "/*.gz"], client: nil)
            XCTFail("expected an error")
        } catch let error as ExportError {
            XCTAssertTrue(error.description.contains("matches no file"), error.description)
        }
    }

    func testDirectory_isNotAnExport() async throws {
        let directory = try TemporaryDirectory()
        do {
            _ = try await ExportSources.expand([directory.path], client: nil)
            XCTFail("expected an error")
        } catch let error as ExportError {
            XCTAssertTrue(error.description.contains("directory"), error.description)
        }
    }

    func testS3Argument_withoutAWSConfiguration_throws() async throws {
        do {
            _ = try await ExportSources.expand(["s3://bucket/prefix/"], client: nil)
            XCTFail("expected an error")
        } catch let error as ExportError {
            XCTAssertEqual(error.source, "s3://bucket/prefix/")
        }
    }

    func testParseS3_splitsBucketAndKey() {
        XCTAssertEqual(ExportSources.parseS3("s3://b/a/b/c.gz")?.bucket, "b")
        XCTAssertEqual(ExportSources.parseS3("s3://b/a/b/c.gz")?.key, "a/b/c.gz")
        XCTAssertEqual(ExportSources.parseS3("s3://b")?.key, "")
        XCTAssertNil(ExportSources.parseS3("s3:///key"))
    }
}

/// Reading exports from S3 (moto_server): listing a prefix in key order, streamed GetObject.
final class S3ExportTests: XCTestCase {
    private func makeClient() throws -> AWSClient {
        var environment = try MotoServer.sharedEnvironment()
        environment["HOME"] = "/nonexistent-hemstream-home"
        environment["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent-hemstream/credentials"
        environment["AWS_CONFIG_FILE"] = "/nonexistent-hemstream/config"
        environment["AWS_EC2_METADATA_DISABLED"] = "true"
        return AWSClient(configuration: try AWSConfiguration.resolve(environment: environment))
    }

    func testPrefix_listsObjectsInKeyOrder_andStreamsEach() async throws {
        let client = try makeClient()
        let bucket = "hemstream-export-\(UUID().uuidString.lowercased().prefix(12))"
        try await client.s3CreateBucket(bucket)
        let part1 = try gzip(Synthetic.csv([Synthetic.header] + (0..<3000).map { Synthetic.row($0) }))
        let part2 = Synthetic.csv([Synthetic.header] + (3000..<3005).map { Synthetic.row($0) })
        // Put in reverse order: the listing, not the upload, decides the order.
        try await client.s3PutObject(bucket: bucket, key: "exports/day1/part_001.csv", body: part2)
        try await client.s3PutObject(bucket: bucket, key: "exports/day1/part_000.gz", body: part1)
        try await client.s3PutObject(bucket: bucket, key: "exports/day2/part_000.gz", body: part1)

        let sources = try await ExportSources.expand(["s3://\(bucket)/exports/day1/"], client: client)
        XCTAssertEqual(
            sources.map(\.location),
            [
                .s3(bucket: bucket, key: "exports/day1/part_000.gz"),
                .s3(bucket: bucket, key: "exports/day1/part_001.csv"),
            ])
        XCTAssertEqual(sources.map(\.size), [Int64(part1.count), Int64(part2.count)])

        var hems: [String] = []
        for source in sources {
            let result = await readAll(source.location, client: client)
            XCTAssertNil(result.error)
            XCTAssertEqual(result.totalBytes, source.size)
            XCTAssertEqual(result.bytesRead, source.size)
            XCTAssertTrue(result.rejections.isEmpty)
            hems += result.rows.map(\.hem)
        }
        XCTAssertEqual(hems, (0..<3005).map { Synthetic.hem($0) })

        // One exact key names that object alone; a key prefix without a slash lists like a prefix.
        let exact = try await ExportSources.expand(["s3://\(bucket)/exports/day1/part_000.gz"], client: client)
        XCTAssertEqual(exact.map(\.location), [.s3(bucket: bucket, key: "exports/day1/part_000.gz")])
        let unloadPrefix = try await ExportSources.expand(["s3://\(bucket)/exports/day1/part_"], client: client)
        XCTAssertEqual(unloadPrefix.count, 2)
    }

    func testMissingBucketOrKey_isAnExportErrorNamingTheSource() async throws {
        let client = try makeClient()
        do {
            _ = try await ExportSources.expand(["s3://hemstream-no-such-bucket-4711/x/"], client: client)
            XCTFail("expected an error")
        } catch let error as ExportError {
            XCTAssertTrue(error.description.hasPrefix("s3://hemstream-no-such-bucket-4711/x/"), error.description)
            XCTAssertTrue(error.description.contains("NoSuchBucket"), error.description)
        }
        let bucket = "hemstream-export-\(UUID().uuidString.lowercased().prefix(12))"
        try await client.s3CreateBucket(bucket)
        do {
            _ = try await ExportSources.expand(["s3://\(bucket)/nothing/"], client: client)
            XCTFail("expected an error")
        } catch let error as ExportError {
            XCTAssertTrue(error.description.contains("no S3 object"), error.description)
        }
        let result = await readAll(.s3(bucket: bucket, key: "gone.gz"), client: client)
        let error = try XCTUnwrap(result.error)
        XCTAssertTrue(error.description.hasPrefix("s3://\(bucket)/gone.gz"), error.description)
        XCTAssertTrue(error.description.contains("NoSuchKey"), error.description)
    }
}
