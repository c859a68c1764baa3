import AWSWire
import JSON
import TestSupport
import XCTest

/// Real DynamoDB protocol round trips against moto_server.
final class MotoDynamoDBTests: XCTestCase {
    func testDynamoDB_createPutGet_roundTripsAnItemThroughMoto() async throws {
        let client = try makeClient(endpoint: try MotoServer.sharedEndpoint())
        let table = uniqueName("aws-wire")
        _ = try await client.dynamoDB(
            "CreateTable",
            [
                "TableName": .string(table),
                "AttributeDefinitions": [["AttributeName": "vup_id", "AttributeType": "S"], ["AttributeName": "hem", "AttributeType": "S"]],
                "KeySchema": [["AttributeName": "vup_id", "KeyType": "HASH"], ["AttributeName": "hem", "KeyType": "RANGE"]],
                "BillingMode": "PAY_PER_REQUEST",
            ])
        let item: Item = [
            "vup_id": .s("VUP1"), "hem": .s("ab12"), "score": .n("0.75"), "tags": .ss(["a", "b"]),
            "raw": .b([1, 2, 3]), "active": .bool(true), "meta": .m(["k": .l([.n("1"), .null])]),
        ]
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("TableName")
        writer.string(table)
        writer.key("Item")
        item.write(to: &writer)
        writer.endObject()
        _ = try await client.dynamoDBRaw("PutItem", body: writer.bytes)

        let got = try await client.dynamoDB(
            "GetItem", ["TableName": .string(table), "Key": ["vup_id": ["S": "VUP1"], "hem": ["S": "ab12"]], "ConsistentRead": true])
        XCTAssertEqual(try Item(itemJSON: got["Item"] ?? .null), item)
        XCTAssertGreaterThanOrEqual(client.metrics.requests, 3)
    }

    func testDynamoDB_existingTable_failsWithResourceInUseAsOneLine() async throws {
        let client = try makeClient(endpoint: try MotoServer.sharedEndpoint())
        let table = uniqueName("aws-wire-dup")
        let body: JSON = [
            "TableName": .string(table),
            "AttributeDefinitions": [["AttributeName": "k", "AttributeType": "S"]],
            "KeySchema": [["AttributeName": "k", "KeyType": "HASH"]],
            "BillingMode": "PAY_PER_REQUEST",
        ]
        _ = try await client.dynamoDB("CreateTable", body)
        let error = await captureError { try await client.dynamoDB("CreateTable", body) }
        let aws = try XCTUnwrap(error as? AWSError)
        XCTAssertEqual(aws.kind, .service)
        XCTAssertEqual(aws.code, "ResourceInUseException")
        XCTAssertEqual(aws.httpStatus, 400)
        XCTAssertFalse(aws.isRetryable)
        XCTAssertTrue(aws.description.hasPrefix("DynamoDB CreateTable failed: ResourceInUseException: "), aws.description)
        XCTAssertTrue(aws.description.hasSuffix("(HTTP 400)"), aws.description)
        XCTAssertFalse(aws.description.contains("\n"))
    }

    func testDynamoDB_missingTable_isResourceNotFound() async throws {
        let client = try makeClient(endpoint: try MotoServer.sharedEndpoint())
        let error = await captureError {
            try await client.dynamoDB("DescribeTable", ["TableName": .string(uniqueName("absent"))])
        }
        XCTAssertEqual((error as? AWSError)?.code, "ResourceNotFoundException")
    }

    func testDynamoDB_manyConcurrentCalls_allSucceed() async throws {
        let client = try makeClient(endpoint: try MotoServer.sharedEndpoint())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<24 {
                group.addTask { _ = try await client.dynamoDB("ListTables", [:]) }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(client.metrics.requests, 24)
    }
}
