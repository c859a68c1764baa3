import AWSWire
import JSON
import TestSupport
import XCTest

final class ErrorDecodingTests: XCTestCase {
    func testError_jsonTypeAfterHash_givesCodeAndMessage() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .json(400, #"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#)
        ])
        let client = try makeClient(endpoint: server.endpoint)
        let error = await captureError { try await client.dynamoDB("DescribeTable", ["TableName": "t"]) } as? AWSError
        XCTAssertEqual(error?.code, "ResourceNotFoundException")
        XCTAssertEqual(error?.message, "Requested resource not found")
        XCTAssertEqual(
            error?.description,
            "DynamoDB DescribeTable failed: ResourceNotFoundException: Requested resource not found (HTTP 400)")
        XCTAssertEqual(server.requestCount, 1)
    }

    func testError_amznErrorTypeHeader_givesCode() async throws {
        let server = try ScriptedHTTPServer(responses: [
            ScriptedResponse(status: 400, headers: [("x-amzn-ErrorType", "ValidationException:http://internal.amazon.com/coral/")], body: Array("{}".utf8))
        ])
        let client = try makeClient(endpoint: server.endpoint)
        let error = await captureError { try await client.dynamoDB("PutItem", [:]) } as? AWSError
        XCTAssertEqual(error?.code, "ValidationException")
    }

    func testError_xmlBody_givesCodeAndMessage() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .xml(403, "<?xml version=\"1.0\"?><ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid. &amp; more</Message></Error></ErrorResponse>")
        ])
        let client = try makeClient(endpoint: server.endpoint)
        let error = await captureError { try await client.dynamoDB("ListTables", [:]) } as? AWSError
        XCTAssertEqual(error?.code, "InvalidClientTokenId")
        XCTAssertEqual(error?.message, "The security token included in the request is invalid. & more")
        XCTAssertEqual(error?.httpStatus, 403)
        XCTAssertEqual(error?.isRetryable, false)
    }

    func testError_malformedBody_stillNamesHTTPStatus() async throws {
        let server = try ScriptedHTTPServer(responses: [.text(502, "<html><body>upstream exploded</body>", contentType: "text/html")])
        var policy = RetryPolicy.fastForTests
        policy.maxAttempts = 1
        let client = try makeClient(endpoint: server.endpoint, retryPolicy: policy)
        let error = await captureError { try await client.dynamoDB("GetRecords", [:]) } as? AWSError
        XCTAssertEqual(error?.kind, .service)
        XCTAssertNil(error?.code)
        XCTAssertEqual(error?.httpStatus, 502)
        XCTAssertTrue(error?.description.contains("HTTP 502") == true, error?.description ?? "")
        XCTAssertFalse(error?.description.contains("upstream exploded") == true)
    }

    func testError_unreachableEndpoint_isTransportErrorNamingEndpoint() async throws {
        var policy = RetryPolicy.fastForTests
        policy.maxAttempts = 1
        let client = try makeClient(endpoint: "http://127.0.0.1:1", retryPolicy: policy)
        let error = await captureError { try await client.dynamoDB("ListTables", [:]) } as? AWSError
        XCTAssertEqual(error?.kind, .transport)
        XCTAssertTrue(
            error?.description.contains("cannot connect to http://127.0.0.1:1: Couldn't connect to server") == true,
            error?.description ?? "")
        XCTAssertEqual(error?.isRetryable, true)
    }

    func testError_requestBody_neverAppearsInError() async throws {
        let server = try ScriptedHTTPServer(responses: [.awsJSONError(400, "ValidationException", "One or more parameter values were invalid")])
        let client = try makeClient(endpoint: server.endpoint)
        let error = await captureError {
            try await client.dynamoDB("PutItem", ["Item": ["email": ["S": "person@example.invalid"]]])
        }
        XCTAssertFalse("\(error!)".contains("person@example.invalid"))
    }
}
