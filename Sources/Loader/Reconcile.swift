import AWSWire
import Export
import Foundation
import JSON

extension Loader {
    /// `load --reconcile`: the table itself is the previous state. Its items are read with a
    /// parallel Scan into an external sort by hem, merge-joined with the export (its parts in hem
    /// order), and only what differs is written: new and changed hems put, moves as transactions,
    /// and every item of a hem the export lacks, or beyond the one a hem keeps, deleted. A table
    /// that drifted (stale sentinels, a hem under two VUPs, hems gone from the export) ends equal
    /// to the export. The Scan reads the whole table even on a rerun (the checkpoint skips writes).
    public func reconcile(
        _ locations: [ExportLocation], name: String, size: Int64?, client: AWSClient?, scanClient: AWSClient
    ) async throws -> SourceSummary {
        var summary = SourceSummary(source: name, previous: "table \(options.table)")
        let scanner = TableScanner(
            client: scanClient, table: options.table, segments: options.scanSegments,
            bucket: options.maxRCU.map { WriteCapacityBucket(unitsPerSecond: $0) })
        let sorter = ExternalSorter(directory: options.tmpDir, memoryLimit: options.sortMemory)
        // The export is read and sorted while the Scan runs (the Scan waits on the network, or
        // here on the other core); each sort keeps its own `--sort-buffer-mb`.
        let options = self.options
        async let exportSide = Self.hemOrdered(locations, client: client, options: options)
        let scan: ScanStats
        do {
            scan = try await scanner.scan(stop: stop) { records throws(ExportError) in try sorter.add(records) }
        } catch let error as ExportError {
            throw LoadError(source: error.source, line: error.line, message: error.message)
        } catch {
            throw LoadError(source: "table \(options.table)", line: nil, message: "Scan failed: \(error)")
        }
        if stop.isRequested {
            // Stopped while scanning: nothing was written; a rerun scans again.
            summary.stopped = true
            summary.scanned = scan.items
            return summary
        }
        let items: HemOrderedInput
        do {
            items = .sorted(try sorter.finish(), name: "table \(options.table)")
        } catch {
            throw LoadError(source: error.source, line: error.line, message: error.message)
        }
        let current = try await exportSide.input
        let diff = ExportDiff(previous: items, current: current, previousIsTable: true)
        try await apply(diff, key: "reconcile " + name, size: size, current: current, summary: &summary)
        summary.warnings = current.warnings
        summary.scanned = scan.items
        summary.repaired = diff.repaired
        summary.scanStats = scan
        return summary
    }
}

/// What a Scan read: items, pages (calls), read capacity consumed.
public struct ScanStats: Sendable {
    public var items = 0
    public var pages = 0
    public var consumedCapacity = 0.0
    public var retries = 0
}

/// A parallel Scan of the loader's table, projected onto the attributes an export row has, with
/// the loader's retries (TableWriter.call: throttling and transient failures back off) and an
/// optional read-capacity bucket (`--max-rcu`). One call per segment is in flight at a time;
/// pages are decoded into sort records in the calling tasks, and handed to `consume` one page at
/// a time on the caller's task.
struct TableScanner {
    let client: AWSClient
    let table: String
    let segments: Int
    let bucket: WriteCapacityBucket?

    /// A Scan page is at most 1 MB: 128 read units at eventual consistency. The bucket is charged
    /// this before the call and corrected by the consumed capacity after it.
    static let pageUnits = 128

    /// Reads every segment to its end, or until `stop` is requested (then the pages in flight
    /// are consumed and no more are asked for).
    func scan(stop: StopRequest, _ consume: (SortRecordBuffer) throws(ExportError) -> Void) async throws -> ScanStats {
        let caller = TableWriter(
            client: client, table: table, concurrency: AdaptiveConcurrency(maximum: segments), bucket: nil)
        var stats = ScanStats()
        try await withThrowingTaskGroup(
            of: (segment: Int, records: SortRecordBuffer, next: JSON?, stats: WriteStats).self
        ) {
            group in
            for segment in 0..<segments {
                group.addTask { try await page(segment: segment, start: nil, caller: caller) }
            }
            while let result = try await group.next() {
                stats.pages += 1
                stats.items += result.records.count
                stats.consumedCapacity += result.stats.consumedCapacity
                stats.retries += result.stats.retries
                try consume(result.records)
                if let next = result.next, !stop.isRequested {
                    group.addTask { try await page(segment: result.segment, start: next, caller: caller) }
                }
            }
        }
        return stats
    }

    private func page(segment: Int, start: JSON?, caller: TableWriter) async throws -> (
        segment: Int, records: SortRecordBuffer, next: JSON?, stats: WriteStats
    ) {
        if let bucket { try await bucket.acquire(Self.pageUnits) }
        var stats = WriteStats()
        let page = try await caller.call("Scan", Self.request(table, segment, segments, start), &stats) { bytes in
            if let page = ScanPage.parse(bytes) { return page }
            guard let json = try? JSON.parse(bytes), let members = json.objectValue else {
                throw AWSError(
                    kind: .malformedResponse, service: .dynamoDB, operation: "Scan", message: "response is not JSON")
            }
            var records = SortRecordBuffer()
            for row in (json["Items"]?.arrayValue ?? []).compactMap(Self.row) { records.append(.row(row), part: 0) }
            return ScanPage(records: records, members: members)
        }
        // Scan reports one ConsumedCapacity object (the write calls a list of them).
        if let units = page.members["ConsumedCapacity"]?["CapacityUnits"]?.doubleValue {
            stats.consumedCapacity += units
            stats.capacityReported = true
        }
        if let bucket { _ = bucket.reserve(Int(stats.consumedCapacity.rounded(.up)) - Self.pageUnits) }
        let next = page.members["LastEvaluatedKey"].flatMap { $0.isNull ? nil : $0 }
        return (segment, page.records, next, stats)
    }

    /// The export's attributes only (names through placeholders: `domain` and `source` are
    /// DynamoDB reserved words).
    static func request(_ table: String, _ segment: Int, _ total: Int, _ start: JSON?) -> [UInt8] {
        var body: [String: JSON] = [
            "TableName": .string(table),
            "ProjectionExpression": "#h, #v, #e, #d, #s, #l, #u",
            "ExpressionAttributeNames": [
                "#h": "hem", "#v": "vup_id", "#e": "email", "#d": "domain", "#s": "source", "#l": "last_verified",
                "#u": "updated_at",
            ],
            "ReturnConsumedCapacity": "TOTAL",
        ]
        if total > 1 {
            body["Segment"] = .int(segment)
            body["TotalSegments"] = .int(total)
        }
        if let start { body["ExclusiveStartKey"] = start }
        return JSON.object(body).serializedBytes()
    }

    /// An item as the row that would have written it (line 0); nil without its key attributes.
    static func row(_ item: JSON) -> ExportRow? {
        guard let hem = item["hem"]?["S"]?.stringValue, let vupID = item["vup_id"]?["S"]?.stringValue else {
            return nil
        }
        return ExportRow(
            hem: hem, vupID: vupID, email: item["email"]?["S"]?.stringValue, domain: item["domain"]?["S"]?.stringValue,
            source: item["source"]?["S"]?.stringValue, lastVerified: item["last_verified"]?["S"]?.stringValue,
            updatedAt: item["updated_at"]?["S"]?.stringValue ?? "", line: 0)
    }
}

/// A value made on one task and handed to another, which alone uses it from then on (the
/// export's sorted input, read and sorted while the Scan runs). Sendable because the task that
/// made it keeps no reference to it.
struct HandedOver<Value>: @unchecked Sendable {
    let input: Value
    init(_ input: Value) { self.input = input }
}
