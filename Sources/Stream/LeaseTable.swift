import AWSWire
import Foundation
import JSON
import Schemas

/// One shard's lease: who reads it, a counter every change bumps, and how far it is read.
public struct Lease: Sendable, Equatable {
    public static let shardEnd = "SHARD_END"
    /// A new deployment's `--start latest`: read from the shard's tip on first take.
    public static let latest = "LATEST"

    public var shardID: String
    public var owner: String?
    public var counter: Int
    /// A sequence number, `SHARD_END`, `LATEST`, or nil (from TRIM_HORIZON).
    public var checkpoint: String?
    public var parents: [String]
    /// Times this lease changed owner (a metric of churn).
    public var ownerSwitches: Int
    /// A replica below its fair share asks the owner to hand this lease over.
    public var handoffTo: String? = nil

    public var isFinished: Bool { checkpoint == Self.shardEnd }
}

/// The lease table (`<table>-hemstream-leases`): one item per shard, every change a
/// conditional write, so two workers never both believe they own a shard and a worker that
/// lost a lease can never move its checkpoint again.
public struct LeaseTable: Sendable {
    public let client: AWSClient
    public let name: String

    public init(client: AWSClient, name: String) {
        self.client = client
        self.name = name
    }

    /// Creates the table (on-demand, key `shard_id`) when it does not exist, and waits for it.
    public func ensureExists(timeout: Double = 120) async throws {
        do {
            let d = try await client.dynamoDB("DescribeTable", ["TableName": .string(name)])
            if d["Table"]?["TableStatus"]?.stringValue == "ACTIVE" { return }
        } catch let e as AWSError where e.code == "ResourceNotFoundException" {
            do {
                _ = try await client.dynamoDB("CreateTable", try Self.definition(name: name))
            } catch let e as AWSError where e.code == "ResourceInUseException" {}  // another replica made it
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let d = try await client.dynamoDB("DescribeTable", ["TableName": .string(name)])
            if d["Table"]?["TableStatus"]?.stringValue == "ACTIVE" { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw StreamSetupError("lease table \(name) did not become ACTIVE within \(Int(timeout)) s")
    }

    /// The CreateTable request for a lease table: schemas/lease-table.json (the definition
    /// deploy/cloudformation/table.yaml is checked against) under the given name.
    public static func definition(name: String) throws -> JSON {
        guard var request = try JSON.parse(try SchemaFiles.text("lease-table.json")).objectValue else {
            throw StreamSetupError("schemas/lease-table.json is not a JSON object")
        }
        request["TableName"] = .string(name)
        return .object(request)
    }

    /// Every lease (strongly consistent).
    public func all() async throws -> [Lease] {
        var leases: [Lease] = []
        var start: JSON?
        repeat {
            var body: [String: JSON] = ["TableName": .string(name), "ConsistentRead": true]
            if let start { body["ExclusiveStartKey"] = start }
            let page = try await client.dynamoDB("Scan", .object(body))
            leases += (page["Items"]?.arrayValue ?? []).compactMap(Self.lease)
            start = page["LastEvaluatedKey"]
        } while start != nil
        return leases
    }

    static func lease(_ item: JSON) -> Lease? {
        guard let id = item["shard_id"]?["S"]?.stringValue else { return nil }
        return Lease(
            shardID: id, owner: item["owner"]?["S"]?.stringValue,
            counter: item["lease_counter"]?["N"]?.stringValue.flatMap { Int($0) } ?? 0,
            checkpoint: item["checkpoint"]?["S"]?.stringValue,
            parents: (item["parent_shard_ids"]?["L"]?.arrayValue ?? []).compactMap { $0["S"]?.stringValue },
            ownerSwitches: item["owner_switches"]?["N"]?.stringValue.flatMap { Int($0) } ?? 0,
            handoffTo: item["handoff_to"]?["S"]?.stringValue)
    }

    /// Adds a lease for a shard seen for the first time; false when one exists already.
    @discardableResult
    public func create(shardID: String, parents: [String], checkpoint: String?) async throws -> Bool {
        var item: [String: JSON] = [
            "shard_id": ["S": .string(shardID)], "lease_counter": ["N": "0"], "owner_switches": ["N": "0"],
        ]
        if !parents.isEmpty { item["parent_shard_ids"] = ["L": .array(parents.map { ["S": .string($0)] })] }
        if let checkpoint { item["checkpoint"] = ["S": .string(checkpoint)] }
        return try await conditional(
            "PutItem",
            ["TableName": .string(name), "Item": .object(item), "ConditionExpression": "attribute_not_exists(shard_id)"])
    }

    /// Takes a lease that is free or whose counter has not moved (expired, or taken from a busier
    /// worker): succeeds only if the counter is still `seen`. Returns the new counter.
    public func take(_ lease: Lease, owner: String) async throws -> Lease? {
        let next = lease.counter + 1
        let answer = try await conditionalAnswer(
            "UpdateItem",
            [
                "TableName": .string(name), "Key": key(lease.shardID),
                "UpdateExpression":
                    "SET #o = :me, lease_counter = :n, owner_switches = if_not_exists(owner_switches, :z) + :one REMOVE handoff_to",
                "ConditionExpression": "lease_counter = :c",
                "ExpressionAttributeNames": ["#o": "owner"],
                "ExpressionAttributeValues": [
                    ":me": ["S": .string(owner)], ":n": ["N": .string(String(next))],
                    ":c": ["N": .string(String(lease.counter))], ":z": ["N": "0"], ":one": ["N": "1"],
                ],
                "ReturnValues": "ALL_NEW",
            ])
        // The checkpoint as it is now, not as the scan saw it: the last owner may have moved it since.
        guard let answer, var taken = Self.lease(answer["Attributes"] ?? .null) else { return nil }
        taken.counter = next
        return taken
    }

    /// Renews an owned lease: bumps the counter if it is still ours at `counter`. nil: lost.
    public func renew(shardID: String, owner: String, counter: Int) async throws -> Int? {
        let next = counter + 1
        let ok = try await conditional(
            "UpdateItem",
            [
                "TableName": .string(name), "Key": key(shardID),
                "UpdateExpression": "SET lease_counter = :n",
                "ConditionExpression": "#o = :me AND lease_counter = :c",
                "ExpressionAttributeNames": ["#o": "owner"],
                "ExpressionAttributeValues": [
                    ":me": ["S": .string(owner)], ":n": ["N": .string(String(next))],
                    ":c": ["N": .string(String(counter))],
                ],
            ])
        return ok ? next : nil
    }

    /// Moves the checkpoint, only while the lease is still ours at `counter` (fenced).
    public func checkpoint(shardID: String, owner: String, counter: Int, to value: String) async throws -> Bool {
        try await conditional(
            "UpdateItem",
            [
                "TableName": .string(name), "Key": key(shardID),
                "UpdateExpression": "SET #cp = :v",
                "ConditionExpression": "#o = :me AND lease_counter = :c",
                "ExpressionAttributeNames": ["#o": "owner", "#cp": "checkpoint"],
                "ExpressionAttributeValues": [
                    ":me": ["S": .string(owner)], ":v": ["S": .string(value)], ":c": ["N": .string(String(counter))],
                ],
            ])
    }

    /// Gives a lease back (graceful handoff): another worker may take it at once.
    public func release(shardID: String, owner: String, counter: Int) async throws -> Bool {
        try await conditional(
            "UpdateItem",
            [
                "TableName": .string(name), "Key": key(shardID),
                "UpdateExpression": "REMOVE #o, handoff_to SET lease_counter = :n",
                "ConditionExpression": "#o = :me AND lease_counter = :c",
                "ExpressionAttributeNames": ["#o": "owner"],
                "ExpressionAttributeValues": [
                    ":me": ["S": .string(owner)], ":n": ["N": .string(String(counter + 1))],
                    ":c": ["N": .string(String(counter))],
                ],
            ])
    }

    /// Asks the owner of a live lease to hand it over (it checkpoints, then releases): a lease
    /// moves between live replicas without two of them reading the shard at once.
    public func requestHandoff(_ lease: Lease, to requester: String) async throws -> Bool {
        guard let owner = lease.owner else { return false }
        return try await conditional(
            "UpdateItem",
            [
                "TableName": .string(name), "Key": key(lease.shardID),
                "UpdateExpression": "SET handoff_to = :me",
                "ConditionExpression": "#o = :owner AND attribute_not_exists(handoff_to)",
                "ExpressionAttributeNames": ["#o": "owner"],
                "ExpressionAttributeValues": [":me": ["S": .string(requester)], ":owner": ["S": .string(owner)]],
            ])
    }

    /// Deletes a finished lease (checkpoint SHARD_END) whose shard is gone from the stream, so
    /// the table does not grow forever; a lease not at SHARD_END is never deleted.
    @discardableResult
    public func deleteFinished(shardID: String) async throws -> Bool {
        try await conditional(
            "DeleteItem",
            [
                "TableName": .string(name), "Key": key(shardID),
                "ConditionExpression": "#cp = :end",
                "ExpressionAttributeNames": ["#cp": "checkpoint"],
                "ExpressionAttributeValues": [":end": ["S": .string(Lease.shardEnd)]],
            ])
    }

    func key(_ shardID: String) -> JSON { ["shard_id": ["S": .string(shardID)]] }

    /// A conditional write: true when written, false when its condition failed.
    func conditional(_ operation: String, _ body: JSON) async throws -> Bool {
        try await conditionalAnswer(operation, body) != nil
    }

    /// A conditional write's answer, nil when its condition failed.
    func conditionalAnswer(_ operation: String, _ body: JSON) async throws -> JSON? {
        do {
            return try await client.dynamoDB(operation, body)
        } catch let e as AWSError where e.code == "ConditionalCheckFailedException" {
            return nil
        }
    }
}
