import AWSWire
import Events
import Foundation
import JSON

/// The table's stream as DescribeTable reports it.
public struct TableStream: Sendable, Equatable {
    public var streamARN: String
    public var viewType: String
}

/// One shard of the stream, as DescribeStream lists it.
public struct ShardInfo: Sendable, Equatable {
    public var id: String
    public var parentID: String?
    public var startingSequenceNumber: String?
    /// Set once the shard is closed (split or rotated); reading it ends at this number.
    public var endingSequenceNumber: String?
    public var isClosed: Bool { endingSequenceNumber != nil }
}

/// Where a shard iterator starts.
public enum IteratorStart: Sendable, Equatable {
    case trimHorizon
    case latest
    case afterSequenceNumber(String)
}

/// One GetRecords page: the records (read from the body's bytes) and the next iterator (nil at
/// shard end).
public struct RecordsPage: Sendable {
    public var records: [StreamRecord]
    public var nextIterator: String?
    /// Sequence number of the last record, if any.
    public var lastSequenceNumber: String? { records.last?.sequenceNumber }
}

/// Why a Streams call could not be served, in the terms the reader acts on.
public enum StreamsFailure: Error, Sendable {
    /// ExpiredIteratorException: ask for a new iterator from the last processed record.
    case expiredIterator
    /// TrimmedDataAccessException: the records asked for are gone (older than 24 h).
    case trimmed
    /// ResourceNotFoundException: the shard (or stream) is gone.
    case notFound
    /// Anything else (throttling after retries, transport, 5xx): back off and try again.
    case other(AWSError)
}

/// Typed DynamoDB and DynamoDB Streams calls the stream reader makes.
public struct StreamsAPI: Sendable {
    public let client: AWSClient
    public init(client: AWSClient) { self.client = client }

    /// The table's latest stream, or a one-line reason why the reader cannot start.
    public func tableStream(table: String) async throws -> TableStream {
        let answer = try await client.dynamoDB("DescribeTable", ["TableName": .string(table)])
        guard let t = answer["Table"] else { throw StreamSetupError("DescribeTable \(table): no Table in the answer") }
        let spec = t["StreamSpecification"]
        guard spec?["StreamEnabled"]?.boolValue == true, let arn = t["LatestStreamArn"]?.stringValue else {
            throw StreamSetupError("table \(table) has no stream enabled (enable NEW_AND_OLD_IMAGES: hemstream table create)")
        }
        let view = spec?["StreamViewType"]?.stringValue ?? "?"
        guard view == "NEW_AND_OLD_IMAGES" else {
            throw StreamSetupError("table \(table)'s stream is \(view), not NEW_AND_OLD_IMAGES: change events need both images")
        }
        return TableStream(streamARN: arn, viewType: view)
    }

    /// Checks a pinned stream ARN (`--stream-arn`) and its view type.
    public func checkStream(arn: String) async throws {
        let d = try await client.dynamoDBStreams("DescribeStream", ["StreamArn": .string(arn), "Limit": 1])
        let view = d["StreamDescription"]?["StreamViewType"]?.stringValue ?? "?"
        guard view == "NEW_AND_OLD_IMAGES" else {
            throw StreamSetupError("stream \(arn) is \(view), not NEW_AND_OLD_IMAGES: change events need both images")
        }
    }

    /// Every shard of the stream, paged 100 at a time (LastEvaluatedShardId → ExclusiveStartShardId).
    /// `pace` is awaited between pages (DescribeStream allows about 10 calls a second).
    public func listShards(streamARN: String, pace: Duration = .milliseconds(100)) async throws -> [ShardInfo] {
        var shards: [ShardInfo] = []
        var start: String?
        repeat {
            var body: [String: JSON] = ["StreamArn": .string(streamARN), "Limit": 100]
            if let start { body["ExclusiveStartShardId"] = .string(start) }
            let d = try await client.dynamoDBStreams("DescribeStream", .object(body))["StreamDescription"]
            shards += Self.shards(d)
            let next = d?["LastEvaluatedShardId"]?.stringValue
            if next != nil, next == start { break }  // a server that repeats itself must not loop us
            start = next
            if start != nil { try await Task.sleep(for: pace) }
        } while start != nil
        return shards
    }

    /// The children of a finished shard through `ShardFilter {Type: CHILD_SHARDS}`; nil when the
    /// server does not know ShardFilter (the caller falls back to a full listing).
    public func childShards(streamARN: String, parent: String) async throws -> [ShardInfo]? {
        let body: JSON = [
            "StreamArn": .string(streamARN), "ShardFilter": ["Type": "CHILD_SHARDS", "ShardId": .string(parent)],
        ]
        do {
            let d = try await client.dynamoDBStreams("DescribeStream", body)["StreamDescription"]
            return Self.shards(d).filter { $0.parentID == parent }
        } catch let e as AWSError where e.code == "ValidationException" || e.code == "SerializationException"
            || e.code == "UnknownOperationException"
        {
            return nil
        }
    }

    static func shards(_ description: JSON?) -> [ShardInfo] {
        (description?["Shards"]?.arrayValue ?? []).compactMap { s in
            guard let id = s["ShardId"]?.stringValue else { return nil }
            let range = s["SequenceNumberRange"]
            return ShardInfo(
                id: id, parentID: s["ParentShardId"]?.stringValue,
                startingSequenceNumber: range?["StartingSequenceNumber"]?.stringValue,
                endingSequenceNumber: range?["EndingSequenceNumber"]?.stringValue)
        }
    }

    public func iterator(streamARN: String, shard: String, from start: IteratorStart) async throws(StreamsFailure)
        -> String
    {
        var body: [String: JSON] = ["StreamArn": .string(streamARN), "ShardId": .string(shard)]
        switch start {
        case .trimHorizon: body["ShardIteratorType"] = "TRIM_HORIZON"
        case .latest: body["ShardIteratorType"] = "LATEST"
        case .afterSequenceNumber(let s):
            body["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            body["SequenceNumber"] = .string(s)
        }
        let answer = try await call("GetShardIterator", .object(body))
        guard let it = answer["ShardIterator"]?.stringValue else { throw .notFound }
        return it
    }

    /// One page, read from the answer's bytes (no JSON tree) by `reader`, which a shard's read
    /// loop keeps from page to page.
    public func records(
        iterator: String, limit: Int = 1000, reader: inout StreamPageReader
    ) async throws(StreamsFailure) -> RecordsPage {
        let request: JSON = ["ShardIterator": .string(iterator), "Limit": .int(limit)]
        let body = try await call { try await client.dynamoDBStreamsRaw("GetRecords", body: request.serializedBytes()) }
        do {
            let page = try reader.read(body)
            return RecordsPage(records: page.records ?? [], nextIterator: page.nextIterator)
        } catch {
            throw .other(
                AWSError(
                    kind: .malformedResponse, service: .dynamoDBStreams, operation: "GetRecords",
                    message: "response is not JSON (\(error.description))"))
        }
    }

    func call(_ operation: String, _ body: JSON) async throws(StreamsFailure) -> JSON {
        try await call { try await client.dynamoDBStreams(operation, body) }
    }

    /// Runs one Streams call, turning its failure into what the reader acts on.
    func call<T>(_ run: () async throws -> T) async throws(StreamsFailure) -> T {
        do {
            return try await run()
        } catch let e as AWSError {
            switch e.code {
            case "ExpiredIteratorException": throw .expiredIterator
            case "TrimmedDataAccessException": throw .trimmed
            case "ResourceNotFoundException": throw .notFound
            default: throw .other(e)
            }
        } catch {
            throw .other(AWSError(kind: .transport, message: "\(error)"))
        }
    }
}

/// A reason the stream reader cannot start, as one line.
public struct StreamSetupError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
