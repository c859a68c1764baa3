import AWSWire
import Export
import Foundation
import JSON

/// What the calls of one job did; the loader adds these up per source.
public struct WriteStats: Sendable, Equatable {
    public var puts = 0
    public var deletes = 0
    public var moves = 0
    /// Put and delete requests sent (a retried request counts again); transactions count two per move.
    public var writeRequests = 0
    /// Calls made again: UnprocessedItems/UnprocessedKeys, throttling, transient failures.
    public var retries = 0
    /// Calls answered with a throttling error, plus calls that came back with unprocessed items.
    public var throttled = 0
    public var consumedCapacity = 0.0
    public var capacityReported = false

    public init() {}

    public mutating func add(_ other: WriteStats) {
        puts += other.puts
        deletes += other.deletes
        moves += other.moves
        writeRequests += other.writeRequests
        retries += other.retries
        throttled += other.throttled
        consumedCapacity += other.consumedCapacity
        capacityReported = capacityReported || other.capacityReported
    }
}

/// Writes to the table with BatchWriteItem, TransactWriteItems and BatchGetItem, retrying
/// UnprocessedItems, throttling and transient failures with exponential backoff and full
/// jitter. Throttling slows the loader down (the shared AdaptiveConcurrency halves the calls in
/// flight; `--max-wcu` paces through the bucket); only a call throttled without any progress for
/// longer than `maxThrottleSeconds` fails the load.
///
/// The AWSClient given here should not retry on its own (maxAttempts 1): this type owns the
/// retries, so a throttled call is not retried twice over.
public final class TableWriter: Sendable {
    public let client: AWSClient
    public let table: String
    public let concurrency: AdaptiveConcurrency
    public let bucket: WriteCapacityBucket?
    public let backoff: Backoff
    /// Seconds a call may stay throttled without progress (no item written, no answer) before it
    /// fails: a table throttled for that long is not coming back by itself.
    public let maxThrottleSeconds: Double
    /// Attempts for a transient (5xx, timeout, connection) failure.
    public let maxTransientAttempts: Int

    public init(
        client: AWSClient, table: String, concurrency: AdaptiveConcurrency, bucket: WriteCapacityBucket?,
        backoff: Backoff = Backoff(), maxThrottleSeconds: Double = 600, maxTransientAttempts: Int = 6
    ) {
        self.client = client
        self.table = table
        self.concurrency = concurrency
        self.bucket = bucket
        self.backoff = backoff
        self.maxThrottleSeconds = maxThrottleSeconds
        self.maxTransientAttempts = maxTransientAttempts
    }

    /// BatchWriteItem of puts and deletes (at most 25, distinct keys) until every request is processed.
    public func write(_ operations: [WriteOperation]) async throws -> WriteStats {
        var stats = WriteStats()
        var remaining = operations
        var stalled = Stall()
        while !remaining.isEmpty {
            if let bucket { try await bucket.acquire(remaining.reduce(0) { $0 + $1.writeUnits }) }
            stats.writeRequests += remaining.count
            let response = try await call("BatchWriteItem", RequestBodies.batchWrite(table: table, remaining), &stats)
            let unprocessed = unprocessedKeys(response)
            var next: [WriteOperation] = []
            for i in remaining.indices {
                if !unprocessed.isEmpty && unprocessed.contains(remaining[i].key) {
                    next.append(remaining[i])
                } else if remaining[i].isDelete {
                    stats.deletes += 1
                } else {
                    stats.puts += 1
                }
            }
            if next.isEmpty {
                concurrency.succeeded()
                return stats
            }
            try await backOffUnprocessed(
                left: next.count, sent: remaining.count, stalled: &stalled, operation: "BatchWriteItem",
                code: "UnprocessedItems", noun: "items", &stats)
            remaining = next
        }
        return stats
    }

    /// Unprocessed items or keys are DynamoDB's soft throttling: count it, slow the load down and
    /// back off before the caller resends them; fail once no item has been processed for
    /// `maxThrottleSeconds`.
    private func backOffUnprocessed(
        left: Int, sent: Int, stalled: inout Stall, operation: String, code: String, noun: String,
        _ stats: inout WriteStats
    ) async throws {
        stats.throttled += 1
        stats.retries += 1
        concurrency.throttled()
        if left < sent { stalled = Stall() }
        stalled.rounds += 1
        if stalled.seconds > maxThrottleSeconds {
            throw AWSError(
                kind: .service, service: .dynamoDB, operation: operation, code: code,
                message: "\(left) \(noun) still unprocessed after \(stalled.rounds) attempts in "
                    + "\(Int(stalled.seconds)) s without progress (--max-throttle-seconds \(Int(maxThrottleSeconds)))")
        }
        try await backoff.sleep(retry: stalled.rounds)
    }

    /// Rounds and time a call has been throttled since it last made progress.
    struct Stall {
        let since = ContinuousClock.now
        var rounds = 0
        var seconds: Double {
            let elapsed = ContinuousClock.now - since
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
    }

    /// One TransactWriteItems for up to 25 moves (Delete old key + Put new item each).
    public func move(_ moves: [(from: ItemKey, to: ExportRow)]) async throws -> WriteStats {
        var stats = WriteStats()
        if let bucket {
            try await bucket.acquire(
                moves.reduce(0) { $0 + WriteOperation.move(from: $1.from, to: $1.to).writeUnits } * 2)
        }
        stats.writeRequests += moves.count * 2
        _ = try await call("TransactWriteItems", RequestBodies.moves(table: table, moves), &stats)
        stats.moves += moves.count
        concurrency.succeeded()
        return stats
    }

    /// Which of `keys` exist (BatchGetItem, 100 keys per call, UnprocessedKeys retried).
    public func existing(_ keys: [ItemKey]) async throws -> (found: Set<ItemKey>, stats: WriteStats) {
        var stats = WriteStats()
        var found = Set<ItemKey>()
        var start = 0
        while start < keys.count {
            var remaining = Array(keys[start..<min(keys.count, start + 100)])
            start += 100
            var stalled = Stall()
            while !remaining.isEmpty {
                let response = try await call("BatchGetItem", RequestBodies.batchGet(table: table, remaining), &stats)
                for item in response["Responses"]?[table]?.arrayValue ?? [] {
                    if let key = Self.key(item) { found.insert(key) }
                }
                let unprocessed = (response["UnprocessedKeys"]?[table]?["Keys"]?.arrayValue ?? []).compactMap(Self.key)
                if unprocessed.isEmpty { break }
                try await backOffUnprocessed(
                    left: unprocessed.count, sent: remaining.count, stalled: &stalled, operation: "BatchGetItem",
                    code: "UnprocessedKeys", noun: "keys", &stats)
                remaining = unprocessed
            }
        }
        return (found, stats)
    }

    /// One DynamoDB call with the loader's retries; the parsed answer (an empty object for an empty body).
    func call(_ operation: String, _ body: [UInt8], _ stats: inout WriteStats) async throws -> JSON {
        let response = try await call(operation, body, &stats) { bytes in
            do {
                return bytes.isEmpty ? JSON.object([:]) : try JSON.parse(bytes)
            } catch {
                throw AWSError(
                    kind: .malformedResponse, service: .dynamoDB, operation: operation,
                    message: "response is not JSON (\(error))")
            }
        }
        for capacity in response["ConsumedCapacity"]?.arrayValue ?? [] {
            if let units = capacity["CapacityUnits"]?.doubleValue {
                stats.consumedCapacity += units
                stats.capacityReported = true
            }
        }
        return response
    }

    /// One DynamoDB call with the loader's retries, its answer read by `decode` (an AWSError it
    /// throws is retried as the call's own would be).
    func call<Answer>(
        _ operation: String, _ body: [UInt8], _ stats: inout WriteStats, decode: ([UInt8]) throws -> Answer
    ) async throws -> Answer {
        var throttled: Stall?
        var transientAttempts = 0
        while true {
            do {
                return try decode(try await client.dynamoDBRaw(operation, body: body))
            } catch let error as AWSError {
                if Self.isThrottling(error) {
                    stats.throttled += 1
                    var stall = throttled ?? Stall()
                    stall.rounds += 1
                    throttled = stall
                    concurrency.throttled()
                    guard stall.seconds <= maxThrottleSeconds else {
                        var failed = error
                        failed.attempts = stall.rounds
                        failed.message +=
                            " (throttled for \(Int(stall.seconds)) s, --max-throttle-seconds \(Int(maxThrottleSeconds)))"
                        throw failed
                    }
                    stats.retries += 1
                    try await backoff.sleep(retry: stall.rounds)
                } else if error.isRetryable {
                    transientAttempts += 1
                    guard transientAttempts < maxTransientAttempts else { throw error }
                    stats.retries += 1
                    try await backoff.sleep(retry: transientAttempts)
                } else {
                    throw error
                }
            }
        }
    }

    /// Throttling, including a transaction cancelled for a conflict or for throttling.
    static func isThrottling(_ error: AWSError) -> Bool {
        if error.isThrottling { return true }
        if error.code == "TransactionCanceledException" {
            return ["TransactionConflict", "Throttl", "ProvisionedThroughputExceeded"].contains {
                error.message.contains($0)
            }
        }
        return false
    }

    func unprocessedKeys(_ response: JSON) -> Set<ItemKey> {
        var keys = Set<ItemKey>()
        for request in response["UnprocessedItems"]?[table]?.arrayValue ?? [] {
            if let item = request["PutRequest"]?["Item"], let key = Self.key(item) { keys.insert(key) }
            if let item = request["DeleteRequest"]?["Key"], let key = Self.key(item) { keys.insert(key) }
        }
        return keys
    }

    static func key(_ item: JSON) -> ItemKey? {
        guard let vup = item["vup_id"]?["S"]?.stringValue, let hem = item["hem"]?["S"]?.stringValue else { return nil }
        return ItemKey(vupID: vup, hem: hem)
    }
}
