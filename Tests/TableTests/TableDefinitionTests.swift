import JSON
import XCTest

@testable import Table

final class TableDefinitionTests: XCTestCase {
    /// A DescribeTable `Table` as DynamoDB returns it for a table built from schemas/table.json.
    static func matchingDescription(indexStatus: String = "ACTIVE") -> JSON {
        [
            "TableName": "vector_emails_operational",
            "TableStatus": "ACTIVE",
            "TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/vector_emails_operational",
            "KeySchema": [
                ["AttributeName": "vup_id", "KeyType": "HASH"], ["AttributeName": "hem", "KeyType": "RANGE"],
            ],
            "AttributeDefinitions": [
                ["AttributeName": "vup_id", "AttributeType": "S"], ["AttributeName": "hem", "AttributeType": "S"],
            ],
            "BillingModeSummary": ["BillingMode": "PAY_PER_REQUEST"],
            "StreamSpecification": ["StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"],
            "SSEDescription": ["Status": "ENABLED", "SSEType": "KMS"],
            "GlobalSecondaryIndexes": [
                [
                    "IndexName": "hem-index", "IndexStatus": .string(indexStatus),
                    "KeySchema": [
                        ["AttributeName": "hem", "KeyType": "HASH"], ["AttributeName": "vup_id", "KeyType": "RANGE"],
                    ],
                    "Projection": ["ProjectionType": "ALL"],
                ]
            ],
        ]
    }

    func testLoad_readsTheDesignFromSchemas() throws {
        let d = try TableDefinition.load()
        XCTAssertEqual(d.tableName, "vector_emails_operational")
        XCTAssertEqual(d.keys.map(\.description), ["vup_id HASH", "hem RANGE"])
        XCTAssertEqual(d.streamViewType, "NEW_AND_OLD_IMAGES")
        XCTAssertEqual(d.billingMode, "PAY_PER_REQUEST")
        XCTAssertTrue(d.sseEnabled)
        XCTAssertEqual(d.sseType, "KMS")
        XCTAssertEqual(d.tags, ["Project": "VectorEmailsV2", "Ticket": "ENG-1973"])
        XCTAssertEqual(d.indexes.map(\.name), ["hem-index"])
        XCTAssertEqual(d.indexes[0].keys.map(\.description), ["hem HASH", "vup_id RANGE"])
        XCTAssertTrue(d.pointInTimeRecovery)
        XCTAssertEqual(try TableDefinition.load(tableName: "other").tableName, "other")
    }

    func testCreateTableRequest_hasKeysStreamSSEAndTagsButNoIndex() throws {
        let request = try TableDefinition.load().createTableRequest()
        XCTAssertEqual(request["StreamSpecification"]?["StreamViewType"], "NEW_AND_OLD_IMAGES")
        XCTAssertEqual(request["SSESpecification"], ["Enabled": true, "SSEType": "KMS"])
        XCTAssertEqual(request["BillingMode"], "PAY_PER_REQUEST")
        XCTAssertEqual(request["Tags"]?.arrayValue?.count, 2)
        XCTAssertNil(request["GlobalSecondaryIndexes"], "the GSI is added afterwards and watched")
        let index = try TableDefinition.load().createIndexRequest(try TableDefinition.load().indexes[0])
        XCTAssertEqual(index["GlobalSecondaryIndexUpdates"]?[0]?["Create"]?["IndexName"], "hem-index")
    }

    func testDifferences_onMatchingTable_isEmpty() throws {
        let live = LiveTable(
            description: Self.matchingDescription(),
            tags: ["Project": "VectorEmailsV2", "Ticket": "ENG-1973", "Owner": "someone"], pointInTimeRecovery: true)
        XCTAssertEqual(try TableDefinition.load().differences(from: live), [])
    }

    func testDifferences_namesEveryMismatch() throws {
        var d = Self.matchingDescription(indexStatus: "CREATING").objectValue!
        d["KeySchema"] = [["AttributeName": "hem", "KeyType": "HASH"]]
        d["StreamSpecification"] = ["StreamEnabled": true, "StreamViewType": "KEYS_ONLY"]
        let live = LiveTable(description: .object(d), tags: ["Project": "Other"], pointInTimeRecovery: false)
        let differences = try TableDefinition.load().differences(from: live)
        let byField = Dictionary(uniqueKeysWithValues: differences.map { ($0.field, $0) })
        XCTAssertEqual(byField["KeySchema"]?.severity, .incompatible)
        XCTAssertEqual(byField["KeySchema"]?.actual, "hem HASH")
        XCTAssertEqual(byField["StreamViewType"]?.description, "StreamViewType: expected NEW_AND_OLD_IMAGES, found KEYS_ONLY")
        XCTAssertEqual(byField["GlobalSecondaryIndexes.hem-index.IndexStatus"]?.severity, .fixable)
        XCTAssertEqual(byField["Tags.Project"]?.actual, "Other")
        XCTAssertEqual(byField["Tags.Ticket"]?.actual, "missing")
        XCTAssertEqual(byField["PointInTimeRecovery"]?.severity, .fixable)
    }

    func testDifferences_missingIndexIsFixableButWrongIndexKeysAreNot() throws {
        var d = Self.matchingDescription().objectValue!
        d["GlobalSecondaryIndexes"] = nil
        XCTAssertEqual(
            try TableDefinition.load().differences(from: LiveTable(description: .object(d))).map(\.severity), [.fixable])
        var wrong = Self.matchingDescription().objectValue!
        wrong["GlobalSecondaryIndexes"] = [
            [
                "IndexName": "hem-index", "IndexStatus": "ACTIVE",
                "KeySchema": [["AttributeName": "hem", "KeyType": "HASH"]], "Projection": ["ProjectionType": "KEYS_ONLY"],
            ]
        ]
        let differences = try TableDefinition.load().differences(from: LiveTable(description: .object(wrong)))
        XCTAssertEqual(differences.map(\.severity), [.incompatible, .incompatible])
    }

    func testPlainRendering_unwrapsTypesAndRedactsPII() throws {
        let item: JSON = [
            "hem": ["S": "ab"], "email": ["S": "person@example.invalid"], "n": ["N": "12"],
            "flags": ["L": [["BOOL": true], ["NULL": true]]], "set": ["NS": ["1", "2"]],
        ]
        let plain = ItemRendering.plain(item, redacting: ["email"])
        XCTAssertEqual(plain, ["hem": "ab", "email": "<redacted>", "n": 12, "flags": [true, nil], "set": [1, 2]])
        XCTAssertFalse(plain.serialized().contains("example.invalid"))
    }
}
