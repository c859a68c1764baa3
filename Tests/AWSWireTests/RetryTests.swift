import AWSWire
import JSON
import TestSupport
import XCTest

final class RetryTests: XCTestCase {
    func testRetry_when500Then500Then200_succeedsAfterTwoRetries() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .json(500, #"{"__type":"InternalServerError","message":"boom"}"#),
            .text(500, "oops"),
            .json(200, #"{"TableNames":["a"]}"#),
        ])
        let client = try makeClient(endpoint: server.endpoint)
        let result = try await client.dynamoDB("ListTables", [:])
        XCTAssertEqual(result["TableNames"], ["a"])
        XCTAssertEqual(server.requestCount, 3)
        XCTAssertEqual(client.metrics, AWSClientMetrics(requests: 3, retries: 2, throttled: 0))
        XCTAssertEqual(client.retryQuotaAvailable, 500, "a success refunds what its retries took")
    }

    func testRetry_when400ValidationException_doesNotRetry() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .awsJSONError(400, "ValidationException", "bad"), .json(200, "{}"),
        ])
        let client = try makeClient(endpoint: server.endpoint)
        let error = await captureError { try await client.dynamoDB("PutItem", [:]) } as? AWSError
        XCTAssertEqual(error?.code, "ValidationException")
        XCTAssertEqual(server.requestCount, 1)
        XCTAssertEqual(client.metrics.retries, 0)
    }

    func testRetry_whenConditionalCheckFailed_doesNotRetry() async throws {
        let server = try ScriptedHTTPServer(responses: [.awsJSONError(400, "ConditionalCheckFailedException", "no")])
        let client = try makeClient(endpoint: server.endpoint)
        let error = await captureError { try await client.dynamoDB("PutItem", [:]) } as? AWSError
        XCTAssertEqual(error?.kind, .service)
        XCTAssertEqual(error?.code, "ConditionalCheckFailedException", "the caller must see the condition failed")
        XCTAssertEqual(error?.isRetryable, false)
        XCTAssertEqual(error?.attempts, 1)
        XCTAssertEqual(server.requestCount, 1)
    }

    func testRetry_whenThrottled_retriesAndCountsThrottling() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .awsJSONError(400, "ProvisionedThroughputExceededException", "slow down"),
            .awsJSONError(400, "ThrottlingException", "Rate exceeded"),
            .json(200, "{}"),
        ])
        let client = try makeClient(endpoint: server.endpoint)
        _ = try await client.dynamoDB("BatchWriteItem", [:])
        XCTAssertEqual(server.requestCount, 3)
        XCTAssertEqual(client.metrics.throttled, 2)
        XCTAssertEqual(client.metrics.retries, 2)
    }

    func testRetry_whenAlwaysThrottled_stopsAtMaxAttemptsWithThrottlingError() async throws {
        let server = try ScriptedHTTPServer(responses: [.awsJSONError(400, "ThrottlingException", "Rate exceeded")])
        var policy = RetryPolicy.fastForTests
        policy.maxAttempts = 4
        let client = try makeClient(endpoint: server.endpoint, retryPolicy: policy)
        let error = await captureError { try await client.dynamoDB("Query", [:]) } as? AWSError
        XCTAssertEqual(server.requestCount, 4)
        XCTAssertEqual(error?.isThrottling, true)
        XCTAssertEqual(error?.attempts, 4)
        XCTAssertTrue(error?.description.contains("after 4 attempts") == true)
    }

    func testRetry_whenQuotaExhausted_stopsRetrying() async throws {
        let server = try ScriptedHTTPServer(responses: [.text(503, "unavailable")])
        var policy = RetryPolicy.fastForTests
        policy.maxAttempts = 10
        policy.quotaCapacity = 12  // two retries at 5 tokens each, then empty
        let client = try makeClient(endpoint: server.endpoint, retryPolicy: policy)
        let first = await captureError { try await client.dynamoDB("ListTables", [:]) } as? AWSError
        XCTAssertEqual(first?.httpStatus, 503)
        XCTAssertEqual(server.requestCount, 3, "first try plus the two retries the quota pays for")
        XCTAssertEqual(client.retryQuotaAvailable, 2)
        let second = await captureError { try await client.dynamoDB("ListTables", [:]) } as? AWSError
        XCTAssertEqual(second?.httpStatus, 503, "the service's own failure, not a client-side one")
        XCTAssertEqual(second?.attempts, 1)
        XCTAssertEqual(server.requestCount, 4, "an empty quota means no retries at all")
    }

    func testRetry_whenConnectionDropped_retriesTransportError() async throws {
        let server = try ScriptedHTTPServer(responses: [.drop, .json(200, #"{"ok":true}"#)])
        let client = try makeClient(endpoint: server.endpoint)
        let result = try await client.dynamoDB("ListTables", [:])
        XCTAssertEqual(result["ok"], true)
        XCTAssertEqual(server.requestCount, 2)
    }

    func testRetry_whenRequestTimesOut_retriesAndReportsTimeout() async throws {
        let server = try ScriptedHTTPServer(responses: [ScriptedResponse(status: 200, body: Array("{}".utf8), delay: 1.5)])
        var policy = RetryPolicy.fastForTests
        policy.maxAttempts = 2
        var configuration = try makeClient(endpoint: server.endpoint).configuration
        configuration.requestTimeout = 0.3
        let client = AWSClient(configuration: configuration, retryPolicy: policy)
        let error = await captureError { try await client.dynamoDB("ListTables", [:]) } as? AWSError
        XCTAssertEqual(error?.kind, .transport)
        XCTAssertEqual(error?.isTimeout, true)
        XCTAssertEqual(client.metrics.retries, 1)
        XCTAssertEqual(client.retryQuotaAvailable, 490, "a timeout retry costs 10 tokens")
    }

    func testRequest_isSignedWithTargetAndContentType() async throws {
        let server = try ScriptedHTTPServer(responses: [.json(200, "{}")])
        let client = try makeClient(endpoint: server.endpoint)
        _ = try await client.dynamoDBStreams("DescribeStream", ["StreamArn": "arn"])
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.method, "POST")
        XCTAssertEqual(request.header("X-Amz-Target"), "DynamoDBStreams_20120810.DescribeStream")
        XCTAssertEqual(request.header("Content-Type"), "application/x-amz-json-1.0")
        XCTAssertEqual(request.header("Host"), "127.0.0.1:\(server.port)")
        let authorization = try XCTUnwrap(request.header("Authorization"))
        XCTAssertTrue(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=testing/"))
        XCTAssertTrue(authorization.contains("/us-east-1/dynamodb/aws4_request"))
        XCTAssertTrue(authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target"))
        XCTAssertEqual(try JSON.parse(request.body), ["StreamArn": "arn"])
    }
}
