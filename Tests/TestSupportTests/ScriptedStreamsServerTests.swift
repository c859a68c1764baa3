import AWSWire
import Foundation
import JSON
import TestSupport
import XCTest

/// The scripted Streams server driven by the project's own AWS client, so what the stream
/// reader will see is what these tests check.
final class ScriptedStreamsServerTests: XCTestCase {
    let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"

    func makeServer(
        describePageSize: Int = 100, supportsShardFilter: Bool = true, emptyPagesBeforeRecords: Int = 0
    ) throws -> ScriptedStreamsServer {
        try ScriptedStreamsServer(
            streamArn: arn, describePageSize: describePageSize, supportsShardFilter: supportsShardFilter,
            emptyPagesBeforeRecords: emptyPagesBeforeRecords)
    }

    func makeClient(_ server: ScriptedStreamsServer, maxAttempts: Int = 3) -> AWSClient {
        let configuration = AWSConfiguration(
            region: "us-east-1", endpointOverrides: [.dynamoDBStreams: server.endpoint],
            credentials: CredentialChain(
                credentials: AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")),
            connectTimeout: 2, requestTimeout: 30)
        let policy = RetryPolicy(maxAttempts: maxAttempts, baseDelay: 0.001, throttlingBaseDelay: 0.002, maxDelay: 0.01)
        return AWSClient(configuration: configuration, retryPolicy: policy)
    }

    func item(_ n: Int) -> JSON {
        let key: JSON = ["S": .string(hem(n))]
        let count: JSON = ["N": .string(String(n))]
        return ScriptedStreamsServer.record(
            eventName: "INSERT", keys: ["hem": key], newImage: ["hem": key, "n": count])
    }

    func hem(_ n: Int) -> String {
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 64 - hex.count) + hex
    }

    func iterator(
        _ client: AWSClient, shard: String, type: String = "TRIM_HORIZON", sequenceNumber: String? = nil
    ) async throws -> String {
        var body: [String: JSON] = [
            "StreamArn": .string(arn), "ShardId": .string(shard), "ShardIteratorType": .string(type),
        ]
        if let sequenceNumber { body["SequenceNumber"] = .string(sequenceNumber) }
        let result = try await client.dynamoDBStreams("GetShardIterator", .object(body))
        return try XCTUnwrap(result["ShardIterator"]?.stringValue)
    }

    func getRecords(_ client: AWSClient, _ iterator: String, limit: Int? = nil) async throws -> JSON {
        var body: [String: JSON] = ["ShardIterator": .string(iterator)]
        if let limit { body["Limit"] = .int(limit) }
        return try await client.dynamoDBStreams("GetRecords", .object(body))
    }

    func errorCode<T>(_ body: () async throws -> T) async -> String? {
        do {
            _ = try await body()
            return nil
        } catch let error as AWSError {
            return error.code
        } catch {
            return "\(error)"
        }
    }

    func hems(_ page: JSON) -> [String] {
        (page["Records"]?.arrayValue ?? []).compactMap { $0["dynamodb"]?["Keys"]?["hem"]?["S"]?.stringValue }
    }

    // MARK: DescribeStream

    func testDescribeStream_with250Shards_pagesByLimitAndExclusiveStartShardId() async throws {
        let server = try makeServer()
        let ids = (0..<250).map { ScriptedStreamsServer.shardID($0) }
        for id in ids { server.addShard(id: id) }
        let client = makeClient(server)

        var pageSizes: [Int] = []
        var seen: [String] = []
        var start: String?
        repeat {
            var body: [String: JSON] = ["StreamArn": .string(arn)]
            if let start { body["ExclusiveStartShardId"] = .string(start) }
            let description = try await client.dynamoDBStreams("DescribeStream", .object(body))["StreamDescription"]
            let shards = description?["Shards"]?.arrayValue ?? []
            pageSizes.append(shards.count)
            seen += shards.compactMap { $0["ShardId"]?.stringValue }
            start = description?["LastEvaluatedShardId"]?.stringValue
        } while start != nil
        XCTAssertEqual(pageSizes, [100, 100, 50], "the default page is 100 shards")
        XCTAssertEqual(seen, ids)

        let small = try await client.dynamoDBStreams(
            "DescribeStream", ["StreamArn": .string(arn), "Limit": 30, "ExclusiveStartShardId": .string(ids[219])])
        let shards = small["StreamDescription"]?["Shards"]?.arrayValue ?? []
        XCTAssertEqual(shards.compactMap { $0["ShardId"]?.stringValue }, Array(ids[220..<250]))
        XCTAssertNil(small["StreamDescription"]?["LastEvaluatedShardId"], "the last page has no LastEvaluatedShardId")
        XCTAssertEqual(server.callCount("DescribeStream"), 4)
    }

    func testDescribeStream_describesTheStreamAndShardRanges() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        let sequences = server.addShard(id: shard, records: [item(1), item(2)])
        server.close(shard: shard)
        let client = makeClient(server)
        let description = try await client.dynamoDBStreams("DescribeStream", ["StreamArn": .string(arn)])[
            "StreamDescription"]
        XCTAssertEqual(description?["StreamArn"]?.stringValue, arn)
        XCTAssertEqual(description?["TableName"], "t")
        XCTAssertEqual(description?["StreamLabel"], "2026-01-01T00:00:00.000")
        XCTAssertEqual(description?["StreamStatus"], "ENABLED")
        XCTAssertEqual(description?["StreamViewType"], "NEW_AND_OLD_IMAGES")
        XCTAssertEqual(description?["KeySchema"], [["AttributeName": "hem", "KeyType": "HASH"]])
        let range = description?["Shards"]?[0]?["SequenceNumberRange"]
        let starting = try XCTUnwrap(range?["StartingSequenceNumber"]?.stringValue)
        let ending = try XCTUnwrap(range?["EndingSequenceNumber"]?.stringValue)
        XCTAssertEqual(starting.count, 21)
        XCTAssertLessThanOrEqual(starting, sequences[0])
        XCTAssertGreaterThanOrEqual(ending, sequences[1])

        let unknown = await errorCode {
            try await client.dynamoDBStreams("DescribeStream", ["StreamArn": .string(self.arn + "x")])
        }
        XCTAssertEqual(unknown, "ResourceNotFoundException")
    }

    func testDescribeStream_withShardFilter_listsOnlyTheParentsChildren() async throws {
        let server = try makeServer()
        let parent = ScriptedStreamsServer.shardID(1)
        let other = ScriptedStreamsServer.shardID(2)
        server.addShard(id: parent)
        server.addShard(id: other)
        let children = [ScriptedStreamsServer.shardID(3), ScriptedStreamsServer.shardID(4)]
        server.split(shard: parent, into: children)
        server.split(shard: other, into: [ScriptedStreamsServer.shardID(5)])
        let client = makeClient(server)
        let result = try await client.dynamoDBStreams(
            "DescribeStream",
            ["StreamArn": .string(arn), "ShardFilter": ["Type": "CHILD_SHARDS", "ShardId": .string(parent)]])
        let shards = result["StreamDescription"]?["Shards"]?.arrayValue ?? []
        XCTAssertEqual(shards.compactMap { $0["ShardId"]?.stringValue }, children)
        XCTAssertEqual(shards.compactMap { $0["ParentShardId"]?.stringValue }, [parent, parent])
    }

    func testDescribeStream_whenShardFilterUnsupported_answersValidationException() async throws {
        let server = try makeServer(supportsShardFilter: false)
        server.addShard(id: ScriptedStreamsServer.shardID(1))
        let client = makeClient(server)
        let code = await errorCode {
            try await client.dynamoDBStreams(
                "DescribeStream",
                ["StreamArn": .string(self.arn), "ShardFilter": ["Type": "CHILD_SHARDS", "ShardId": "x"]])
        }
        XCTAssertEqual(code, "ValidationException")
        let plain = try await client.dynamoDBStreams("DescribeStream", ["StreamArn": .string(arn)])
        XCTAssertEqual(plain["StreamDescription"]?["Shards"]?.arrayValue?.count, 1, "without the filter it answers")
    }

    // MARK: Reading shards

    func testGetRecords_readsAShardAcrossPagesThenNoNextIteratorOnceClosedAndRead() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        server.addShard(id: shard, records: (0..<25).map(item))
        let client = makeClient(server)

        var next: String? = try await iterator(client, shard: shard)
        var read: [String] = []
        var sequences: [String] = []
        var pages: [Int] = []
        while let current = next, read.count < 25, pages.count < 10 {
            let page = try await getRecords(client, current, limit: 10)
            pages.append(page["Records"]?.arrayValue?.count ?? -1)
            read += hems(page)
            sequences += (page["Records"]?.arrayValue ?? []).compactMap {
                $0["dynamodb"]?["SequenceNumber"]?.stringValue
            }
            next = page["NextShardIterator"]?.stringValue
        }
        XCTAssertEqual(pages, [10, 10, 5])
        XCTAssertEqual(read, (0..<25).map(hem))
        XCTAssertEqual(sequences, sequences.sorted())
        XCTAssertEqual(Set(sequences).count, 25)
        XCTAssertTrue(sequences.allSatisfy { $0.count == 21 })

        let open = try await getRecords(client, try XCTUnwrap(next))
        XCTAssertEqual(open["Records"]?.arrayValue?.count, 0, "an open shard at its end answers an empty page")
        next = open["NextShardIterator"]?.stringValue
        XCTAssertNotNil(next, "and a next iterator")

        server.append(shard: shard, records: [item(25), item(26)])
        server.close(shard: shard)
        let last = try await getRecords(client, try XCTUnwrap(next))
        XCTAssertEqual(hems(last), [hem(25), hem(26)])
        XCTAssertNil(last["NextShardIterator"], "a closed shard read to its end has no next iterator")
        XCTAssertEqual(server.getRecordsCalls(shard: shard).map(\.recordCount), [10, 10, 5, 0, 2])
    }

    func testGetRecords_maxRecordsPerPageCapsTheLimit() async throws {
        let server = try makeServer()
        server.maxRecordsPerPage = 4
        let shard = ScriptedStreamsServer.shardID(1)
        server.addShard(id: shard, records: (0..<6).map(item))
        let client = makeClient(server)
        let page = try await getRecords(client, try await iterator(client, shard: shard), limit: 1000)
        XCTAssertEqual(hems(page), (0..<4).map(hem))
    }

    func testGetShardIterator_atAfterAndLatestStartWhereAsked() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        let sequences = server.addShard(id: shard, records: (0..<5).map(item))
        let client = makeClient(server)

        let at = try await getRecords(
            client, try await iterator(client, shard: shard, type: "AT_SEQUENCE_NUMBER", sequenceNumber: sequences[2]))
        XCTAssertEqual(hems(at), (2..<5).map(hem))
        let after = try await getRecords(
            client,
            try await iterator(client, shard: shard, type: "AFTER_SEQUENCE_NUMBER", sequenceNumber: sequences[2]))
        XCTAssertEqual(hems(after), (3..<5).map(hem))
        let latest = try await iterator(client, shard: shard, type: "LATEST")
        server.append(shard: shard, records: [item(5)])
        let appended = try await getRecords(client, latest)
        XCTAssertEqual(hems(appended), [hem(5)])
    }

    func testSplit_closesTheParentAndChildrenContinueWithHigherSequenceNumbers() async throws {
        let server = try makeServer()
        let parent = ScriptedStreamsServer.shardID(1)
        let children = [ScriptedStreamsServer.shardID(2), ScriptedStreamsServer.shardID(3)]
        let parentSequences = server.addShard(id: parent, records: [item(0)])
        server.split(shard: parent, into: children)
        let childSequences = server.append(shard: children[1], records: [item(1)])
        XCTAssertGreaterThan(childSequences[0], parentSequences[0])
        let client = makeClient(server)

        let description = try await client.dynamoDBStreams("DescribeStream", ["StreamArn": .string(arn)])
        let shards = description["StreamDescription"]?["Shards"]?.arrayValue ?? []
        XCTAssertEqual(shards.compactMap { $0["ShardId"]?.stringValue }, [parent] + children)
        XCTAssertNotNil(shards[0]["SequenceNumberRange"]?["EndingSequenceNumber"])
        XCTAssertNil(shards[0]["ParentShardId"])
        for child in shards.dropFirst() {
            XCTAssertEqual(child["ParentShardId"]?.stringValue, parent)
            XCTAssertNil(child["SequenceNumberRange"]?["EndingSequenceNumber"])
        }

        let parentPage = try await getRecords(client, try await iterator(client, shard: parent))
        XCTAssertEqual(hems(parentPage), [hem(0)])
        XCTAssertNil(parentPage["NextShardIterator"])
        let childPage = try await getRecords(client, try await iterator(client, shard: children[1]))
        XCTAssertEqual(hems(childPage), [hem(1)])
        XCTAssertNotNil(childPage["NextShardIterator"])
    }

    // MARK: Faults

    func testTrim_trimHorizonStartsAtFirstKeptRecordAndTrimmedPositionsFail() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        let sequences = server.addShard(id: shard, records: (0..<5).map(item))
        let client = makeClient(server)
        let old = try await iterator(client, shard: shard)

        server.trim(shard: shard, before: sequences[3])
        let kept = try await getRecords(client, try await iterator(client, shard: shard))
        XCTAssertEqual(hems(kept), [hem(3), hem(4)])
        let at = await errorCode {
            try await self.getRecords(
                client,
                try await self.iterator(client, shard: shard, type: "AT_SEQUENCE_NUMBER", sequenceNumber: sequences[1]))
        }
        XCTAssertEqual(at, "TrimmedDataAccessException")
        let after = await errorCode {
            try await self.getRecords(
                client,
                try await self.iterator(
                    client, shard: shard, type: "AFTER_SEQUENCE_NUMBER", sequenceNumber: sequences[0]))
        }
        XCTAssertEqual(after, "TrimmedDataAccessException")
        let stale = await errorCode { try await self.getRecords(client, old) }
        XCTAssertEqual(stale, "TrimmedDataAccessException", "an iterator issued before the trim points at trimmed data")
        XCTAssertEqual(server.getRecordsCalls(shard: shard).last?.errorCode, "TrimmedDataAccessException")
    }

    func testRemoveShard_dropsItFromDescribeStreamAndGetShardIteratorFindsNothing() async throws {
        let server = try makeServer()
        let gone = ScriptedStreamsServer.shardID(1)
        let kept = ScriptedStreamsServer.shardID(2)
        server.addShard(id: gone, records: [item(0)])
        server.close(shard: gone)
        server.addShard(id: kept, parent: gone)
        let client = makeClient(server)
        let old = try await iterator(client, shard: gone)
        server.removeShard(gone)

        let description = try await client.dynamoDBStreams("DescribeStream", ["StreamArn": .string(arn)])
        let shards = description["StreamDescription"]?["Shards"]?.arrayValue ?? []
        XCTAssertEqual(shards.compactMap { $0["ShardId"]?.stringValue }, [kept])
        XCTAssertEqual(shards.first?["ParentShardId"]?.stringValue, gone, "a child still names its trimmed parent")
        let code = await errorCode {
            try await client.dynamoDBStreams(
                "GetShardIterator",
                ["StreamArn": .string(self.arn), "ShardId": .string(gone), "ShardIteratorType": "TRIM_HORIZON"])
        }
        XCTAssertEqual(code, "ResourceNotFoundException")
        let stale = await errorCode { try await self.getRecords(client, old) }
        XCTAssertEqual(stale, "TrimmedDataAccessException")
    }

    func testExpiredIterators_answerExpiredIteratorExceptionAndFreshOnesWork() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        server.addShard(id: shard, records: [item(0)])
        let client = makeClient(server)

        let first = try await iterator(client, shard: shard)
        server.expireAllIterators()
        let code = await errorCode { try await self.getRecords(client, first) }
        XCTAssertEqual(code, "ExpiredIteratorException")
        let fresh = try await getRecords(client, try await iterator(client, shard: shard))
        XCTAssertEqual(hems(fresh), [hem(0)])

        let second = try await iterator(client, shard: shard)
        let issued = Date()
        try waitUntil("the clock has moved past the second iterator's issue", timeout: 5, every: 0.001) { Date() > issued }
        server.expireIterators(issuedBefore: Date())
        let third = try await iterator(client, shard: shard)
        let expired = await errorCode { try await self.getRecords(client, second) }
        XCTAssertEqual(expired, "ExpiredIteratorException")
        let unexpired = try await getRecords(client, third)
        XCTAssertEqual(hems(unexpired), [hem(0)])
    }

    func testThrottling_answersLimitExceededUntilTheClientsRetriesRunOut() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        server.addShard(id: shard, records: [item(0)])

        let once = makeClient(server, maxAttempts: 1)
        let start = try await iterator(once, shard: shard)
        server.throttleNextGetRecords(1)
        let code = await errorCode { try await self.getRecords(once, start) }
        XCTAssertEqual(code, "LimitExceededException")
        let afterThrottle = try await getRecords(once, start)
        XCTAssertEqual(hems(afterThrottle), [hem(0)], "the throttle passes after n calls")

        let retrying = makeClient(server, maxAttempts: 3)
        server.throttleNextGetRecords(2)
        let afterRetries = try await getRecords(retrying, start)
        XCTAssertEqual(hems(afterRetries), [hem(0)], "two throttles fit in three attempts")
        server.throttleNextGetRecords(3)
        do {
            _ = try await getRecords(retrying, start)
            XCTFail("three throttles exhaust three attempts")
        } catch let error as AWSError {
            XCTAssertEqual(error.code, "LimitExceededException")
            XCTAssertEqual(error.attempts, 3)
            XCTAssertTrue(error.isThrottling)
        }
        XCTAssertEqual(
            server.getRecordsCalls(shard: shard).map { $0.errorCode ?? "ok" },
            ["LimitExceededException", "ok", "LimitExceededException", "LimitExceededException", "ok"]
                + Array(repeating: "LimitExceededException", count: 3))
    }

    func testEmptyPagesBeforeRecords_eachFreshIteratorFirstAnswersEmptyPages() async throws {
        let server = try makeServer(emptyPagesBeforeRecords: 2)
        let shard = ScriptedStreamsServer.shardID(1)
        server.addShard(id: shard, records: [item(0), item(1)])
        server.close(shard: shard)
        let client = makeClient(server)

        var next: String? = try await iterator(client, shard: shard)
        var pages: [[String]] = []
        while let current = next, pages.count < 10 {
            let page = try await getRecords(client, current)
            pages.append(hems(page))
            next = page["NextShardIterator"]?.stringValue
        }
        XCTAssertEqual(pages, [[], [], [hem(0), hem(1)]])
    }

    func testBadRequests_answerValidationExceptionNotAServerError() async throws {
        let server = try makeServer()
        let shard = ScriptedStreamsServer.shardID(1)
        server.addShard(id: shard, records: [item(0)])
        let client = makeClient(server)
        let garbage = await errorCode { try await self.getRecords(client, "not-an-iterator") }
        XCTAssertEqual(garbage, "ValidationException")
        let start = try await iterator(client, shard: shard)
        let tooMany = await errorCode { try await self.getRecords(client, start, limit: 1001) }
        XCTAssertEqual(tooMany, "ValidationException")
        let badType = await errorCode { try await self.iterator(client, shard: shard, type: "SOMEWHERE") }
        XCTAssertEqual(badType, "ValidationException")
        XCTAssertEqual(server.callCounts["GetRecords"], 2)
        XCTAssertEqual(server.callCounts["GetShardIterator"], 2)
    }

    func testRelease_stopsListening() async throws {
        var server: ScriptedStreamsServer? = try makeServer()
        weak let released = server
        let client = makeClient(try XCTUnwrap(server))
        _ = try await client.dynamoDBStreams("ListStreams", [:])
        server = nil
        XCTAssertNil(released, "the HTTP server's handler holds no reference back")
        let error = await captureError { try await client.dynamoDBStreams("ListStreams", [:]) } as? AWSError
        XCTAssertEqual(error?.kind, .transport)
    }


    func testRecordHelper_buildsARealisticNewAndOldImagesRecord() throws {
        let time = Date(timeIntervalSince1970: 1_767_225_600.75)
        let record = ScriptedStreamsServer.record(
            eventName: "MODIFY", keys: ["hem": ["S": .string(hem(1))]], newImage: ["hem": ["S": .string(hem(1))]],
            oldImage: ["hem": ["S": .string(hem(1))]], time: time)
        XCTAssertEqual(record["eventName"], "MODIFY")
        XCTAssertEqual(record["eventVersion"], "1.1")
        XCTAssertEqual(record["eventSource"], "aws:dynamodb")
        XCTAssertEqual(record["awsRegion"], "us-east-1")
        XCTAssertEqual(record["eventID"]?.stringValue?.count, 32)
        XCTAssertEqual(record["dynamodb"]?["ApproximateCreationDateTime"]?.intValue, 1_767_225_600)
        XCTAssertEqual(record["dynamodb"]?["StreamViewType"], "NEW_AND_OLD_IMAGES")
        XCTAssertGreaterThan(record["dynamodb"]?["SizeBytes"]?.intValue ?? 0, 0)
        XCTAssertNotNil(record["dynamodb"]?["OldImage"])
        XCTAssertNil(record["dynamodb"]?["SequenceNumber"], "the server assigns it")
    }
}
