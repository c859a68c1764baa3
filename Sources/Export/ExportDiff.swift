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
/// A batch never ends inside a hem, so a checkpoint at a batch's last hem covers all its writes.
public final class ExportDiff {
    public private(set) var unchanged = 0
    public private(set) var previousRejected = 0
    /// Hems of the previous input (the table) that had more than one item.
    public private(set) var repaired = 0
    public let previousIsTable: Bool

    private let previous: Groups
    private let current: Groups
    private var previousHead: Group?
    private var currentHead: Group?
    private var finished = false

    public init(previous: HemOrderedInput, current: HemOrderedInput, previousIsTable: Bool = false) {
        self.previous = Groups(previous)
        self.current = Groups(current)
        self.previousIsTable = previousIsTable
    }

    /// Two single exports, each sorted by hem.
    public convenience init(previous: ExportReader, current: ExportReader) {
        self.init(previous: .merging([previous]), current: .merging([current]))
    }

    public func nextBatch(maxChanges: Int = 4096) async throws -> [ExportChange]? {
        guard !finished else { return nil }
        var out: [ExportChange] = []
        while out.count < maxChanges {
            if previousHead == nil { previousHead = try await nextPrevious() }
            if currentHead == nil {
                switch try await current.next() {
                case .loose(let rejection)?:
                    out.append(.rejected(rejection))
                    continue
                case .group(let group)?: currentHead = group
                case nil: break
                }
            }
            switch (previousHead, currentHead) {
            case (nil, nil):
                finished = true
            case (let old?, nil):
                remove(old, &out)
                previousHead = nil
            case (nil, let new?):
                if let row = settle(new, &out) { out.append(.added(row)) }
                currentHead = nil
            case (let old?, let new?):
                if old.hem < new.hem {
                    remove(old, &out)
                    previousHead = nil
                } else if new.hem < old.hem {
                    if let row = settle(new, &out) { out.append(.added(row)) }
                    currentHead = nil
                } else {
                    compare(old, new, &out)
                    previousHead = nil
                    currentHead = nil
                }
            }
            if finished { break }
        }
        if out.isEmpty && finished { return nil }
        return out
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

    private func compare(_ old: Group, _ new: Group, _ out: inout [ExportChange]) {
        guard let row = settle(new, &out) else { return }
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
