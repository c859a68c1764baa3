import AWSWire
import Foundation
import JSON

/// Creates, verifies and restores the table through the DynamoDB API. `create` is the
/// seed's procedure done right: create, wait ACTIVE, add each GSI and poll its own
/// IndexStatus, then enable PITR; every step is skipped, and said to be, when already done.
public struct TableManager: Sendable {
    public let client: AWSClient
    public let definition: TableDefinition
    /// Seconds between status polls.
    public var pollInterval: Double
    /// Seconds to wait for the table or an index to become ACTIVE.
    public var timeout: Double
    /// Receives one line per step and per poll (the CLI timestamps them).
    public var report: @Sendable (String) -> Void

    public init(
        client: AWSClient, definition: TableDefinition, pollInterval: Double = 5, timeout: Double = 3600,
        report: @escaping @Sendable (String) -> Void
    ) {
        self.client = client
        self.definition = definition
        self.pollInterval = pollInterval
        self.timeout = timeout
        self.report = report
    }

    private var name: String { definition.tableName }

    /// The live table, or nil when it does not exist.
    public func describe(includeSettings: Bool = true) async throws -> LiveTable? {
        let response: JSON
        do {
            response = try await client.dynamoDB("DescribeTable", ["TableName": .string(name)])
        } catch let error as AWSError where error.code == "ResourceNotFoundException" {
            return nil
        }
        guard let table = response["Table"] else {
            throw TableError.invalidArgument("DescribeTable of \(name) returned no Table")
        }
        var live = LiveTable(description: table)
        if includeSettings {
            if let arn = live.arn {
                live.tags = try await tags(arn: arn)
            }
            let backups = try await client.dynamoDB("DescribeContinuousBackups", ["TableName": .string(name)])
            let status = backups["ContinuousBackupsDescription"]?["PointInTimeRecoveryDescription"]?[
                "PointInTimeRecoveryStatus"]?.stringValue
            live.pointInTimeRecovery = status == "ENABLED" || status == "ENABLING"
        }
        return live
    }

    private func tags(arn: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        var next: JSON? = nil
        repeat {
            var request: [String: JSON] = ["ResourceArn": .string(arn)]
            if let next { request["NextToken"] = next }
            let response = try await client.dynamoDB("ListTagsOfResource", .object(request))
            for tag in response["Tags"]?.arrayValue ?? [] {
                if let k = tag["Key"]?.stringValue, let v = tag["Value"]?.stringValue { result[k] = v }
            }
            next = response["NextToken"]
        } while next != nil && next != .null
        return result
    }

    /// Brings the table to the definition. Throws `TableError.incompatible` when the live
    /// table differs in a way that cannot be fixed in place (keys, stream view, index keys).
    public func create() async throws {
        var live: LiveTable
        if let existing = try await describe() {
            let incompatible = definition.differences(from: existing).filter { $0.severity == .incompatible }
            guard incompatible.isEmpty else { throw TableError.incompatible(table: name, differences: incompatible) }
            report("create table \(name): already done (\(existing.status ?? "?"))")
            live = existing
            if live.status != "ACTIVE" { live = try await waitForTable() }
        } else {
            do {
                _ = try await client.dynamoDB("CreateTable", definition.createTableRequest())
                report("create table \(name): requested")
            } catch let error as AWSError where error.code == "ResourceInUseException" {
                report("create table \(name): already being created")
            }
            live = try await waitForTable()
        }

        for index in definition.indexes {
            if let liveIndex = live.index(named: index.name) {
                let status = liveIndex["IndexStatus"]?.stringValue ?? "?"
                if status == "ACTIVE" {
                    report("add index \(index.name): already done")
                    continue
                }
                report("add index \(index.name): exists, \(status)")
            } else {
                _ = try await client.dynamoDB("UpdateTable", definition.createIndexRequest(index))
                report("add index \(index.name): requested")
            }
            try await waitForIndex(index.name)
        }

        if let arn = live.arn {
            let missing = definition.tags.filter { live.tags?[$0.key] != $0.value }
            if missing.isEmpty {
                report("tag table: already done")
            } else {
                let tags: [JSON] = missing.keys.sorted().map { ["Key": .string($0), "Value": .string(missing[$0]!)] }
                _ = try await client.dynamoDB("TagResource", ["ResourceArn": .string(arn), "Tags": .array(tags)])
                report("tag table: done (\(missing.keys.sorted().joined(separator: ", ")))")
            }
        }

        if definition.pointInTimeRecovery {
            if live.pointInTimeRecovery == true {
                report("enable point-in-time recovery: already done")
            } else {
                _ = try await client.dynamoDB(
                    "UpdateContinuousBackups",
                    [
                        "TableName": .string(name),
                        "PointInTimeRecoverySpecification": ["PointInTimeRecoveryEnabled": true],
                    ])
                report("enable point-in-time recovery: done")
            }
        }
    }

    /// Differences between the live table and the definition; a missing table is one.
    public func verify() async throws -> [TableDifference] {
        guard let live = try await describe() else {
            return [TableDifference(field: "Table", expected: "present", actual: "missing", severity: .fixable)]
        }
        return definition.differences(from: live)
    }

    /// Restores the table to a point in time into a new table, then waits for it to be ACTIVE
    /// when `wait` is set. `time == nil` restores the latest restorable time.
    public func restore(to time: Date?, target: String, wait: Bool) async throws {
        var request: [String: JSON] = [
            "SourceTableName": .string(name),
            "TargetTableName": .string(target),
        ]
        if let time {
            request["RestoreDateTime"] = .double(time.timeIntervalSince1970)
        } else {
            request["UseLatestRestorableTime"] = true
        }
        _ = try await client.dynamoDB("RestoreTableToPointInTime", .object(request))
        report("restore \(name) into \(target): requested")
        if wait {
            try await forTable(target).waitForTable()
        }
    }

    /// The same manager aimed at another table (a restore target).
    public func forTable(_ other: String) -> TableManager {
        var d = definition
        d.tableName = other
        return TableManager(client: client, definition: d, pollInterval: pollInterval, timeout: timeout, report: report)
    }

    private func stamp() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }

    @discardableResult
    private func waitForTable() async throws -> LiveTable {
        let started = Date()
        while true {
            guard let live = try await describe(includeSettings: false) else { throw TableError.notFound(table: name) }
            let status = live.status ?? "?"
            report("\(stamp()) table \(name): \(status)")
            switch status {
            case "ACTIVE": return try await describe() ?? live
            case "CREATING", "UPDATING": break
            default: throw TableError.unexpectedStatus(table: name, what: "status", status: status)
            }
            try await pause(since: started, what: "status")
        }
    }

    private func waitForIndex(_ indexName: String) async throws {
        let started = Date()
        while true {
            guard let live = try await describe(includeSettings: false) else { throw TableError.notFound(table: name) }
            let status = live.index(named: indexName)?["IndexStatus"]?.stringValue ?? "missing"
            let backfilling = live.index(named: indexName)?["Backfilling"]?.boolValue == true ? " (backfilling)" : ""
            report("\(stamp()) index \(indexName): \(status)\(backfilling)")
            switch status {
            case "ACTIVE": return
            case "CREATING": break
            default: throw TableError.unexpectedStatus(table: name, what: "index \(indexName)", status: status)
            }
            try await pause(since: started, what: "index \(indexName)")
        }
    }

    private func pause(since started: Date, what: String) async throws {
        if Date().timeIntervalSince(started) > timeout {
            throw TableError.timedOut(table: name, what: what, seconds: Int(timeout))
        }
        try await Task.sleep(nanoseconds: UInt64(max(pollInterval, 0.01) * 1_000_000_000))
    }
}
