// The values the export reader hands out: rows, rejections, errors and locations.

/// One validated export row, normalised: hem lowercase hex (32/40/64); vupID trimmed, with the
/// sentinel `UNRESOLVED#` + hem.prefix(2) filled in when empty; timestamps UTC ending in `Z`;
/// empty optional fields are nil.
public struct ExportRow: Sendable, Equatable, CustomStringConvertible {
    public var hem: String
    public var vupID: String
    public var email: String?
    public var domain: String?
    public var source: String?
    public var lastVerified: String?
    public var updatedAt: String
    /// Physical line number (1-based, header is line 1) where the record starts.
    public var line: Int

    public init(
        hem: String, vupID: String, email: String? = nil, domain: String? = nil, source: String? = nil,
        lastVerified: String? = nil, updatedAt: String, line: Int
    ) {
        self.hem = hem
        self.vupID = vupID
        self.email = email
        self.domain = domain
        self.source = source
        self.lastVerified = lastVerified
        self.updatedAt = updatedAt
        self.line = line
    }

    /// True when every attribute (not the line) is equal: the item in the table would not change.
    public func sameAttributes(as other: ExportRow) -> Bool {
        hem == other.hem && vupID == other.vupID && email == other.email && domain == other.domain
            && source == other.source && lastVerified == other.lastVerified && updatedAt == other.updatedAt
    }

    /// For logs and test failures: keys and line, never the email.
    public var description: String {
        "ExportRow(hem: \(hem), vupID: \(vupID), line: \(line), updatedAt: \(updatedAt), email: "
            + (email == nil ? "nil" : "<redacted>") + ")"
    }
}

/// Why a row was rejected. Raw values are stable (they appear in the JSON summary and rejects).
public enum RejectReason: String, Sendable, CaseIterable, Codable {
    case invalidHem = "invalid_hem"
    /// A given `UNRESOLVED#xx` does not match the hem.
    case sentinelMismatch = "sentinel_mismatch"
    /// No zone, or unparsable.
    case invalidTimestamp = "invalid_timestamp"
    case missingUpdatedAt = "missing_updated_at"
    case invalidUTF8 = "invalid_utf8"
    case fieldCount = "field_count"
    /// The DynamoDB item would exceed 400 KB.
    case itemTooLarge = "item_too_large"
    /// Same hem twice in a sorted export (reported by `ExportDiff`).
    case duplicateHem = "duplicate_hem"
    /// vup_id longer than 1024 bytes: it is the sort key of the `hem-index` GSI, and DynamoDB
    /// refuses a write whose index sort key passes 1024 bytes (the whole batch would fail).
    case invalidVupID = "invalid_vup_id"
}

/// A rejected row. Never the email, never the raw row.
public struct RowRejection: Sendable, Equatable {
    /// Display name of the source (path or s3://bucket/key).
    public var source: String
    public var line: Int
    public var reason: RejectReason
    /// Only when the hem itself was valid.
    public var hem: String?
    /// The column at fault, when there is one.
    public var field: String?

    public init(source: String, line: Int, reason: RejectReason, hem: String? = nil, field: String? = nil) {
        self.source = source
        self.line = line
        self.reason = reason
        self.hem = hem
        self.field = field
    }
}

/// What the reader produces for one data record: a valid row or the reason it was rejected.
public enum ExportRecord: Sendable, Equatable {
    case row(ExportRow)
    case rejected(RowRejection)
}

/// A whole source failed: missing hem column, corrupt or truncated gzip, unreadable file,
/// S3 error, hems out of order (incremental). `description` is one line naming source and line.
public struct ExportError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var message: String

    public init(source: String, line: Int? = nil, message: String) {
        self.source = source
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(source):\(line): \(message)" }
        return "\(source): \(message)"
    }
}

/// Where an export lives.
public enum ExportLocation: Sendable, Hashable, CustomStringConvertible {
    case file(path: String)
    case s3(bucket: String, key: String)

    public var description: String {
        switch self {
        case .file(let path): return path
        case .s3(let bucket, let key): return "s3://\(bucket)/\(key)"
        }
    }
}
