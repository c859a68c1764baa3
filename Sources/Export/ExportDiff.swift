/// What changed between two exports sorted by hem (merge-join, for `load --previous`).
public enum ExportChange: Sendable, Equatable {
    /// The hem is only in the current export.
    case added(ExportRow)
    /// Same hem, same vupID, some attribute differs.
    case changed(old: ExportRow, new: ExportRow)
    /// Same hem, vupID differs.
    case moved(old: ExportRow, new: ExportRow)
    /// The hem is only in the previous export.
    case removed(ExportRow)
    /// A rejection from the CURRENT export.
    case rejected(RowRejection)
}

/// Streaming merge-join. Equal rows produce nothing (counted in `unchanged`). A rejected current
/// row whose hem is valid suppresses the removal of that hem (a bad new row never deletes the
/// old item). Rejections of the previous export are counted in `previousRejected`, not emitted.
/// A hem lower than the one before it (in either input) throws ExportError naming the source
/// and line, before any change past that point is returned. Each input is read one record
/// ahead, so a swapped pair stops the diff before either of its records is compared; the
/// batch that meets the error is not returned.
///
/// The same hem twice in a row keeps the first: in the current export the later ones come out
/// as `duplicate_hem` rejections, in the previous export they are counted in `previousRejected`.
public final class ExportDiff {
    public private(set) var unchanged = 0
    public private(set) var previousRejected = 0

    private let previous: SortedInput
    private let current: SortedInput
    private var previousHead: SortedInput.Item?
    private var currentHead: SortedInput.Item?
    private var finished = false

    public init(previous: ExportReader, current: ExportReader) {
        self.previous = SortedInput(previous)
        self.current = SortedInput(current)
    }

    public func nextBatch(maxChanges: Int = 4096) async throws -> [ExportChange]? {
        guard !finished else { return nil }
        var out: [ExportChange] = []
        while out.count < maxChanges {
            if previousHead == nil { previousHead = try await nextPrevious() }
            if currentHead == nil { currentHead = try await current.next() }
            switch (previousHead, currentHead) {
            case (nil, nil):
                finished = true
            case (_, .loose(let rejection)?):
                out.append(.rejected(rejection))
                currentHead = nil
            case (.keyed(let hem, let old)?, nil):
                out.append(.removed(Self.row(old, hem)))
                previousHead = nil
            case (nil, .keyed(_, let record)?):
                out.append(Self.addition(record))
                currentHead = nil
            case (.keyed(let oldHem, let old)?, .keyed(let newHem, let new)?):
                if oldHem < newHem {
                    out.append(.removed(Self.row(old, oldHem)))
                    previousHead = nil
                } else if newHem < oldHem {
                    out.append(Self.addition(new))
                    currentHead = nil
                } else {
                    switch new {
                    case .rejected(let rejection):
                        out.append(.rejected(rejection))
                    case .row(let newRow):
                        let oldRow = Self.row(old, oldHem)
                        if oldRow.sameAttributes(as: newRow) {
                            unchanged += 1
                        } else if oldRow.vupID == newRow.vupID {
                            out.append(.changed(old: oldRow, new: newRow))
                        } else {
                            out.append(.moved(old: oldRow, new: newRow))
                        }
                    }
                    previousHead = nil
                    currentHead = nil
                }
            case (.loose?, _):
                preconditionFailure("previous rejections are counted, never queued")
            }
            if finished { break }
        }
        if out.isEmpty && finished { return nil }
        return out
    }

    /// The next row of the previous export; its rejections and duplicates are only counted.
    private func nextPrevious() async throws -> SortedInput.Item? {
        while let item = try await previous.next() {
            if case .keyed(_, .row) = item { return item }
            previousRejected += 1
        }
        return nil
    }

    private static func addition(_ record: ExportRecord) -> ExportChange {
        switch record {
        case .row(let row): return .added(row)
        case .rejected(let rejection): return .rejected(rejection)
        }
    }

    private static func row(_ record: ExportRecord, _ hem: String) -> ExportRow {
        guard case .row(let row) = record else { preconditionFailure("previous head \(hem) is always a row") }
        return row
    }
}

/// One export read in hem order: checks that order, turns repeats of a hem into `duplicate_hem`
/// rejections, and passes rejections without a valid hem through as `loose`.
final class SortedInput {
    enum Item {
        case keyed(hem: String, ExportRecord)
        case loose(RowRejection)
    }

    private let reader: ExportReader
    private var batch: [ExportRecord] = []
    private var index = 0
    private var lastHem: String?
    private var lastLine = 0
    private var ended = false
    private var primed = false
    private var lookahead: Item?

    init(_ reader: ExportReader) {
        self.reader = reader
    }

    /// The next item. The one after it has been read and checked already, so a swapped pair
    /// throws before the first of the two is handed out (and so before any change that a
    /// comparison with it would give, such as a wrong removal).
    func next() async throws -> Item? {
        if !primed {
            primed = true
            lookahead = try await fetch()
        }
        guard let item = lookahead else { return nil }
        lookahead = try await fetch()
        return item
    }

    private func fetch() async throws -> Item? {
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
        let hem: String
        let line: Int
        switch record {
        case .row(let row):
            hem = row.hem
            line = row.line
        case .rejected(let rejection):
            guard let valid = rejection.hem else { return .loose(rejection) }
            hem = valid
            line = rejection.line
        }
        if let lastHem {
            if hem < lastHem {
                throw ExportError(
                    source: reader.location.description, line: line,
                    message:
                        "hem \(hem) is out of order: lower than hem \(lastHem) on line \(lastLine) "
                        + "(an incremental load needs both exports sorted by hem)")
            }
            if hem == lastHem {
                return .keyed(
                    hem: hem,
                    .rejected(
                        RowRejection(
                            source: reader.location.description, line: line, reason: .duplicateHem, hem: hem,
                            field: "hem")))
            }
        }
        lastHem = hem
        lastLine = line
        return .keyed(hem: hem, record)
    }
}
