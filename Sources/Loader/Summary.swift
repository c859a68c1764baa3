import Export
import Foundation
import JSON

/// What the load did to one source; printed as JSON at the end.
public struct SourceSummary: Sendable {
    public var source: String
    public var previous: String?
    public var rowsRead = 0
    public var rejected: [RejectReason: Int] = [:]
    public var stats = WriteStats()
    /// Rows (or changes) below the checkpoint's mark: already written by an earlier run.
    public var skippedByCheckpoint = 0
    /// Incremental: hems equal in both exports (nothing written).
    public var unchanged: Int?
    public var previousRejected: Int?
    /// Reconcile: items the Scan read, and hems that had more than one item.
    public var scanned: Int?
    public var repaired: Int?
    public var scanStats: ScanStats?
    /// Full load: hems held back because an earlier row of the load had them (`loadRepeats`).
    public var repeatedHems: Int?
    public var warnings: [String] = []
    public var bytesRead: Int64 = 0
    /// A signal stopped the load before the end of this source.
    public var stopped = false

    public init(source: String, previous: String? = nil) {
        self.source = source
        self.previous = previous
    }

    public var rejectedTotal: Int { rejected.values.reduce(0, +) }

    public var json: JSON {
        var object: [String: JSON] = [
            "source": .string(source),
            "rows_read": .int(rowsRead),
            "items_written": .int(stats.puts),
            "deleted": .int(stats.deletes),
            "moved": .int(stats.moves),
            "write_requests": .int(stats.writeRequests),
            "rejected": .object(
                Dictionary(uniqueKeysWithValues: rejected.map { ($0.key.rawValue, JSON.int($0.value)) })),
            "rejected_total": .int(rejectedTotal),
            "retries": .int(stats.retries),
            "throttled": .int(stats.throttled),
            "skipped_by_checkpoint": .int(skippedByCheckpoint),
            "bytes_read": .int(Int(bytesRead)),
        ]
        if let previous { object["previous"] = .string(previous) }
        if let unchanged { object["unchanged"] = .int(unchanged) }
        if let previousRejected { object["previous_rejected"] = .int(previousRejected) }
        if let scanned { object["scanned"] = .int(scanned) }
        if let repeatedHems { object["repeated_hems"] = .int(repeatedHems) }
        if let repaired { object["repaired"] = .int(repaired) }
        if let scanStats {
            object["scan_calls"] = .int(scanStats.pages)
            object["scan_consumed_capacity"] = .double(scanStats.consumedCapacity)
        }
        if stats.capacityReported { object["consumed_capacity"] = .double(stats.consumedCapacity) }
        if stopped { object["stopped"] = true }
        if !warnings.isEmpty { object["warnings"] = .array(warnings.map { .string($0) }) }
        return .object(object)
    }
}

/// `--rejects FILE`: one JSON line per rejected row: source, line, reason, hem (when valid),
/// field. Never the email, never the raw row. A failed write (a full disk) throws an error
/// naming the file: the rejects are the record of what was not loaded, so losing them is fatal.
public final class RejectsFile: @unchecked Sendable {  // written from the loader's one task only
    public let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(message: "\(path): cannot create the rejects file: \(String(cString: strerror(errno)))")
        }
    }

    public func write(_ rejection: RowRejection) throws {
        var w = JSONWriter(capacity: 160)
        w.beginObject()
        w.key("source")
        w.string(rejection.source)
        w.key("line")
        w.int(rejection.line)
        w.key("reason")
        w.string(rejection.reason.rawValue)
        if let hem = rejection.hem {
            w.key("hem")
            w.string(hem)
        }
        if let field = rejection.field {
            w.key("field")
            w.string(field)
        }
        w.endObject()
        buffer.append(contentsOf: w.bytes)
        buffer.append(0x0A)
        if buffer.count > 60 * 1024 { try flush() }
    }

    public func flush() throws {
        if buffer.isEmpty { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        var written = 0
        while written < buffer.count {
            let n = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw CheckpointError(message: "\(path): cannot write the rejects file: \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }

    deinit {
        try? flush()
        close(fd)
    }
}
