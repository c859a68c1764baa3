import Foundation
import TestSupport
import XCTest

@testable import AWSWire

/// Streamed GetObject: bounded read-ahead, and resuming a download that breaks mid-object.
final class S3StreamTests: XCTestCase {
    /// Bytes that differ from offset to offset, so a splice or a skipped range shows.
    private func objectBytes(_ count: Int) -> [UInt8] {
        var state: UInt32 = 2_463_534_242
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// Serves `object` like S3 (ETag, Range → 206), cutting answer `n` after `cuts[n]` bytes.
    private func objectServer(_ object: [UInt8], etag: String, cuts: [Int?]) throws -> ScriptedHTTPServer {
        try ScriptedHTTPServer { request, index in
            let cut = index < cuts.count ? cuts[index] : nil
            if let ifMatch = request.header("If-Match"), ifMatch != etag {
                return .xml(412, "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>")
            }
            guard let range = request.header("Range") else {
                return ScriptedResponse(status: 200, headers: [("ETag", etag)], body: object, cutAfter: cut)
            }
            let start = Int(range.dropFirst("bytes=".count).dropLast())!
            return ScriptedResponse(
                status: 206,
                headers: [("ETag", etag), ("Content-Range", "bytes \(start)-\(object.count - 1)/\(object.count)")],
                body: Array(object[start...]), cutAfter: cut)
        }
    }

    private func readAll(_ stream: S3ObjectStream) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await stream.next() { bytes += chunk }
        return bytes
    }

    func testGetObject_whenBodyBreaksMidObject_resumesFromLastByteWithIfMatch() async throws {
        let object = objectBytes(3_000_000)
        let etag = "\"5d41402abc4b2a76b9719d911017c592\""
        let server = try objectServer(object, etag: etag, cuts: [1_000_000, 700_000])
        let client = try makeClient(endpoint: server.endpoint)

        let stream = try await client.s3GetObject(bucket: "exports", key: "day1/part_000.gz")
        let read = try await readAll(stream)

        XCTAssertEqual(read.count, object.count)
        XCTAssertTrue(read == object, "the resumed stream differs from the object")
        XCTAssertEqual(stream.resumes, 2)
        let requests = server.requests
        XCTAssertEqual(requests.count, 3)
        XCTAssertNil(requests[0].header("Range"))
        XCTAssertEqual(requests[1].header("Range"), "bytes=1000000-")
        XCTAssertEqual(requests[1].header("If-Match"), etag)
        XCTAssertEqual(requests[2].header("Range"), "bytes=1700000-")
        XCTAssertEqual(requests[2].header("If-Match"), etag)
    }

    func testGetObject_whenObjectChangesBeforeResume_failsInsteadOfSplicing() async throws {
        let object = objectBytes(2_000_000)
        let firstETag = "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
        // The object is replaced after the first answer: resumes carry the old ETag and get 412.
        let server = try ScriptedHTTPServer { request, index in
            if index == 0 {
                return ScriptedResponse(status: 200, headers: [("ETag", firstETag)], body: object, cutAfter: 600_000)
            }
            return .xml(412, "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>")
        }
        let client = try makeClient(endpoint: server.endpoint)
        let stream = try await client.s3GetObject(bucket: "exports", key: "day1/part_000.gz")
        var received = 0
        let caught = await captureError { while let chunk = try await stream.next() { received += chunk.count } }
        let error = try XCTUnwrap(caught as? AWSError, "a changed object must fail the read")
        XCTAssertEqual(error.httpStatus, 412)
        XCTAssertTrue(error.description.contains("changed while it was being read"), error.description)
        XCTAssertEqual(received, 600_000, "only the first version's bytes, up to the break")
        XCTAssertEqual(server.requests.last?.header("If-Match"), firstETag)
    }

    func testGetObject_whenEveryResumeBreaksAtOnce_givesUpAfterBoundedAttempts() async throws {
        let object = objectBytes(1_000_000)
        let server = try objectServer(object, etag: "\"e\"", cuts: [300_000] + Array(repeating: 0, count: 50))
        let client = try makeClient(endpoint: server.endpoint)
        let stream = try await client.s3GetObject(bucket: "exports", key: "k")
        let caught = await captureError { try await readAll(stream) }
        let error = try XCTUnwrap(caught as? AWSError, "expected the read to give up")
        XCTAssertEqual(error.kind, .transport)
        XCTAssertTrue(error.description.contains("gave up after \(S3ObjectStream.maxResumes) resumes"), error.description)
        XCTAssertEqual(server.requestCount, 1 + S3ObjectStream.maxResumes)
    }

    func testGetObject_whenResumeAnswerIgnoresRange_failsInsteadOfSplicing() async throws {
        let object = objectBytes(1_000_000)
        // A server (or proxy) that answers the resume with the whole object from byte 0.
        let server = try ScriptedHTTPServer { _, index in
            ScriptedResponse(status: 200, headers: [("ETag", "\"e\"")], body: object, cutAfter: index == 0 ? 400_000 : nil)
        }
        let client = try makeClient(endpoint: server.endpoint)
        let stream = try await client.s3GetObject(bucket: "exports", key: "k")
        let caught = await captureError { try await readAll(stream) }
        let error = try XCTUnwrap(caught as? AWSError, "expected the read to fail")
        XCTAssertEqual(error.kind, .malformedResponse)
        XCTAssertTrue(error.description.contains("from byte 400000"), error.description)
    }

    /// The read-ahead is what bounds memory: chunks handed out must not stay referenced while
    /// the download keeps ahead of the reader (it held the whole object once).
    func testStreamBuffer_whenDownloadStaysAhead_holdsOnlyUnreadChunks() async throws {
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        let buffer = StreamBuffer(chunkSize: chunk.count, limit: 64 * chunk.count)
        XCTAssertTrue(buffer.push(chunk))
        XCTAssertTrue(buffer.push(chunk))
        var maxRetained = 0
        for _ in 0..<500 {
            XCTAssertTrue(buffer.push(chunk))
            let next = try await buffer.next()
            XCTAssertEqual(next?.count, chunk.count)
            maxRetained = max(maxRetained, buffer.retainedBytes)
        }
        XCTAssertLessThanOrEqual(maxRetained, 3 * chunk.count)
    }
}

/// The normal path against moto's S3: a whole object, and a ranged read from an offset.
final class S3MotoStreamTests: XCTestCase {
    func testGetObject_streamsWholeObject_andFromAnOffset() async throws {
        let environment = try MotoServer.sharedEnvironment()
        let client = try makeClient(endpoint: try XCTUnwrap(environment["AWS_ENDPOINT_URL"]))
        let bucket = uniqueName("hemstream-stream")
        try await client.s3CreateBucket(bucket)
        var object = [UInt8](repeating: 0, count: 6_000_000)
        for i in object.indices { object[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
        try await client.s3PutObject(bucket: bucket, key: "part_000", body: object)

        let whole = try await client.s3GetObject(bucket: bucket, key: "part_000")
        XCTAssertEqual(whole.contentLength, Int64(object.count))
        XCTAssertNotNil(whole.etag)
        var read: [UInt8] = []
        while let chunk = try await whole.next() { read += chunk }
        XCTAssertTrue(read == object, "streamed bytes differ from the object")
        XCTAssertEqual(whole.resumes, 0)

        let tail = try await client.s3GetObject(bucket: bucket, key: "part_000", from: 5_000_000)
        XCTAssertEqual(tail.contentLength, 1_000_000)
        read = []
        while let chunk = try await tail.next() { read += chunk }
        XCTAssertTrue(read == Array(object[5_000_000...]), "ranged bytes differ from the object's tail")

        // A resume against another version is refused by S3 itself (moto checks If-Match too).
        let refused = await captureError {
            try await client.s3OpenObject(bucket: bucket, key: "part_000", from: 10, ifMatch: "\"0000\"")
        }
        XCTAssertEqual(try XCTUnwrap(refused as? AWSError, "expected 412").httpStatus, 412)
    }
}
