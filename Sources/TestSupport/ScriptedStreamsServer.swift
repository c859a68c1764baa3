import Foundation
import JSON
import Synchronization

/// A DynamoDB Streams endpoint for tests that serves one stream a test scripts while a
/// client reads it: shards opened, appended to, closed, split, trimmed and removed, plus
/// the faults real streams show (empty pages, throttling, expired iterators, trimmed data)
/// that moto cannot produce. Speaks the JSON 1.0 protocol on 127.0.0.1 and ignores SigV4.
///
/// Sequence numbers are assigned by the server, strictly increasing across all shards, and
/// printed as 21-digit decimal strings. DescribeStream lists shards in shard-id order, so
/// give shards ids that sort in creation order (`shardID(_:)` makes such ids).
public final class ScriptedStreamsServer: Sendable {
    public let streamArn: String
    public var port: Int { http.port }
    public var endpoint: String { http.endpoint }

    private let http: ScriptedHTTPServer
    private let core: Core

    /// One GetRecords call on a shard, for assertions about pacing and faults.
    public struct GetRecordsCall: Sendable, Equatable {
        public var shardID: String
        public var time: Date
        /// Records returned (0 for an empty page or an error).
        public var recordCount: Int
        /// The AWS error code answered, nil for a success.
        public var errorCode: String?
    }

    /// - Parameters:
    ///   - streamArn: the one stream served; TableName and StreamLabel are taken from it.
    ///   - keySchema: the table's KeySchema as DescribeStream reports it.
    ///   - describePageSize: DescribeStream's default and largest page (AWS: 100).
    ///   - maxRecordsPerPage: GetRecords' largest page whatever the Limit (AWS: 1000).
    ///   - supportsShardFilter: false answers a ShardFilter with ValidationException, as an
    ///     endpoint from before the parameter existed would.
    ///   - emptyPagesBeforeRecords: empty pages each GetShardIterator iterator returns first.
    public init(
        streamArn: String,
        keySchema: JSON = [["AttributeName": "hem", "KeyType": "HASH"]],
        describePageSize: Int = 100, maxRecordsPerPage: Int = 1000, supportsShardFilter: Bool = true,
        emptyPagesBeforeRecords: Int = 0
    ) throws {
        self.streamArn = streamArn
        var settings = Settings()
        settings.describePageSize = describePageSize
        settings.maxRecordsPerPage = maxRecordsPerPage
        settings.supportsShardFilter = supportsShardFilter
        settings.emptyPagesBeforeRecords = emptyPagesBeforeRecords
        let core = Core(streamArn: streamArn, keySchema: keySchema, settings: settings)
        self.core = core
        self.http = try ScriptedHTTPServer { [core] request, _ in core.handle(request) }
    }

    deinit { http.stop() }

    public func stop() { http.stop() }

    // MARK: Knobs

    /// DescribeStream's default and largest page.
    public var describePageSize: Int {
        get { core.state.withLock { $0.settings.describePageSize } }
        set { core.state.withLock { $0.settings.describePageSize = max(1, newValue) } }
    }

    /// GetRecords' largest page, whatever the request's Limit.
    public var maxRecordsPerPage: Int {
        get { core.state.withLock { $0.settings.maxRecordsPerPage } }
        set { core.state.withLock { $0.settings.maxRecordsPerPage = max(1, newValue) } }
    }

    /// When false, a DescribeStream with ShardFilter answers 400 ValidationException.
    public var supportsShardFilter: Bool {
        get { core.state.withLock { $0.settings.supportsShardFilter } }
        set { core.state.withLock { $0.settings.supportsShardFilter = newValue } }
    }

    /// Empty pages (with a next iterator) that each iterator from GetShardIterator returns
    /// before any records, as real streams often do. Applies to iterators issued afterwards.
    public var emptyPagesBeforeRecords: Int {
        get { core.state.withLock { $0.settings.emptyPagesBeforeRecords } }
        set { core.state.withLock { $0.settings.emptyPagesBeforeRecords = max(0, newValue) } }
    }

    /// The next `n` GetRecords calls (retries included) answer 400 LimitExceededException.
    public func throttleNextGetRecords(_ n: Int) {
        core.state.withLock { $0.throttledGetRecordsLeft += max(0, n) }
    }

    /// Iterators issued before `date` (default: now) answer 400 ExpiredIteratorException from now on.
    public func expireIterators(issuedBefore date: Date = Date()) {
        core.state.withLock { s in s.expiredBefore = max(s.expiredBefore ?? date, date) }
    }

    /// Every iterator issued so far answers 400 ExpiredIteratorException from now on.
    public func expireAllIterators() {
        core.state.withLock { $0.expiredThroughSerial = $0.lastIteratorSerial }
    }

    // MARK: Scripting the stream

    /// A shard id like real ones ("shardId-00000001700000000042-0000002a") that sorts by `n`.
    public static func shardID(_ n: Int) -> String {
        let time = String(1_700_000_000_000 + n)
        let hex = String(n, radix: 16)
        return "shardId-" + String(repeating: "0", count: max(0, 20 - time.count)) + time + "-"
            + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }

    /// Opens a shard, optionally with records; returns their assigned sequence numbers.
    @discardableResult
    public func addShard(id: String, parent: String? = nil, records: [JSON] = []) -> [String] {
        core.state.withLock { s in
            precondition(s.shards[id] == nil && !s.removed.contains(id), "shard \(id) already exists")
            let start = s.nextSequence
            s.shards[id] = Shard(id: id, parent: parent, start: start, trimmedBefore: start)
            if records.isEmpty { s.nextSequence += 1 }
            return s.append(records, to: id)
        }
    }

    /// Adds records to an open shard; returns their assigned sequence numbers.
    @discardableResult
    public func append(shard: String, records: [JSON]) -> [String] {
        core.state.withLock { s in
            precondition(s.shards[shard] != nil, "no shard \(shard)")
            precondition(s.shards[shard]!.end == nil, "shard \(shard) is closed")
            return s.append(records, to: shard)
        }
    }

    /// Closes a shard: it gets an EndingSequenceNumber, and a reader at its end gets no
    /// NextShardIterator.
    public func close(shard: String) {
        core.state.withLock { s in
            precondition(s.shards[shard] != nil, "no shard \(shard)")
            guard s.shards[shard]!.end == nil else { return }
            s.shards[shard]!.end = s.nextSequence
            s.nextSequence += 1
        }
    }

    /// Closes `shard` and opens one or two children whose ParentShardId is `shard`.
    public func split(shard: String, into children: [String]) {
        precondition((1...2).contains(children.count), "a shard splits into one or two children")
        close(shard: shard)
        for child in children { addShard(id: child, parent: shard) }
    }

    /// Trims a shard's records with sequence numbers below `sequenceNumber`: TRIM_HORIZON
    /// then starts at the first kept record, and reading a trimmed position answers 400
    /// TrimmedDataAccessException.
    public func trim(shard: String, before sequenceNumber: String) {
        guard let n = Self.parseSequence(sequenceNumber) else { preconditionFailure("bad sequence number") }
        core.state.withLock { s in
            precondition(s.shards[shard] != nil, "no shard \(shard)")
            s.shards[shard]!.trimmedBefore = max(s.shards[shard]!.trimmedBefore, n)
            s.shards[shard]!.records.removeAll { $0.sequence < n }
        }
    }

    /// A whole shard trimmed away: gone from DescribeStream, GetShardIterator on it answers
    /// 400 ResourceNotFoundException and GetRecords on its iterators TrimmedDataAccessException.
    public func removeShard(_ id: String) {
        core.state.withLock { s in
            if s.shards.removeValue(forKey: id) != nil { s.removed.insert(id) }
        }
    }

    /// A realistic NEW_AND_OLD_IMAGES stream record (the server adds its SequenceNumber).
    /// Keys and images are DynamoDB attribute-value maps; the time is rounded down to the
    /// second, as ApproximateCreationDateTime is.
    public static func record(
        eventName: String, keys: JSON, newImage: JSON? = nil, oldImage: JSON? = nil, time: Date = Date(),
        region: String = "us-east-1"
    ) -> JSON {
        var dynamodb: [String: JSON] = [
            "ApproximateCreationDateTime": .int(Int(time.timeIntervalSince1970.rounded(.down))),
            "Keys": keys,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        ]
        var size = keys.serializedBytes().count
        if let newImage {
            dynamodb["NewImage"] = newImage
            size += newImage.serializedBytes().count
        }
        if let oldImage {
            dynamodb["OldImage"] = oldImage
            size += oldImage.serializedBytes().count
        }
        dynamodb["SizeBytes"] = .int(size)
        let eventID = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        return [
            "eventID": .string(eventID),
            "eventName": .string(eventName),
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": .string(region),
            "dynamodb": .object(dynamodb),
        ]
    }

    // MARK: Introspection

    /// Calls received per operation ("GetRecords": 12), failed ones included.
    public var callCounts: [String: Int] { core.state.withLock { $0.callCounts } }

    public func callCount(_ operation: String) -> Int { core.state.withLock { $0.callCounts[operation] ?? 0 } }

    /// GetRecords calls whose iterator named `shard`, in arrival order.
    public func getRecordsCalls(shard: String) -> [GetRecordsCall] {
        core.state.withLock { $0.getRecordsCalls.filter { $0.shardID == shard } }
    }

    /// Shards DescribeStream lists now, in order.
    public var shardIDs: [String] { core.state.withLock { $0.shards.keys.sorted() } }

    /// Records a shard still holds (trimmed ones are gone), with their SequenceNumbers.
    public func records(shard: String) -> [JSON] {
        core.state.withLock { $0.shards[shard]?.records.map(\.json) ?? [] }
    }

    // MARK: Internals

    static func formatSequence(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 21 - digits.count)) + digits
    }

    static func parseSequence(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let trimmed = text.drop(while: { $0 == "0" })
        return trimmed.isEmpty ? 0 : Int(trimmed)
    }

    struct Settings {
        var describePageSize = 100
        var maxRecordsPerPage = 1000
        var supportsShardFilter = true
        var emptyPagesBeforeRecords = 0
    }

    struct StoredRecord {
        var sequence: Int
        var json: JSON
    }

    struct Shard {
        var id: String
        var parent: String?
        var start: Int
        /// Positions below this are trimmed.
        var trimmedBefore: Int
        var end: Int?
        var records: [StoredRecord] = []

        init(id: String, parent: String?, start: Int, trimmedBefore: Int) {
            self.id = id
            self.parent = parent
            self.start = start
            self.trimmedBefore = trimmedBefore
        }
    }

    /// What an iterator token stands for: the next record read is the first with a sequence
    /// number at or above `position`.
    struct Iterator {
        var shardID: String
        var position: Int
        var emptyPagesLeft: Int
        var serial: Int
        var issued: Date
    }

    struct State {
        var settings: Settings
        var shards: [String: Shard] = [:]
        var removed: Set<String> = []
        var nextSequence = 1
        var iterators: [String: Iterator] = [:]
        var lastIteratorSerial = 0
        var expiredThroughSerial = 0
        var expiredBefore: Date?
        var throttledGetRecordsLeft = 0
        var callCounts: [String: Int] = [:]
        var getRecordsCalls: [GetRecordsCall] = []

        mutating func append(_ records: [JSON], to shard: String) -> [String] {
            var assigned: [String] = []
            for record in records {
                let sequence = nextSequence
                nextSequence += 1
                let text = ScriptedStreamsServer.formatSequence(sequence)
                var members = record.objectValue ?? [:]
                var dynamodb = members["dynamodb"]?.objectValue ?? [:]
                dynamodb["SequenceNumber"] = .string(text)
                members["dynamodb"] = .object(dynamodb)
                shards[shard]!.records.append(StoredRecord(sequence: sequence, json: .object(members)))
                assigned.append(text)
            }
            return assigned
        }

        mutating func issueIterator(
            streamArn: String, shardID: String, position: Int, emptyPages: Int
        ) -> String {
            lastIteratorSerial += 1
            let serial = lastIteratorSerial
            var random = SystemRandomNumberGenerator()
            let blob = (0..<6).map { _ in random.next() as UInt64 }.map { String($0, radix: 16) }.joined()
            let token = "\(streamArn)|1|" + Data("\(serial):\(blob)".utf8).base64EncodedString()
            iterators[token] = Iterator(
                shardID: shardID, position: position, emptyPagesLeft: emptyPages, serial: serial, issued: Date())
            return token
        }
    }

    /// The request handler; owned by the HTTP server's closure, so it holds no reference
    /// back to the ScriptedStreamsServer (whose deinit stops the HTTP server).
    final class Core: Sendable {
        let streamArn: String
        let keySchema: JSON
        let state: Mutex<State>

        init(streamArn: String, keySchema: JSON, settings: Settings) {
            self.streamArn = streamArn
            self.keySchema = keySchema
            self.state = Mutex(State(settings: settings))
        }

        /// A 400 (or other) answer in AWS's JSON error form.
        struct Failure: Error {
            var status = 400
            var code: String
            var message: String
        }

        func handle(_ request: RecordedRequest) -> ScriptedResponse {
            let prefix = "DynamoDBStreams_20120810."
            guard let target = request.header("X-Amz-Target"), target.hasPrefix(prefix) else {
                return error(Failure(code: "UnknownOperationException", message: "missing or unknown X-Amz-Target"))
            }
            let operation = String(target.dropFirst(prefix.count))
            state.withLock { $0.callCounts[operation, default: 0] += 1 }
            let body: JSON
            do {
                body = try JSON.parse(request.body.isEmpty ? Array("{}".utf8) : request.body)
            } catch {
                return self.error(Failure(code: "SerializationException", message: "request body is not JSON"))
            }
            do {
                let result: JSON
                switch operation {
                case "DescribeStream": result = try describeStream(body)
                case "GetShardIterator": result = try getShardIterator(body)
                case "GetRecords": result = try getRecords(body)
                case "ListStreams": result = listStreams()
                default: throw Failure(code: "UnknownOperationException", message: "unknown operation \(operation)")
                }
                return .json(200, result.serialized())
            } catch let failure as Failure {
                return error(failure)
            } catch {
                return self.error(Failure(status: 500, code: "InternalServerError", message: "\(error)"))
            }
        }

        private func error(_ failure: Failure) -> ScriptedResponse {
            let body: JSON = [
                "__type": .string("com.amazonaws.dynamodb.v20120810#" + failure.code),
                "message": .string(failure.message),
            ]
            return .json(failure.status, body.serialized())
        }

        private func checkStream(_ body: JSON) throws {
            guard let arn = body["StreamArn"]?.stringValue else {
                throw Failure(code: "ValidationException", message: "StreamArn is required")
            }
            guard arn == streamArn else {
                throw Failure(
                    code: "ResourceNotFoundException", message: "Requested resource not found: Stream: \(arn) not found"
                )
            }
        }

        private var tableName: String {
            let parts = streamArn.split(separator: "/")
            return parts.count > 1 ? String(parts[1]) : ""
        }

        private var streamLabel: String {
            guard let range = streamArn.range(of: "/stream/") else { return "" }
            return String(streamArn[range.upperBound...])
        }

        private func listStreams() -> JSON {
            [
                "Streams": [
                    [
                        "StreamArn": .string(streamArn), "TableName": .string(tableName),
                        "StreamLabel": .string(streamLabel),
                    ]
                ]
            ]
        }

        private func describeStream(_ body: JSON) throws -> JSON {
            try checkStream(body)
            return try state.withLock { s throws(Failure) -> JSON in
                var limit = s.settings.describePageSize
                if let requested = body["Limit"] {
                    guard let n = requested.intValue, (1...max(100, s.settings.describePageSize)).contains(n) else {
                        throw Failure(code: "ValidationException", message: "Limit must be between 1 and 100")
                    }
                    limit = min(n, s.settings.describePageSize)
                }
                var ids = s.shards.keys.sorted()
                if let filter = body["ShardFilter"] {
                    guard s.settings.supportsShardFilter else {
                        throw Failure(
                            code: "ValidationException",
                            message:
                                "1 validation error detected: ShardFilter is not a known parameter of DescribeStream")
                    }
                    guard filter["Type"]?.stringValue == "CHILD_SHARDS", let parent = filter["ShardId"]?.stringValue
                    else {
                        throw Failure(
                            code: "ValidationException", message: "ShardFilter needs Type CHILD_SHARDS and a ShardId")
                    }
                    ids = ids.filter { s.shards[$0]!.parent == parent }
                }
                if let start = body["ExclusiveStartShardId"]?.stringValue {
                    ids = ids.filter { $0 > start }
                }
                let page = ids.prefix(limit)
                let shards: [JSON] = page.map { id in
                    let shard = s.shards[id]!
                    var range: [String: JSON] = ["StartingSequenceNumber": .string(formatSequence(shard.start))]
                    if let end = shard.end { range["EndingSequenceNumber"] = .string(formatSequence(end)) }
                    var entry: [String: JSON] = ["ShardId": .string(id), "SequenceNumberRange": .object(range)]
                    if let parent = shard.parent { entry["ParentShardId"] = .string(parent) }
                    return .object(entry)
                }
                var description: [String: JSON] = [
                    "StreamArn": .string(streamArn), "StreamLabel": .string(streamLabel), "StreamStatus": "ENABLED",
                    "StreamViewType": "NEW_AND_OLD_IMAGES", "TableName": .string(tableName), "KeySchema": keySchema,
                    "Shards": .array(shards),
                ]
                if ids.count > page.count, let last = page.last { description["LastEvaluatedShardId"] = .string(last) }
                return ["StreamDescription": .object(description)]
            }
        }

        private func getShardIterator(_ body: JSON) throws -> JSON {
            try checkStream(body)
            guard let shardID = body["ShardId"]?.stringValue else {
                throw Failure(code: "ValidationException", message: "ShardId is required")
            }
            guard let type = body["ShardIteratorType"]?.stringValue else {
                throw Failure(code: "ValidationException", message: "ShardIteratorType is required")
            }
            return try state.withLock { s throws(Failure) -> JSON in
                guard let shard = s.shards[shardID] else {
                    throw Failure(
                        code: "ResourceNotFoundException", message: "Requested resource not found: Shard does not exist"
                    )
                }
                let position: Int
                switch type {
                case "TRIM_HORIZON":
                    position = shard.trimmedBefore
                case "LATEST":
                    position = shard.end.map { $0 + 1 } ?? s.nextSequence
                case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
                    guard let text = body["SequenceNumber"]?.stringValue, let n = parseSequence(text) else {
                        throw Failure(code: "ValidationException", message: "\(type) needs a valid SequenceNumber")
                    }
                    let at = type == "AT_SEQUENCE_NUMBER" ? n : n + 1
                    if at < shard.trimmedBefore {
                        throw Failure(
                            code: "TrimmedDataAccessException",
                            message: "Attempted to access data that was trimmed from the stream: \(text) in \(shardID)")
                    }
                    if n < shard.start || n > (shard.end ?? (s.nextSequence - 1)) {
                        throw Failure(
                            code: "ValidationException",
                            message: "Invalid SequenceNumber \(text) for ShardIteratorType \(type) in \(shardID)")
                    }
                    position = at
                default:
                    throw Failure(code: "ValidationException", message: "unknown ShardIteratorType \(type)")
                }
                let token = s.issueIterator(
                    streamArn: streamArn, shardID: shardID, position: position,
                    emptyPages: s.settings.emptyPagesBeforeRecords)
                return ["ShardIterator": .string(token)]
            }
        }

        private func getRecords(_ body: JSON) throws -> JSON {
            try state.withLock { s throws(Failure) -> JSON in
                var shardID: String?
                var returned = 0
                do throws(Failure) {
                    let result = try getRecords(body, &s, shardID: &shardID, returned: &returned)
                    if let shardID {
                        s.getRecordsCalls.append(GetRecordsCall(shardID: shardID, time: Date(), recordCount: returned))
                    }
                    return result
                } catch {
                    if let shardID {
                        s.getRecordsCalls.append(
                            GetRecordsCall(shardID: shardID, time: Date(), recordCount: 0, errorCode: error.code))
                    }
                    throw error
                }
            }
        }

        private func getRecords(
            _ body: JSON, _ s: inout State, shardID: inout String?, returned: inout Int
        ) throws(Failure) -> JSON {
            guard let token = body["ShardIterator"]?.stringValue else {
                throw Failure(code: "ValidationException", message: "ShardIterator is required")
            }
            let iterator = s.iterators[token]
            shardID = iterator?.shardID
            var limit = 1000
            if let requested = body["Limit"] {
                guard let n = requested.intValue, (1...1000).contains(n) else {
                    throw Failure(
                        code: "ValidationException",
                        message: "1 validation error detected: Value at 'limit' failed to satisfy constraint: "
                            + "Member must have value less than or equal to 1000")
                }
                limit = n
            }
            limit = min(limit, s.settings.maxRecordsPerPage)
            if s.throttledGetRecordsLeft > 0 {
                s.throttledGetRecordsLeft -= 1
                throw Failure(code: "LimitExceededException", message: "Rate exceeded for shard \(shardID ?? "?")")
            }
            guard let iterator else {
                throw Failure(code: "ValidationException", message: "Invalid ShardIterator")
            }
            if iterator.serial <= s.expiredThroughSerial || s.expiredBefore.map({ iterator.issued < $0 }) == true {
                throw Failure(code: "ExpiredIteratorException", message: "Iterator expired")
            }
            guard let shard = s.shards[iterator.shardID] else {
                throw Failure(
                    code: "TrimmedDataAccessException",
                    message: "Attempted to access data that was trimmed from the stream: shard \(iterator.shardID)")
            }
            if iterator.position < shard.trimmedBefore {
                throw Failure(
                    code: "TrimmedDataAccessException",
                    message: "Attempted to access data that was trimmed from the stream in \(iterator.shardID)")
            }
            if iterator.emptyPagesLeft > 0 {
                let next = s.issueIterator(
                    streamArn: streamArn, shardID: shard.id, position: iterator.position,
                    emptyPages: iterator.emptyPagesLeft - 1)
                return ["Records": [], "NextShardIterator": .string(next)]
            }
            let first = shard.records.firstIndex { $0.sequence >= iterator.position } ?? shard.records.count
            let page = shard.records[first..<min(first + limit, shard.records.count)]
            returned = page.count
            var result: [String: JSON] = ["Records": .array(page.map(\.json))]
            let atEnd = first + page.count == shard.records.count
            if !(atEnd && shard.end != nil) {
                let position = page.last.map { $0.sequence + 1 } ?? iterator.position
                result["NextShardIterator"] = .string(
                    s.issueIterator(streamArn: streamArn, shardID: shard.id, position: position, emptyPages: 0))
            }
            return .object(result)
        }
    }
}
