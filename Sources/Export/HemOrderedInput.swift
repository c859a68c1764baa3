#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One record of a hem-ordered input: keyed by its valid hem, with the part it came from, or a
/// rejection without a valid hem (`loose`), which has no place in the order.
public enum HemItem: Sendable {
    case keyed(hem: String, record: ExportRecord, part: Int)
    case loose(RowRejection)
}

/// The records of many parts (the files of one export, or the items of the table) in hem
/// order; records of the same hem in part order, then line order, so the last of them is the
/// last row of the export. Two ways to get there:
/// - `merging`: each part must already be sorted; the parts stream through a k-way merge with
///   nothing spilled, and a part out of order throws naming the part and line (`--assume-sorted`).
/// - `sorting`: the parts are read in any order into an `ExternalSorter` (a sorted part is only
///   checked, not sorted; an unsorted one is sorted in bounded memory), then merged.
public final class HemOrderedInput {
    /// Display names of the parts, by part index.
    public let partNames: [String]
    private var readers: [ExportReader]
    /// Set for `sorting` and `sorted`: the records come out of a sorter.
    private(set) var sorted: SortedRecords?
    private var streams: [PartStream] = []
    private var heads: [HemItem?] = []
    private var primed = false

    /// Rows read from every part (rows + rejections).
    public var recordsRead: Int { readers.reduce(0) { $0 + $1.recordsRead } }
    /// Stored bytes read from every part.
    public var bytesRead: Int64 { readers.reduce(0) { $0 + $1.bytesRead } }
    public var totalBytes: Int64? {
        var total: Int64 = 0
        for reader in readers {
            guard let size = reader.totalBytes else { return nil }
            total += size
        }
        return total
    }
    /// Each reader's warnings, prefixed with its part when there are several.
    public var warnings: [String] {
        readers.flatMap { reader in
            readers.count > 1 ? reader.warnings.map { "\(reader.location.description): \($0)" } : reader.warnings
        }
    }

    private init(partNames: [String], readers: [ExportReader]) {
        self.partNames = partNames
        self.readers = readers
    }

    /// Parts already sorted by hem, merged as they stream.
    public static func merging(_ readers: [ExportReader]) -> HemOrderedInput {
        let input = HemOrderedInput(partNames: readers.map(\.location.description), readers: readers)
        input.streams = readers.enumerated().map { PartStream($1, part: $0) }
        return input
    }

    /// Parts in any order: every record goes through an external sort under `directory`. Each
    /// part is opened (`open`) when the one before it is read to its end.
    public static func sorting(
        _ locations: [ExportLocation], open: (ExportLocation) async throws -> ExportReader, directory: String?,
        memoryLimit: Int = ExternalSorter.defaultMemoryLimit
    ) async throws -> HemOrderedInput {
        let input = HemOrderedInput(partNames: locations.map(\.description), readers: [])
        let sorter = ExternalSorter(directory: directory, memoryLimit: memoryLimit)
        for (part, location) in locations.enumerated() {
            let reader = try await open(location)
            input.readers.append(reader)
            while let batch = try await reader.nextBatch() {
                // Read beside a Scan (`--reconcile`), which may fail or be stopped.
                try Task.checkCancellation()
                for record in batch { try sorter.add(record, part: part) }
            }
        }
        input.sorted = try sorter.finish()
        return input
    }

    /// Records already sorted by a sorter (the table's items, say), under one name.
    public static func sorted(_ records: SortedRecords, name: String) -> HemOrderedInput {
        let input = HemOrderedInput(partNames: [name], readers: [])
        input.sorted = records
        return input
    }

    /// The next record in hem order; nil at the end.
    public func next() async throws -> HemItem? {
        if let sorted { return try sorted.nextItem(partNames: partNames) }
        if !primed {
            primed = true
            heads = []
            for stream in streams { heads.append(try await stream.next()) }
        }
        var best: Int?
        for i in heads.indices {
            guard let head = heads[i] else { continue }
            guard case .keyed(let hem, _, _) = head else {
                best = i
                break
            }
            if let b = best, case .keyed(let bestHem, _, _) = heads[b], !(hem < bestHem) { continue }
            best = i
        }
        guard let best, let item = heads[best] else { return nil }
        heads[best] = try await streams[best].next()
        return item
    }
}

/// One part read in hem order for `HemOrderedInput.merging`: checks that order, one record
/// ahead, so a swapped pair throws before the first of the two is handed out (and so before any
/// change that a comparison with it would give, such as a wrong removal).
final class PartStream {
    private let reader: ExportReader
    private let part: Int
    private var batch: [ExportRecord] = []
    private var index = 0
    private var lastHem: String?
    private var lastLine = 0
    private var ended = false
    private var primed = false
    private var lookahead: HemItem?

    init(_ reader: ExportReader, part: Int) {
        self.reader = reader
        self.part = part
    }

    func next() async throws -> HemItem? {
        if !primed {
            primed = true
            lookahead = try await fetch()
        }
        guard let item = lookahead else { return nil }
        lookahead = try await fetch()
        return item
    }

    private func fetch() async throws -> HemItem? {
        while index >= batch.count {
            guard !ended, let more = try await reader.nextBatch() else {
                ended = true
                return nil
            }
            batch = more
            index = 0
        }
        let record = batch[index]
        index += 1
        guard let hem = record.hem else {
            guard case .rejected(let rejection) = record else { preconditionFailure("a row always has a hem") }
            return .loose(rejection)
        }
        if let lastHem, hem < lastHem {
            throw ExportError(
                source: reader.location.description, line: record.line,
                message:
                    "hem \(hem) is out of order: lower than hem \(lastHem) on line \(lastLine) "
                    + "(--assume-sorted needs every part sorted by hem; without it the part is sorted)")
        }
        lastHem = hem
        lastLine = record.line
        return .keyed(hem: hem, record: record, part: part)
    }
}

extension ExportRecord {
    /// The valid hem of a row, or of a rejection whose hem was valid.
    public var hem: String? {
        switch self {
        case .row(let row): return row.hem
        case .rejected(let rejection): return rejection.hem
        }
    }

    public var line: Int {
        switch self {
        case .row(let row): return row.line
        case .rejected(let rejection): return rejection.line
        }
    }
}

// MARK: The sort's binary record

/// Payload after the key: `[UInt16 part][UInt8 tag]`, then for a row `[UInt32 line]` and its
/// six strings (vup_id, email, domain, source, last_verified, updated_at), for a rejection
/// `[UInt32 line][UInt8 reason][has hem]` and its field; a string is `[UInt32 length]` + bytes,
/// length 0xFFFFFFFF for nil. The key is the hem ("" for a rejection without a valid hem).
extension ExternalSorter {
    public func add(_ record: ExportRecord, part: Int) throws(ExportError) {
        try add(key: record.hem ?? "") { Self.appendPayload(record, part: part, to: &$0) }
    }

    /// The payload of `record` (everything after the key).
    static func appendPayload(_ record: ExportRecord, part: Int, to out: inout [UInt8]) {
        appendUInt16(UInt16(truncatingIfNeeded: part), &out)
        switch record {
        case .row(let row):
            out.append(0)
            appendUInt32(UInt32(truncatingIfNeeded: row.line), &out)
            appendRowStrings(row, &out)
        case .rejected(let rejection):
            out.append(1)
            appendUInt32(UInt32(truncatingIfNeeded: rejection.line), &out)
            out.append(UInt8(RejectReason.allCases.firstIndex(of: rejection.reason)!))
            out.append(rejection.hem == nil ? 0 : 1)
            appendString(rejection.field, &out)
        }
    }

    /// A row's six strings, in the payload's order.
    @inline(__always) static func appendRowStrings(_ row: ExportRow, _ out: inout [UInt8]) {
        appendString(row.vupID, &out)
        appendString(row.email, &out)
        appendString(row.domain, &out)
        appendString(row.source, &out)
        appendString(row.lastVerified, &out)
        appendString(row.updatedAt, &out)
    }

    /// Bytes of a row's payload before its strings: part, tag, line.
    static let rowHeaderSize = 7

    /// True when `payload` is a row whose six strings are byte for byte those of `row` (so
    /// vup_id and every attribute are equal; the key, part and line are not compared). Bytes
    /// that differ say nothing (Unicode-equal strings may differ in bytes): compare the decoded
    /// rows then. `scratch` is reused between calls.
    public static func rowPayload(
        _ payload: UnsafeRawBufferPointer, hasStringsOf row: ExportRow, scratch: inout [UInt8]
    ) -> Bool {
        guard payload.count > rowHeaderSize, payload[2] == 0 else { return false }
        scratch.removeAll(keepingCapacity: true)
        appendRowStrings(row, &scratch)
        guard payload.count - rowHeaderSize == scratch.count else { return false }
        return scratch.withUnsafeBytes { memcmp($0.baseAddress!, payload.baseAddress! + rowHeaderSize, $0.count) == 0 }
    }

    /// True when both payloads are rows whose six strings are equal byte for byte.
    public static func rowPayload(_ payload: UnsafeRawBufferPointer, hasStringsOf other: UnsafeRawBufferPointer)
        -> Bool
    {
        guard payload.count > rowHeaderSize, payload[2] == 0, other.count == payload.count, other[2] == 0 else {
            return false
        }
        let n = payload.count - rowHeaderSize
        return memcmp(payload.baseAddress! + rowHeaderSize, other.baseAddress! + rowHeaderSize, n) == 0
    }

    @inline(__always) static func appendUInt16(_ value: UInt16, _ out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
    }

    @inline(__always) static func appendUInt32(_ value: UInt32, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    @inline(__always) static func appendString(_ value: String?, _ out: inout [UInt8]) {
        guard var value else {
            appendUInt32(.max, &out)
            return
        }
        value.withUTF8 { bytes in
            appendUInt32(UInt32(bytes.count), &out)
            out.append(contentsOf: bytes)
        }
    }
}

extension SortedRecords {
    /// The next record decoded from `ExternalSorter.add(_:part:)`'s format.
    public func nextItem(partNames: [String]) throws(ExportError) -> HemItem? {
        try next { key, payload in Self.decode(key: key, payload: payload, partNames: partNames) }
    }

    /// One record (key and payload) as the item it was made from.
    static func decode(key: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, partNames: [String]) -> HemItem {
        var reader = PayloadReader(bytes: payload)
        let part = Int(reader.uint16())
        let tag = reader.byte()
        let line = Int(reader.uint32())
        let hem = String(decoding: key, as: UTF8.self)
        if tag == 0 {
            let vupID = reader.string() ?? ""
            let email = reader.string()
            let domain = reader.string()
            let source = reader.string()
            let lastVerified = reader.string()
            let updatedAt = reader.string() ?? ""
            let row = ExportRow(
                hem: hem, vupID: vupID, email: email, domain: domain, source: source, lastVerified: lastVerified,
                updatedAt: updatedAt, line: line)
            return .keyed(hem: hem, record: .row(row), part: part)
        }
        let reason = RejectReason.allCases[Int(reader.byte())]
        let hasHem = reader.byte() == 1
        let field = reader.string()
        let name = part < partNames.count ? partNames[part] : "part \(part)"
        let rejection = RowRejection(source: name, line: line, reason: reason, hem: hasHem ? hem : nil, field: field)
        return hasHem ? .keyed(hem: hem, record: .rejected(rejection), part: part) : .loose(rejection)
    }
}

/// Records in the sorter's run format made away from the sorter, then added at once with
/// `ExternalSorter.add(_:)`: a Scan page's items are encoded on the task that read the page,
/// straight from the page's bytes, with no String or row made per item.
public struct SortRecordBuffer: Sendable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var count = 0

    public init() {}

    /// A table item as a row of part 0, line 0, keyed by its hem. `strings` appends the row's
    /// six strings in order (vup_id, email, domain, source, last_verified, updated_at) with
    /// `SortRecordBuffer.append(string:to:)`.
    public mutating func appendTableRow(hem: UnsafeRawBufferPointer, strings: (inout [UInt8]) -> Void) {
        ExternalSorter.appendRecord(key: hem, to: &bytes) { out in
            ExternalSorter.appendUInt16(0, &out)
            out.append(0)
            ExternalSorter.appendUInt32(0, &out)
            strings(&out)
        }
        count += 1
    }

    /// A record as `ExternalSorter.add(_:part:)` would add it.
    public mutating func append(_ record: ExportRecord, part: Int) {
        var hem = record.hem ?? ""
        hem.withUTF8 { key in
            ExternalSorter.appendRecord(key: UnsafeRawBufferPointer(key), to: &bytes) {
                ExternalSorter.appendPayload(record, part: part, to: &$0)
            }
        }
        count += 1
    }

    /// One of a row's strings as bytes (nil: the attribute is absent).
    public static func append(string: UnsafeRawBufferPointer?, to out: inout [UInt8]) {
        guard let string else {
            ExternalSorter.appendUInt32(.max, &out)
            return
        }
        ExternalSorter.appendUInt32(UInt32(string.count), &out)
        out.append(contentsOf: string)
    }

    /// One of a row's strings, decoded (a value with escapes).
    public static func append(string: String?, to out: inout [UInt8]) {
        ExternalSorter.appendString(string, &out)
    }
}

struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func byte() -> UInt8 {
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16() -> UInt16 {
        defer { offset += 2 }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    mutating func uint32() -> UInt32 {
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func string() -> String? {
        let length = uint32()
        if length == .max { return nil }
        defer { offset += Int(length) }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(length)]), as: UTF8.self)
    }
}
