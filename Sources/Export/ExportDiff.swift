/// What changed between two hem-ordered inputs (merge-join, for `load --previous` and `--reconcile`).
public enum ExportChange: Sendable, Equatable {
    /// The hem is only in the current export.
    case added(ExportRow)
    /// Same hem, same vupID, some attribute differs.
    case changed(old: ExportRow, new: ExportRow)
    /// Same hem, vupID differs.
    case moved(old: ExportRow, new: ExportRow)
    /// The hem is only in the previous input; or, when the previous input is the table, an
    /// extra item of a hem that has several.
    case removed(ExportRow)
    /// A rejection from the CURRENT export.
    case rejected(RowRejection)
}

/// Streaming merge-join of two hem-ordered inputs, one hem at a time. Equal rows produce
/// nothing (counted in `unchanged`). A rejected current row whose hem is valid, with no valid
/// row of that hem, suppresses the removal of that hem (a bad new row never deletes the old item).
/// Rejections of the previous input are counted in `previousRejected`, not emitted.
///
/// A hem on several rows of the current input keeps the LAST row (by part, then line), as a
/// full load does; the earlier rows come out as `duplicate_hem` rejections. In a previous
/// export the last row is kept likewise (the earlier ones are counted in `previousRejected`).
/// When the previous input is the table itself (`previousIsTable`), every row is an item: a
/// hem with several items keeps the one with the current row's vup_id (or moves the most
/// recently updated one) and the others are removed; `repaired` counts such hems.
///
/// When the table and the export both come out of a sorter (`--reconcile`), hems and records
/// are compared as the sorter's bytes, and rows are decoded only for the hems that differ.
///
/// A batch never ends inside a hem, so a checkpoint at a batch's last hem covers all its writes.
public final class ExportDiff {
    public private(set) var unchanged = 0
    public private(set) var previousRejected = 0
    /// Hems of the previous input (the table) that had more than one item.
    public private(set) var repaired = 0
    public let previousIsTable: Bool

    private let previous: Groups
    private let current: Groups
    /// The table's items still as sort records, when the previous input is the table out of a
    /// sorter; and the export's, when it too comes out of a sorter. A hem whose one item equals
    /// its one row byte for byte is passed over with no String or row made (~93% of a night's).
    private let table: RecordGroups?
    private let currentRecords: RecordGroups?
    private var previousHead: Group?
    private var currentHead: Group?
    /// Whether the heads (decoded, or in `table` / `currentRecords`) are read, and there.
    private var previousLoaded = false
    private var hasPrevious = false
    private var currentLoaded = false
    private var hasCurrent = false
    private var finished = false

    public init(previous: HemOrderedInput, current: HemOrderedInput, previousIsTable: Bool = false) {
        self.previous = Groups(previous)
        self.current = Groups(current)
        self.previousIsTable = previousIsTable
        let table = previousIsTable ? previous.sorted.map { RecordGroups($0, partNames: previous.partNames) } : nil
        self.table = table
        currentRecords = table == nil ? nil : current.sorted.map { RecordGroups($0, partNames: current.partNames) }
    }

    /// Two single exports, each sorted by hem.
    public convenience init(previous: ExportReader, current: ExportReader) {
        self.init(previous: .merging([previous]), current: .merging([current]))
    }

    public func nextBatch(maxChanges: Int = 4096) async throws -> [ExportChange]? {
        guard !finished else { return nil }
        var out: [ExportChange] = []
        while out.count < maxChanges {
            try await loadPrevious()
            guard try await loadCurrent(&out) else { continue }
            switch (hasPrevious, hasCurrent) {
            case (false, false):
                finished = true
            case (true, false):
                remove(takePrevious(), &out)
            case (false, true):
                if let row = settle(takeCurrent(), &out) { out.append(.added(row)) }
            case (true, true):
                let order = compareHeads()
                if order < 0 {
                    remove(takePrevious(), &out)
                } else if order > 0 {
                    if let row = settle(takeCurrent(), &out) { out.append(.added(row)) }
                } else if let table, let currentRecords, table.isOneRow(equalTo: currentRecords) {
                    previousLoaded = false
                    currentLoaded = false
                    unchanged += 1
                } else {
                    compare(takeCurrent(), &out)
                }
            }
            if finished { break }
        }
        if out.isEmpty && finished { return nil }
        return out
    }

    private func loadPrevious() async throws {
        guard !previousLoaded else { return }
        if let table {
            hasPrevious = try table.advance()
        } else {
            previousHead = try await nextPrevious()
            hasPrevious = previousHead != nil
        }
        previousLoaded = true
    }

    /// False when a rejection without a valid hem went out instead (nothing to join).
    private func loadCurrent(_ out: inout [ExportChange]) async throws -> Bool {
        guard !currentLoaded else { return true }
        if let currentRecords {
            hasCurrent = try currentRecords.advance()
            if hasCurrent && currentRecords.isLoose {
                for rejection in currentRecords.group().rejections { out.append(.rejected(rejection)) }
                return false
            }
        } else {
            switch try await current.next() {
            case .loose(let rejection)?:
                out.append(.rejected(rejection))
                return false
            case .group(let group)?: currentHead = group
            case nil: currentHead = nil
            }
            hasCurrent = currentHead != nil
        }
        currentLoaded = true
        return true
    }

    /// The heads' hems: < 0 when the previous one comes first. Records from a sorter compare as
    /// their bytes (the sorter's order); decoded groups as the merge of parts orders them.
    private func compareHeads() -> Int {
        switch (table, currentRecords) {
        case (let table?, let currentRecords?): return table.compareHem(to: currentRecords)
        case (let table?, nil): return table.compareHem(to: currentHead!.hem)
        default:
            let (a, b) = (previousHead!.hem, currentHead!.hem)
            return a < b ? -1 : (b < a ? 1 : 0)
        }
    }

    /// The previous head as a group (decoded from the sorter's bytes if need be), consumed.
    private func takePrevious() -> Group {
        previousLoaded = false
        return table?.group() ?? previousHead!
    }

    /// The current head as a group, consumed.
    private func takeCurrent() -> Group {
        currentLoaded = false
        return currentRecords?.group() ?? currentHead!
    }

    /// The next group of the previous input with a row; loose rejections are only counted.
    private func nextPrevious() async throws -> Group? {
        while let item = try await previous.next() {
            switch item {
            case .loose: previousRejected += 1
            case .group(var group):
                previousRejected += group.rejections.count
                if !previousIsTable && group.rows.count > 1 {
                    previousRejected += group.rows.count - 1
                    group.rows.removeFirst(group.rows.count - 1)
                }
                if !group.rows.isEmpty { return group }
            }
        }
        return nil
    }

    /// The previous input's items of a hem the current input does not have.
    private func remove(_ old: Group, _ out: inout [ExportChange]) {
        if old.rows.count > 1 { repaired += 1 }
        for (row, _) in old.rows { out.append(.removed(row)) }
    }

    /// The current group's rejections and earlier rows (as duplicate_hem) go out; the last row is returned.
    private func settle(_ new: Group, _ out: inout [ExportChange]) -> ExportRow? {
        for rejection in new.rejections { out.append(.rejected(rejection)) }
        for (row, part) in new.rows.dropLast() {
            out.append(
                .rejected(
                    RowRejection(
                        source: current.input.partNames[part], line: row.line, reason: .duplicateHem, hem: row.hem,
                        field: "hem")))
        }
        return new.rows.last?.row
    }

    /// The previous head and `new`, of the same hem. Without a valid current row the previous
    /// items stay as they are (a bad new row never deletes the old item).
    private func compare(_ new: Group, _ out: inout [ExportChange]) {
        guard let row = settle(new, &out) else {
            previousLoaded = false
            return
        }
        if let table, table.isOneRow(equalTo: row) {
            previousLoaded = false
            unchanged += 1
            return
        }
        let old = takePrevious()
        if old.rows.count > 1 { repaired += 1 }
        let items = old.rows.map { $0.row }
        let kept = items.firstIndex { $0.vupID == row.vupID } ?? Self.moveSource(items)
        let item = items[kept]
        if item.vupID != row.vupID {
            out.append(.moved(old: item, new: row))
        } else if item.sameAttributes(as: row) {
            unchanged += 1
        } else {
            out.append(.changed(old: item, new: row))
        }
        for (i, extra) in items.enumerated() where i != kept { out.append(.removed(extra)) }
    }

    /// Of several items none of which has the new vup_id, the one a move comes from: the most
    /// recently updated, a real VUP before a sentinel.
    static func moveSource(_ items: [ExportRow]) -> Int {
        var best = 0
        for i in items.indices.dropFirst() {
            let a = items[i]
            let b = items[best]
            let aReal = !a.vupID.hasPrefix("UNRESOLVED#")
            let bReal = !b.vupID.hasPrefix("UNRESOLVED#")
            if a.updatedAt > b.updatedAt || (a.updatedAt == b.updatedAt && aReal && !bReal) { best = i }
        }
        return best
    }
}

/// The records of one hem together.
struct Group {
    var hem: String
    var rows: [(row: ExportRow, part: Int)] = []
    var rejections: [RowRejection] = []
}

/// A hem-ordered input read a hem at a time.
final class Groups {
    enum Item {
        case group(Group)
        case loose(RowRejection)
    }

    let input: HemOrderedInput
    private var pending: HemItem?
    private var ended = false

    init(_ input: HemOrderedInput) { self.input = input }

    func next() async throws -> Item? {
        var group: Group?
        while true {
            let item: HemItem
            if let pending {
                item = pending
                self.pending = nil
            } else if !ended, let fetched = try await input.next() {
                item = fetched
            } else {
                ended = true
                return group.map { .group($0) }
            }
            switch item {
            case .loose(let rejection):
                if group == nil { return .loose(rejection) }
                pending = item
                return group.map { .group($0) }
            case .keyed(let hem, let record, let part):
                if let existing = group, existing.hem != hem {
                    pending = item
                    return .group(existing)
                }
                if group == nil { group = Group(hem: hem) }
                switch record {
                case .row(let row): group!.rows.append((row, part))
                case .rejected(let rejection): group!.rejections.append(rejection)
                }
            }
        }
    }
}

/// One hem's records at a time out of a sorter (the table's items, or the export's rows), kept
/// as the sorter's bytes: hems compare as bytes, a hem's one item and its one row compare as
/// bytes, and records are decoded only when they differ (a few percent of a night's).
final class RecordGroups {
    private let records: SortedRecords
    private let partNames: [String]
    /// The current group: its hem, its records' payloads end to end, and where each ends.
    private var hem: [UInt8] = []
    private var payloads: [UInt8] = []
    private var ends: [Int] = []
    /// The first record of the next hem, read while looking for the end of this one.
    private var pendingHem: [UInt8] = []
    private var pendingPayload: [UInt8] = []
    private var hasPending = false
    private var scratch: [UInt8] = []

    init(_ records: SortedRecords, partNames: [String]) {
        self.records = records
        self.partNames = partNames
    }

    /// The group of rejections without a valid hem (their key is empty; they sort first).
    var isLoose: Bool { hem.isEmpty }

    /// Reads the next hem's records; false at the end.
    func advance() throws(ExportError) -> Bool {
        hem.removeAll(keepingCapacity: true)
        payloads.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        if hasPending {
            swap(&hem, &pendingHem)
            swap(&payloads, &pendingPayload)
            ends.append(payloads.count)
            hasPending = false
        } else {
            let found: Bool? = try records.next { key, payload in
                hem.append(contentsOf: key)
                payloads.append(contentsOf: payload)
                ends.append(payloads.count)
                return true
            }
            if found == nil { return false }
        }
        while !hasPending {
            let found: Bool? = try records.next { key, payload in
                if Self.compare(key, hem) == 0 {
                    payloads.append(contentsOf: payload)
                    ends.append(payloads.count)
                } else {
                    pendingHem.removeAll(keepingCapacity: true)
                    pendingHem.append(contentsOf: key)
                    pendingPayload.removeAll(keepingCapacity: true)
                    pendingPayload.append(contentsOf: payload)
                    hasPending = true
                }
                return true
            }
            if found == nil { break }
        }
        return true
    }

    /// The sorter's key order (`compareKeyBytes`).
    @inline(__always) static func compare(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Int {
        b.withUnsafeBytes { b in compareKeyBytes(a.baseAddress, a.count, b.baseAddress, b.count) }
    }

    /// The current hem against another input's, in byte order.
    func compareHem(to other: RecordGroups) -> Int {
        other.hem.withUnsafeBytes { -Self.compare($0, hem) }
    }

    /// The current hem against a decoded group's, in byte order.
    func compareHem(to other: String) -> Int {
        var other = other
        return other.withUTF8 { -Self.compare(UnsafeRawBufferPointer($0), hem) }
    }

    /// True when this hem has one item, a row whose vup_id and attributes are `row`'s byte for byte.
    func isOneRow(equalTo row: ExportRow) -> Bool {
        guard ends.count == 1 else { return false }
        return payloads.withUnsafeBytes { ExternalSorter.rowPayload($0, hasStringsOf: row, scratch: &scratch) }
    }

    /// True when both hold one row each (same hem) whose vup_id and attributes are equal byte for byte.
    func isOneRow(equalTo other: RecordGroups) -> Bool {
        guard ends.count == 1, other.ends.count == 1 else { return false }
        return payloads.withUnsafeBytes { a in
            other.payloads.withUnsafeBytes { b in ExternalSorter.rowPayload(a, hasStringsOf: b) }
        }
    }

    /// The current hem's records, decoded (rows, and rejections with or without a hem).
    func group() -> Group {
        var group = Group(hem: String(decoding: hem, as: UTF8.self))
        hem.withUnsafeBytes { key in
            payloads.withUnsafeBytes { all in
                var start = 0
                for end in ends {
                    let payload = UnsafeRawBufferPointer(rebasing: all[start..<end])
                    switch SortedRecords.decode(key: key, payload: payload, partNames: partNames) {
                    case .keyed(_, .row(let row), let part): group.rows.append((row, part))
                    case .keyed(_, .rejected(let rejection), _), .loose(let rejection):
                        group.rejections.append(rejection)
                    }
                    start = end
                }
            }
        }
        return group
    }
}
