import AWSWire
import Export
import Foundation
import JSON
import Synchronization
import TestSupport
import XCTest

@testable import Loader

/// The loader against a scripted DynamoDB that throttles, answers with UnprocessedItems and
/// UnprocessedKeys, and leaves out keys a real answer would have: every row still arrives.
final class ThrottledServerTests: XCTestCase {
    func testLoad_whenServerThrottlesAndLeavesItemsUnprocessed_everyRowIsWritten() async throws {
        let received = Mutex<[String: String]>([:])  // hem -> vup_id of the items accepted
        let deleted = Mutex<Set<String>>([])  // hems whose sentinel item was deleted by a move
        let server = try ScriptedHTTPServer { request, index in
            let target = request.header("X-Amz-Target") ?? ""
            guard let body = try? JSON.parse(request.body) else {
                return .awsJSONError(400, "SerializationException", "bad")
            }
            if target.hasSuffix("BatchGetItem") {
                if index % 2 == 0 { return .json(200, #"{"UnprocessedKeys":\#(body["RequestItems"]!.serialized())}"#) }
                // Every sentinel of a hem ending in "1" exists: those rows become moves.
                let keys = body["RequestItems"]?["t"]?["Keys"]?.arrayValue ?? []
                let found = keys.filter { $0["hem"]?["S"]?.stringValue?.hasSuffix("1") == true }
                return .json(200, #"{"Responses":{"t":\#(JSON.array(found).serialized())}}"#)
            }
            if target.hasSuffix("TransactWriteItems") {
                if index % 3 == 0 {
                    return .awsJSONError(
                        400, "TransactionCanceledException",
                        "Transaction cancelled, please refer cancellation reasons for specific reasons "
                            + "[None, ThrottlingError]"
                    )
                }
                received.withLock { items in
                    for action in body["TransactItems"]?.arrayValue ?? [] {
                        if let key = action["Delete"]?["Key"] {
                            deleted.withLock { $0.insert(key["hem"]!["S"]!.stringValue!) }
                        }
                        if let item = action["Put"]?["Item"] {
                            items[item["hem"]!["S"]!.stringValue!] = item["vup_id"]!["S"]!.stringValue!
                        }
                    }
                }
                return .json(200, "{}")
            }
            switch index % 4 {
            case 0: return .awsJSONError(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
            case 1:
                return .awsJSONError(
                    400, "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput was exceeded.")
            default:
                let requests = body["RequestItems"]?["t"]?.arrayValue ?? []
                let keep = index % 4 == 2 ? requests.count / 2 : requests.count
                received.withLock { items in
                    for r in requests.prefix(keep) {
                        let item = r["PutRequest"]!["Item"]!
                        items[item["hem"]!["S"]!.stringValue!] = item["vup_id"]!["S"]!.stringValue!
                    }
                }
                if keep == requests.count { return .json(200, #"{"UnprocessedItems":{}}"#) }
                let rest = JSON.array(Array(requests.dropFirst(keep)))
                return .json(200, #"{"UnprocessedItems":{"t":\#(rest.serialized())}}"#)
            }
        }
        let dir = try TemporaryDirectory()
        var csv = "hem,vup_id,email,updated_at\n"
        var expected: [String: String] = [:]
        for i in 0..<300 {
            let hem = String(format: "%032x", i * 7919 + 1)
            let vup = i % 2 == 0 ? "VUP-\(i)" : ""
            csv += "\(hem),\(vup),u\(i)@example.invalid,2026-11-24T06:00:00Z\n"
            expected[hem] = vup.isEmpty ? "UNRESOLVED#" + hem.prefix(2) : vup
        }
        try csv.write(to: dir.file("e.csv"), atomically: true, encoding: .utf8)

        let configuration = try AWSConfiguration.resolve(
            region: nil,
            environment: [
                "AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_REGION": "us-east-1",
            ])
        let client = AWSClient(configuration: configuration, retryPolicy: RetryPolicy(maxAttempts: 1))
        let loader = Loader(client: client, options: LoadOptions(table: "t", concurrency: 4))
        let summary = try await loader.load(.file(path: dir.file("e.csv").path), size: nil, client: nil)

        XCTAssertEqual(received.withLock { $0 }, expected)
        let moved = Set(expected.filter { !$0.value.hasPrefix("UNRESOLVED#") && $0.key.hasSuffix("1") }.keys)
        XCTAssertFalse(moved.isEmpty)
        XCTAssertEqual(deleted.withLock { $0 }, moved)
        XCTAssertEqual(summary.stats.moves, moved.count)
        XCTAssertEqual(summary.stats.puts, 300 - moved.count)
        XCTAssertGreaterThan(summary.stats.throttled, 0)
        XCTAssertGreaterThan(summary.stats.retries, 0)
        XCTAssertEqual(summary.rejectedTotal, 0)
    }

    /// A writer against `server` with a fast backoff, so many throttled rounds take little time.
    func writer(_ server: ScriptedHTTPServer, maxThrottleSeconds: Double) throws -> TableWriter {
        let configuration = try AWSConfiguration.resolve(
            region: nil,
            environment: [
                "AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_REGION": "us-east-1",
            ])
        return TableWriter(
            client: AWSClient(configuration: configuration, retryPolicy: RetryPolicy(maxAttempts: 1)), table: "t",
            concurrency: AdaptiveConcurrency(maximum: 1), bucket: nil, backoff: Backoff(base: 0.001, cap: 0.004),
            maxThrottleSeconds: maxThrottleSeconds)
    }

    static let row = ExportRow(
        hem: String(repeating: "a", count: 32), vupID: "VUP-1", email: nil, domain: nil, source: nil, lastVerified: nil,
        updatedAt: "2026-11-24T06:00:00Z", line: 2)

    /// The limit is time without progress, not a count of attempts: 150 throttled answers in a
    /// row (more than any fixed attempt budget the loader used to have) still end in a write.
    func testWrite_whenThrottledManyTimesWithinTheLimit_isWritten() async throws {
        let server = try ScriptedHTTPServer { _, index in
            index < 150
                ? .awsJSONError(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
                : .json(200, #"{"UnprocessedItems":{}}"#)
        }
        let stats = try await writer(server, maxThrottleSeconds: 60).write([.put(Self.row)])
        XCTAssertEqual(stats.puts, 1)
        XCTAssertEqual(stats.throttled, 150)
        XCTAssertEqual(server.requestCount, 151)
    }

    /// A table that never stops throttling fails the load once the limit has passed, naming
    /// the AWS code and the limit; unprocessed items without progress likewise.
    func testWrite_whenThrottledWithoutProgressPastTheLimit_failsNamingCodeAndLimit() async throws {
        let throttling = try ScriptedHTTPServer { _, _ in
            .awsJSONError(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
        }
        let started = ContinuousClock.now
        let error = await captureError {
            try await self.writer(throttling, maxThrottleSeconds: 0.5).write([.put(Self.row)])
        }
        let elapsed = ContinuousClock.now - started
        let aws = try XCTUnwrap(error as? AWSError, "\(String(describing: error))")
        XCTAssertEqual(aws.code, "ThrottlingException")
        XCTAssertTrue(aws.description.contains("--max-throttle-seconds 0"), aws.description)
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(500))
        XCTAssertLessThan(elapsed, .seconds(10))

        let unprocessed = try ScriptedHTTPServer { request, _ in
            let body = try! JSON.parse(request.body)
            return .json(200, #"{"UnprocessedItems":\#(body["RequestItems"]!.serialized())}"#)
        }
        let stalled = await captureError {
            try await self.writer(unprocessed, maxThrottleSeconds: 0.5).write([.put(Self.row)])
        }
        let stalledAWS = try XCTUnwrap(stalled as? AWSError, "\(String(describing: stalled))")
        XCTAssertEqual(stalledAWS.code, "UnprocessedItems")
        XCTAssertTrue(stalledAWS.description.contains("without progress"), stalledAWS.description)
    }
}
