import JSON
import Schemas

/// The table as schemas/table.json defines it: keys, billing, stream, encryption, tags, GSIs
/// and point-in-time recovery. The one source of truth for `table create` and `table verify`.
public struct TableDefinition: Sendable, Equatable {
    public struct Key: Sendable, Equatable, CustomStringConvertible {
        public var attribute: String
        public var keyType: String  // HASH or RANGE
        public var description: String { "\(attribute) \(keyType)" }
    }

    public struct Index: Sendable, Equatable {
        public var name: String
        public var keys: [Key]
        public var projectionType: String
    }

    public var tableName: String
    public var keys: [Key]
    public var attributeTypes: [String: String]
    public var billingMode: String
    public var streamViewType: String?
    public var sseEnabled: Bool
    public var sseType: String?
    public var tags: [String: String]
    public var indexes: [Index]
    public var pointInTimeRecovery: Bool

    /// The definition from schemas/table.json, with the table name replaced when given.
    public static func load(tableName: String? = nil) throws -> TableDefinition {
        var definition = try TableDefinition(json: try JSON.parse(try SchemaFiles.text("table.json")))
        if let tableName { definition.tableName = tableName }
        return definition
    }

    public init(json: JSON) throws {
        func keys(_ value: JSON?, _ context: String) throws -> [Key] {
            guard let items = value?.arrayValue, !items.isEmpty else {
                throw TableError.invalidDefinition("\(context): KeySchema missing")
            }
            return try items.map {
                guard let name = $0["AttributeName"]?.stringValue, let type = $0["KeyType"]?.stringValue else {
                    throw TableError.invalidDefinition("\(context): KeySchema entry needs AttributeName and KeyType")
                }
                return Key(attribute: name, keyType: type)
            }
        }
        guard let name = json["TableName"]?.stringValue else {
            throw TableError.invalidDefinition("TableName missing")
        }
        tableName = name
        self.keys = try keys(json["KeySchema"], "table")
        attributeTypes = [:]
        for definition in json["AttributeDefinitions"]?.arrayValue ?? [] {
            if let n = definition["AttributeName"]?.stringValue, let t = definition["AttributeType"]?.stringValue {
                attributeTypes[n] = t
            }
        }
        billingMode = json["BillingMode"]?.stringValue ?? "PAY_PER_REQUEST"
        if json["StreamSpecification"]?["StreamEnabled"]?.boolValue == true {
            streamViewType = json["StreamSpecification"]?["StreamViewType"]?.stringValue
        } else {
            streamViewType = nil
        }
        sseEnabled = json["SSESpecification"]?["Enabled"]?.boolValue ?? false
        sseType = json["SSESpecification"]?["SSEType"]?.stringValue
        tags = [:]
        for tag in json["Tags"]?.arrayValue ?? [] {
            if let k = tag["Key"]?.stringValue, let v = tag["Value"]?.stringValue { tags[k] = v }
        }
        indexes = try (json["GlobalSecondaryIndexes"]?.arrayValue ?? []).map {
            guard let indexName = $0["IndexName"]?.stringValue else {
                throw TableError.invalidDefinition("a GlobalSecondaryIndexes entry has no IndexName")
            }
            return Index(
                name: indexName, keys: try keys($0["KeySchema"], indexName),
                projectionType: $0["Projection"]?["ProjectionType"]?.stringValue ?? "ALL")
        }
        pointInTimeRecovery = json["PointInTimeRecovery"]?.boolValue ?? false
        for key in self.keys + indexes.flatMap(\.keys) where attributeTypes[key.attribute] == nil {
            throw TableError.invalidDefinition("key attribute '\(key.attribute)' has no AttributeDefinitions entry")
        }
    }

    private func attributeDefinitions(for names: [String]) -> JSON {
        var seen = Set<String>()
        return .array(
            names.filter { seen.insert($0).inserted }.map {
                ["AttributeName": .string($0), "AttributeType": .string(attributeTypes[$0] ?? "S")]
            })
    }

    private static func keySchema(_ keys: [Key]) -> JSON {
        .array(keys.map { ["AttributeName": .string($0.attribute), "KeyType": .string($0.keyType)] })
    }

    /// The CreateTable request: the table without its GSIs, which are added one by one
    /// afterwards so each can be watched until ACTIVE.
    public func createTableRequest() -> JSON {
        var request: [String: JSON] = [
            "TableName": .string(tableName),
            "KeySchema": Self.keySchema(keys),
            "AttributeDefinitions": attributeDefinitions(for: keys.map(\.attribute)),
            "BillingMode": .string(billingMode),
        ]
        if let streamViewType {
            request["StreamSpecification"] = ["StreamEnabled": true, "StreamViewType": .string(streamViewType)]
        }
        if sseEnabled {
            var sse: [String: JSON] = ["Enabled": true]
            if let sseType { sse["SSEType"] = .string(sseType) }
            request["SSESpecification"] = .object(sse)
        }
        if !tags.isEmpty {
            request["Tags"] = .array(
                tags.keys.sorted().map { ["Key": .string($0), "Value": .string(tags[$0]!)] })
        }
        return .object(request)
    }

    /// The UpdateTable request that adds one GSI.
    public func createIndexRequest(_ index: Index) -> JSON {
        var create: [String: JSON] = [
            "IndexName": .string(index.name),
            "KeySchema": Self.keySchema(index.keys),
            "Projection": ["ProjectionType": .string(index.projectionType)],
        ]
        if billingMode == "PROVISIONED" {
            create["ProvisionedThroughput"] = ["ReadCapacityUnits": 5, "WriteCapacityUnits": 5]
        }
        return [
            "TableName": .string(tableName),
            "AttributeDefinitions": attributeDefinitions(for: index.keys.map(\.attribute)),
            "GlobalSecondaryIndexUpdates": [["Create": .object(create)]],
        ]
    }
}

/// What a live table looks like, read from DescribeTable, ListTagsOfResource and
/// DescribeContinuousBackups.
public struct LiveTable: Sendable {
    public var description: JSON
    public var tags: [String: String]?
    public var pointInTimeRecovery: Bool?

    public init(description: JSON, tags: [String: String]? = nil, pointInTimeRecovery: Bool? = nil) {
        self.description = description
        self.tags = tags
        self.pointInTimeRecovery = pointInTimeRecovery
    }

    public var status: String? { description["TableStatus"]?.stringValue }
    public var arn: String? { description["TableArn"]?.stringValue }
    public var streamArn: String? { description["LatestStreamArn"]?.stringValue }

    public func index(named name: String) -> JSON? {
        description["GlobalSecondaryIndexes"]?.arrayValue?.first { $0["IndexName"]?.stringValue == name }
    }
}

/// One way a live table differs from the definition.
public struct TableDifference: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: Sendable {
        /// The table cannot be made to match by hemstream (keys, stream view, index keys).
        case incompatible
        /// `table create` can fix it (a missing GSI, tags, PITR off).
        case fixable
    }
    public var field: String
    public var expected: String
    public var actual: String
    public var severity: Severity
    public var description: String { "\(field): expected \(expected), found \(actual)" }
}

extension TableDefinition {
    /// Every difference between this definition and a live table.
    public func differences(from live: LiveTable) -> [TableDifference] {
        var out: [TableDifference] = []
        func add(_ field: String, _ expected: String, _ actual: String, _ severity: TableDifference.Severity) {
            out.append(TableDifference(field: field, expected: expected, actual: actual, severity: severity))
        }
        func liveKeys(_ json: JSON?) -> [Key] {
            (json?.arrayValue ?? []).compactMap {
                guard let n = $0["AttributeName"]?.stringValue, let t = $0["KeyType"]?.stringValue else { return nil }
                return Key(attribute: n, keyType: t)
            }
        }
        func render(_ keys: [Key]) -> String { keys.isEmpty ? "none" : keys.map(\.description).joined(separator: ", ") }

        let d = live.description
        let actualKeys = liveKeys(d["KeySchema"])
        if actualKeys != keys { add("KeySchema", render(keys), render(actualKeys), .incompatible) }

        var liveTypes: [String: String] = [:]
        for a in d["AttributeDefinitions"]?.arrayValue ?? [] {
            if let n = a["AttributeName"]?.stringValue, let t = a["AttributeType"]?.stringValue { liveTypes[n] = t }
        }
        for key in keys where liveTypes[key.attribute] != nil && liveTypes[key.attribute] != attributeTypes[key.attribute] {
            add(
                "AttributeDefinitions.\(key.attribute)", attributeTypes[key.attribute] ?? "?",
                liveTypes[key.attribute]!, .incompatible)
        }

        let liveBilling = d["BillingModeSummary"]?["BillingMode"]?.stringValue ?? "PROVISIONED"
        if liveBilling != billingMode { add("BillingMode", billingMode, liveBilling, .incompatible) }

        let streamOn = d["StreamSpecification"]?["StreamEnabled"]?.boolValue == true
        let liveView = streamOn ? d["StreamSpecification"]?["StreamViewType"]?.stringValue : nil
        if liveView != streamViewType {
            add("StreamViewType", streamViewType ?? "stream disabled", liveView ?? "stream disabled", .incompatible)
        }

        let liveSSE = d["SSEDescription"]?["Status"]?.stringValue
        let sseOn = liveSSE == "ENABLED" || liveSSE == "ENABLING"
        if sseEnabled != sseOn {
            add("SSE", sseEnabled ? "enabled" : "disabled", sseOn ? "enabled" : "disabled (AWS-owned key)", .incompatible)
        } else if sseEnabled, let sseType, let liveType = d["SSEDescription"]?["SSEType"]?.stringValue, liveType != sseType {
            add("SSEType", sseType, liveType, .incompatible)
        }

        for index in indexes {
            guard let liveIndex = live.index(named: index.name) else {
                add("GlobalSecondaryIndexes.\(index.name)", "present", "missing", .fixable)
                continue
            }
            let liveIndexKeys = liveKeys(liveIndex["KeySchema"])
            if liveIndexKeys != index.keys {
                add("GlobalSecondaryIndexes.\(index.name).KeySchema", render(index.keys), render(liveIndexKeys), .incompatible)
            }
            let projection = liveIndex["Projection"]?["ProjectionType"]?.stringValue ?? "?"
            if projection != index.projectionType {
                add(
                    "GlobalSecondaryIndexes.\(index.name).Projection", index.projectionType, projection, .incompatible)
            }
            let status = liveIndex["IndexStatus"]?.stringValue ?? "?"
            if status != "ACTIVE" {
                add("GlobalSecondaryIndexes.\(index.name).IndexStatus", "ACTIVE", status, .fixable)
            }
        }

        if let liveTags = live.tags {
            for key in tags.keys.sorted() where liveTags[key] != tags[key] {
                add("Tags.\(key)", tags[key]!, liveTags[key] ?? "missing", .fixable)
            }
        }
        if let pitr = live.pointInTimeRecovery, pitr != pointInTimeRecovery {
            add(
                "PointInTimeRecovery", pointInTimeRecovery ? "enabled" : "disabled", pitr ? "enabled" : "disabled",
                .fixable)
        }
        if let status = live.status, status != "ACTIVE" {
            add("TableStatus", "ACTIVE", status, .fixable)
        }
        return out
    }
}

/// Errors from table management, each one line for the CLI.
public enum TableError: Error, Sendable, CustomStringConvertible {
    case invalidDefinition(String)
    case incompatible(table: String, differences: [TableDifference])
    case unexpectedStatus(table: String, what: String, status: String)
    case timedOut(table: String, what: String, seconds: Int)
    case notFound(table: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidDefinition(let why): return "schemas/table.json: \(why)"
        case .incompatible(let table, let differences):
            return "table \(table) differs from schemas/table.json and cannot be fixed in place: "
                + differences.map(\.description).joined(separator: "; ")
        case .unexpectedStatus(let table, let what, let status):
            return "\(what) of table \(table) is \(status), expected CREATING then ACTIVE"
        case .timedOut(let table, let what, let seconds):
            return "\(what) of table \(table) was not ACTIVE after \(seconds) s"
        case .notFound(let table): return "table \(table) does not exist"
        case .invalidArgument(let why): return why
        }
    }
}
