// TEMPORARY stand-in for the Export module's API (/work/wt/EXPORT_API.md) until branch `export`
// lands. DELETE this file when merging `export`. Plain CSV only, no quoting, no gzip, no S3.
import AWSWire
import Foundation

public struct ExportRow: Sendable, Equatable {
    public var hem: String
    public var vupID: String
    public var email: String?
    public var domain: String?
    public var source: String?
    public var lastVerified: String?
    public var updatedAt: String
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
}

public enum RejectReason: String, Sendable, CaseIterable, Codable {
    case invalidHem = "invalid_hem"
    case sentinelMismatch = "sentinel_mismatch"
    case invalidTimestamp = "invalid_timestamp"
    case missingUpdatedAt = "missing_updated_at"
    case invalidUTF8 = "invalid_utf8"
    case fieldCount = "field_count"
    case itemTooLarge = "item_too_large"
    case duplicateHem = "duplicate_hem"
}

public struct RowRejection: Sendable, Equatable {
    public var source: String
    public var line: Int
    public var reason: RejectReason
    public var hem: String?
    public var field: String?
}

public enum ExportRecord: Sendable { case row(ExportRow), rejected(RowRejection) }

public struct ExportError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var message: String
    public var description: String { "\(source)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

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

public enum ExportSources {
    public static func expand(_ arguments: [String], client: AWSClient?) async throws
        -> [(location: ExportLocation, size: Int64?)]
    {
        try arguments.map { path in
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
                throw ExportError(source: path, line: nil, message: "no such file")
            }
            return (.file(path: path), (attributes[.size] as? NSNumber)?.int64Value)
        }
    }
}

public final class ExportReader {
    let name: String
    var lines: [Substring]
    var index = 1
    var columns: [String: Int] = [:]
    var lastHem = ""
    public private(set) var bytesRead: Int64 = 0
    public private(set) var totalBytes: Int64?
    public var warnings: [String] { [] }
    public private(set) var recordsRead = 0

    public init(location: ExportLocation, client: AWSClient?) async throws {
        name = location.description
        guard case .file(let path) = location, let data = FileManager.default.contents(atPath: path) else {
            throw ExportError(source: location.description, line: nil, message: "cannot read")
        }
        totalBytes = Int64(data.count)
        lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let header = lines.first.map { $0.split(separator: ",", omittingEmptySubsequences: false) } ?? []
        for (i, name) in header.enumerated() { columns[String(name)] = i }
        guard columns["hem"] != nil else { throw ExportError(source: name, line: 1, message: "no hem column") }
    }

    public func nextBatch(maxRecords: Int = 4096) async throws -> [ExportRecord]? {
        var out: [ExportRecord] = []
        while index < lines.count && out.count < maxRecords {
            let text = lines[index]
            index += 1
            bytesRead += Int64(text.utf8.count + 1)
            if text.isEmpty { continue }
            recordsRead += 1
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            func field(_ n: String) -> String? {
                guard let i = columns[n], i < fields.count, !fields[i].isEmpty else { return nil }
                return fields[i]
            }
            let hem = (field("hem") ?? "").lowercased()
            guard hem.count == 32 || hem.count == 40 || hem.count == 64, hem.allSatisfy(\.isHexDigit) else {
                out.append(.rejected(RowRejection(source: name, line: index, reason: .invalidHem, field: "hem")))
                continue
            }
            guard let updated = field("updated_at") else {
                out.append(.rejected(RowRejection(source: name, line: index, reason: .missingUpdatedAt, hem: hem)))
                continue
            }
            guard updated.hasSuffix("Z") else {
                out.append(
                    .rejected(
                        RowRejection(source: name, line: index, reason: .invalidTimestamp, hem: hem, field: "updated_at")))
                continue
            }
            out.append(
                .row(
                    ExportRow(
                        hem: hem, vupID: field("vup_id") ?? ("UNRESOLVED#" + hem.prefix(2)), email: field("email"),
                        domain: field("domain"), source: field("source"), lastVerified: field("last_verified"),
                        updatedAt: updated, line: index)))
        }
        return out.isEmpty && index >= lines.count ? nil : out
    }
}

public enum ExportChange: Sendable {
    case added(ExportRow)
    case changed(old: ExportRow, new: ExportRow)
    case moved(old: ExportRow, new: ExportRow)
    case removed(ExportRow)
    case rejected(RowRejection)
}

public final class ExportDiff {
    let previous: ExportReader
    let current: ExportReader
    var p: [ExportRecord] = []
    var c: [ExportRecord] = []
    var pDone = false
    var cDone = false
    public private(set) var unchanged = 0
    public private(set) var previousRejected = 0

    public init(previous: ExportReader, current: ExportReader) {
        self.previous = previous
        self.current = current
    }

    func fill() async throws {
        while p.isEmpty && !pDone { if let b = try await previous.nextBatch() { p = b } else { pDone = true } }
        while c.isEmpty && !cDone { if let b = try await current.nextBatch() { c = b } else { cDone = true } }
    }

    public func nextBatch(maxChanges: Int = 4096) async throws -> [ExportChange]? {
        var out: [ExportChange] = []
        while out.count < maxChanges {
            try await fill()
            if p.isEmpty && c.isEmpty { break }
            if let first = p.first, case .rejected = first {
                p.removeFirst()
                previousRejected += 1
                continue
            }
            if let first = c.first, case .rejected(let r) = first {
                c.removeFirst()
                out.append(.rejected(r))
                continue
            }
            let old: ExportRow? = p.first.flatMap { if case .row(let r) = $0 { return r } else { return nil } }
            let new: ExportRow? = c.first.flatMap { if case .row(let r) = $0 { return r } else { return nil } }
            if let old, new == nil || old.hem < new!.hem {
                p.removeFirst()
                out.append(.removed(old))
            } else if let new, old == nil || new.hem < old!.hem {
                c.removeFirst()
                out.append(.added(new))
            } else if let old, let new {
                p.removeFirst()
                c.removeFirst()
                var a = old
                a.line = new.line
                if a == new {
                    unchanged += 1
                } else if old.vupID != new.vupID {
                    out.append(.moved(old: old, new: new))
                } else {
                    out.append(.changed(old: old, new: new))
                }
            }
        }
        return out.isEmpty ? nil : out
    }
}
