import Export
import Foundation
import TestSupport
import XCTest

final class ExportDiffTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    private func write(_ name: String, _ lines: [String]) throws -> ExportLocation {
        let url = directory.file(name)
        try Data(Synthetic.csv([Synthetic.header] + lines)).write(to: url)
        return .file(path: url.path)
    }

    /// Runs the diff to the end (or its error), one change per batch when `step` is 1.
    private func diff(_ previous: [String], _ current: [String], step: Int = 4096) async throws
        -> (changes: [ExportChange], error: ExportError?, diff: ExportDiff)
    {
        let diff = ExportDiff(
            previous: try await ExportReader(location: try write("day1.csv", previous), client: nil),
            current: try await ExportReader(location: try write("day2.csv", current), client: nil))
        var changes: [ExportChange] = []
        do {
            while let batch = try await diff.nextBatch(maxChanges: step) {
                XCTAssertLessThanOrEqual(batch.count, step)
                changes += batch
            }
            return (changes, nil, diff)
        } catch let error as ExportError {
            assertNoEmail(error.description)
            return (changes, error, diff)
        }
    }

    private func hems(_ change: ExportChange) -> String? {
        switch change {
        case .added(let row), .removed(let row): return row.hem
        case .changed(_, let new), .moved(_, let new): return new.hem
        case .rejected(let rejection): return rejection.hem
        }
    }

    func testDiff_findsAddedChangedMovedRemoved_andCountsUnchanged() async throws {
        let previous = [
            Synthetic.row(1, vup: "vup-a"),  // unchanged
            Synthetic.row(2, vup: "vup-a"),  // changed (updated_at)
            Synthetic.row(3),  // moved: UNRESOLVED#00 -> vup-c (resolved)
            Synthetic.row(4, vup: "vup-d"),  // removed
            Synthetic.row(6, vup: "vup-f"),  // moved: vup-f -> vup-g (reassigned)
        ]
        let current = [
            Synthetic.row(1, vup: "vup-a"),
            Synthetic.row(2, vup: "vup-a", updatedAt: "2026-11-26T10:00:00Z"),
            Synthetic.row(3, vup: "vup-c"),
            Synthetic.row(5, vup: "vup-e"),  // added
            Synthetic.row(6, vup: "vup-g"),
            Synthetic.row(7),  // added, unresolved
        ]
        for step in [1, 4096] {
            let (changes, error, diff) = try await diff(previous, current, step: step)
            XCTAssertNil(error)
            XCTAssertEqual(diff.unchanged, 1)
            XCTAssertEqual(diff.previousRejected, 0)
            guard changes.count == 6 else { return XCTFail("\(changes)") }
            guard case .changed(let old2, let new2) = changes[0] else { return XCTFail("\(changes[0])") }
            XCTAssertEqual(old2.updatedAt, "2026-11-25T10:00:00Z")
            XCTAssertEqual(new2.updatedAt, "2026-11-26T10:00:00Z")
            guard case .moved(let old3, let new3) = changes[1] else { return XCTFail("\(changes[1])") }
            XCTAssertEqual([old3.vupID, new3.vupID], ["UNRESOLVED#00", "vup-c"])
            guard case .removed(let row4) = changes[2] else { return XCTFail("\(changes[2])") }
            XCTAssertEqual(row4.hem, Synthetic.hem(4))
            guard case .added(let row5) = changes[3] else { return XCTFail("\(changes[3])") }
            XCTAssertEqual(row5.vupID, "vup-e")
            guard case .moved(let old6, let new6) = changes[4] else { return XCTFail("\(changes[4])") }
            XCTAssertEqual([old6.vupID, new6.vupID], ["vup-f", "vup-g"])
            guard case .added(let row7) = changes[5] else { return XCTFail("\(changes[5])") }
            XCTAssertEqual(row7.vupID, "UNRESOLVED#00")
        }
    }

    func testIdenticalExports_giveNoChanges() async throws {
        let rows = (0..<1000).map { Synthetic.row($0, vup: "vup-\($0 % 7)") }
        let (changes, error, diff) = try await diff(rows, rows)
        XCTAssertNil(error)
        XCTAssertTrue(changes.isEmpty)
        XCTAssertEqual(diff.unchanged, 1000)
    }

    func testEmptyPreviousOrCurrent_addsOrRemovesEverything() async throws {
        let rows = (0..<10).map { Synthetic.row($0) }
        var result = try await diff([], rows)
        XCTAssertEqual(result.changes.filter { if case .added = $0 { true } else { false } }.count, 10)
        result = try await diff(rows, [])
        XCTAssertEqual(result.changes.filter { if case .removed = $0 { true } else { false } }.count, 10)
    }

    func testRejectedCurrentRow_withValidHem_suppressesTheRemoval() async throws {
        let previous = [Synthetic.row(1), Synthetic.row(2), Synthetic.row(3)]
        let current = [
            Synthetic.row(1),
            "\(Synthetic.hem(2)),vup-1,x@example.invalid,,,,not-a-time",  // rejected, hem valid
            "zz-not-a-hem,vup-1,y@example.invalid,,,,2026-11-25T10:00:00Z",  // rejected, no hem
        ]
        let (changes, error, diff) = try await diff(previous, current)
        XCTAssertNil(error)
        XCTAssertEqual(diff.unchanged, 1)
        // hem 2: only its rejection, never a removal; hem 3: removed.
        XCTAssertEqual(changes.count, 3, "\(changes)")
        XCTAssertTrue(
            changes.contains(
                .rejected(
                    RowRejection(
                        source: directory.file("day2.csv").path, line: 3, reason: .invalidTimestamp,
                        hem: Synthetic.hem(2),
                        field: "updated_at"))))
        XCTAssertTrue(changes.contains { if case .rejected(let r) = $0 { r.reason == .invalidHem } else { false } })
        XCTAssertFalse(changes.contains { if case .removed(let r) = $0 { r.hem == Synthetic.hem(2) } else { false } })
        XCTAssertTrue(changes.contains { if case .removed(let r) = $0 { r.hem == Synthetic.hem(3) } else { false } })
        for change in changes { assertNoEmail(String(describing: change)) }
    }

    func testRejectionsOfThePreviousExport_areCountedNotEmitted() async throws {
        let previous = [Synthetic.row(1), "\(Synthetic.hem(2)),UNRESOLVED#99,,,,,2026-11-25T10:00:00Z", "bad,,,,,,"]
        let current = [Synthetic.row(1), Synthetic.row(2)]
        let (changes, error, diff) = try await diff(previous, current)
        XCTAssertNil(error)
        XCTAssertEqual(diff.previousRejected, 2)
        guard changes.count == 1, case .added(let row) = changes[0] else { return XCTFail("\(changes)") }
        XCTAssertEqual(row.hem, Synthetic.hem(2))
    }

    func testDuplicateHemInCurrent_isRejected_keepingTheLast() async throws {
        let current = [Synthetic.row(1, vup: "vup-a"), Synthetic.row(1, vup: "vup-b"), Synthetic.row(2)]
        let (changes, error, _) = try await diff([], current)
        XCTAssertNil(error)
        XCTAssertEqual(changes.count, 3)
        guard case .rejected(let duplicate) = changes[0] else { return XCTFail("\(changes)") }
        XCTAssertEqual(duplicate.reason, .duplicateHem)
        XCTAssertEqual(duplicate.line, 2)
        guard case .added(let last) = changes[1] else { return XCTFail("\(changes)") }
        XCTAssertEqual(last.vupID, "vup-b")
    }

    func testDuplicateHemInPrevious_isCounted_keepingTheLast() async throws {
        let previous = [Synthetic.row(1, vup: "vup-a"), Synthetic.row(1, vup: "vup-b"), Synthetic.row(2)]
        let current = [Synthetic.row(1, vup: "vup-b"), Synthetic.row(2)]
        let (changes, error, diff) = try await diff(previous, current)
        XCTAssertNil(error)
        XCTAssertTrue(changes.isEmpty, "\(changes)")
        XCTAssertEqual(diff.unchanged, 2)
        XCTAssertEqual(diff.previousRejected, 1)
    }

    func testRejectionWithoutHem_betweenSortedRows_doesNotBreakTheOrderCheck() async throws {
        let previous = [Synthetic.row(1), Synthetic.row(3)]
        let current = [Synthetic.row(1), "bad-hem,v,,,,,2026-11-25T10:00:00Z", Synthetic.row(2), Synthetic.row(3)]
        let (changes, error, _) = try await diff(previous, current)
        XCTAssertNil(error)
        XCTAssertEqual(changes.count, 2, "\(changes)")
        XCTAssertTrue(changes.contains { if case .added(let row) = $0 { row.hem == Synthetic.hem(2) } else { false } })
    }

    func testOutOfOrderCurrent_throwsNamingSourceAndLine_beforeAnyLaterChange() async throws {
        let previous = (0..<10).map { Synthetic.row($0) }
        let current =
            (0..<3).map { Synthetic.row($0, vup: "vup-new") } + [
                Synthetic.row(6, vup: "vup-new"),
                Synthetic.row(4, vup: "vup-new"),
            ] + (7..<10).map { Synthetic.row($0, vup: "vup-new") }
        for step in [1, 4096] {
            let (changes, error, _) = try await diff(previous, current, step: step)
            let failure = try XCTUnwrap(error)
            XCTAssertTrue(failure.source.hasSuffix("day2.csv"))
            XCTAssertEqual(failure.line, 6)
            XCTAssertTrue(failure.description.contains("day2.csv:6"), failure.description)
            XCTAssertTrue(failure.description.contains("order"), failure.description)
            // Nothing at or past the out-of-order row (hem 4, then 7...) was handed out.
            let seen = Set(changes.compactMap(hems))
            for late in [4, 6, 7, 8, 9] { XCTAssertFalse(seen.contains(Synthetic.hem(late)), "step \(step): \(late)") }
        }
    }

    func testOutOfOrderPrevious_throwsNamingSourceAndLine() async throws {
        let previous = [Synthetic.row(1), Synthetic.row(3), Synthetic.row(2), Synthetic.row(4)]
        let current = (1..<5).map { Synthetic.row($0, vup: "vup-x") }
        for step in [1, 4096] {
            let (changes, error, _) = try await diff(previous, current, step: step)
            let failure = try XCTUnwrap(error)
            XCTAssertTrue(failure.source.hasSuffix("day1.csv"))
            XCTAssertEqual(failure.line, 4)
            let seen = Set(changes.compactMap(hems))
            for late in [2, 3, 4] { XCTAssertFalse(seen.contains(Synthetic.hem(late)), "step \(step): \(late)") }
        }
    }

    /// The table as the previous input: every item of a hem counts, extras are removed.
    func testTableAsPrevious_keepsTheMatchingItem_movesTheNewest_removesTheRest() async throws {
        func item(_ index: Int, _ vup: String, updated: String = "2026-11-25T10:00:00Z") -> ExportRow {
            ExportRow(
                hem: Synthetic.hem(index), vupID: vup, email: Synthetic.email(index), domain: "example.invalid",
                source: "crm", lastVerified: "2026-11-24T08:00:00Z", updatedAt: updated, line: 0)
        }
        let sorter = ExternalSorter(memoryLimit: 64 * 1024)
        let items = [
            item(1, "vup-a"), item(1, "UNRESOLVED#00"),  // stale sentinel beside the row's item
            item(2, "vup-old", updated: "2026-11-20T00:00:00Z"), item(2, "vup-newer", updated: "2026-11-24T00:00:00Z"),
            item(3, "vup-c"),  // gone from the export
            item(4, "vup-d"),
        ]
        for row in items.reversed() { try sorter.add(.row(row), part: 0) }
        let table = HemOrderedInput.sorted(try sorter.finish(), name: "table")
        let current = HemOrderedInput.merging([
            try await ExportReader(
                location: try write(
                    "day.csv",
                    [Synthetic.row(1, vup: "vup-a"), Synthetic.row(2, vup: "vup-b"), Synthetic.row(4, vup: "vup-d")]),
                client: nil)
        ])
        let diff = ExportDiff(previous: table, current: current, previousIsTable: true)
        var changes: [ExportChange] = []
        while let batch = try await diff.nextBatch() { changes += batch }
        var removed: [String] = []
        var moved: [(String, String)] = []
        for change in changes {
            switch change {
            case .removed(let row): removed.append(row.vupID)
            case .moved(let old, let new): moved.append((old.vupID, new.vupID))
            default: XCTFail("unexpected \(change)")
            }
        }
        XCTAssertEqual(removed.sorted(), ["UNRESOLVED#00", "vup-c", "vup-old"])
        XCTAssertEqual(moved.map(\.0), ["vup-newer"], "the most recently updated item moves")
        XCTAssertEqual(diff.repaired, 2)
        XCTAssertEqual(diff.unchanged, 2)
    }

    /// The table's items are compared with the export's rows as the sort's bytes: an equal item
    /// is unchanged, and a difference in any one attribute (a value, nil against a value, nil
    /// against "") is a change or a move. Unicode-equal values whose bytes differ are equal, as
    /// the rows' Strings say; values with quotes, backslashes, commas and newlines compare too.
    func testTableAsPrevious_comparedAsBytes_eachAttributeCounts() async throws {
        func row(_ index: Int, _ edit: (inout ExportRow) -> Void = { _ in }) -> ExportRow {
            var row = ExportRow(
                hem: Synthetic.hem(index), vupID: "vup-\(index)", email: Synthetic.email(index),
                domain: "example.invalid", source: "crm", lastVerified: "2026-11-24T08:00:00Z",
                updatedAt: "2026-11-25T10:00:00Z", line: index + 2)
            edit(&row)
            return row
        }
        func withoutOptionals(_ row: inout ExportRow) {
            row.email = nil
            row.domain = nil
            row.source = nil
            row.lastVerified = nil
        }
        // (table item, export row, expected): one hem each.
        let cases: [(table: ExportRow, export: ExportRow, expected: String)] = [
            (row(0), row(0), "unchanged"),
            (row(1) { $0.vupID = "vup-other" }, row(1), "moved"),
            (row(2) { $0.vupID = "UNRESOLVED#00" }, row(2), "moved"),
            (row(3) { $0.email = "someone@example.invalid" }, row(3), "changed"),
            (row(4) { $0.domain = "other.invalid" }, row(4), "changed"),
            (row(5) { $0.source = "crm2" }, row(5), "changed"),
            (row(6) { $0.lastVerified = "2026-11-24T08:00:01Z" }, row(6), "changed"),
            (row(7) { $0.updatedAt = "2026-11-25T10:00:01Z" }, row(7), "changed"),
            (row(8) { $0.email = nil }, row(8), "changed"),
            (row(9), row(9) { $0.domain = nil }, "changed"),
            (row(10) { $0.source = "" }, row(10) { $0.source = nil }, "changed"),
            (row(11) { $0.lastVerified = nil }, row(11) { $0.lastVerified = nil }, "unchanged"),
            (row(12, withoutOptionals), row(12, withoutOptionals), "unchanged"),
            (row(13) { $0.source = "caf\u{E9}" }, row(13) { $0.source = "cafe\u{301}" }, "unchanged"),
            (row(14) { $0.source = "a \"b\", \\c\nd" }, row(14) { $0.source = "a \"b\", \\c\nd" }, "unchanged"),
            (row(15) { $0.source = "a \"b\", \\c\nd" }, row(15) { $0.source = "a \"b\", \\c\nD" }, "changed"),
            (row(16) { $0.updatedAt = "" }, row(16), "changed"),
            (row(17) { $0.email = Synthetic.email(170) }, row(17) { $0.email = Synthetic.email(171) }, "changed"),
            // Only the record's first or last byte differs.
            (row(18) { $0.updatedAt = "2026-11-25T10:00:00X" }, row(18), "changed"),
            (row(19) { $0.vupID = "Vup-19" }, row(19), "moved"),
        ]
        var records = SortRecordBuffer()
        for c in cases { records.append(.row(c.table), part: 0) }
        let tableSorter = ExternalSorter(memoryLimit: 64 * 1024)
        try tableSorter.add(records)
        let exportSorter = ExternalSorter(memoryLimit: 64 * 1024)
        for c in cases { try exportSorter.add(.row(c.export), part: 0) }
        let diff = ExportDiff(
            previous: .sorted(try tableSorter.finish(), name: "table"),
            current: .sorted(try exportSorter.finish(), name: "day.csv"), previousIsTable: true)
        let byHem = Dictionary(uniqueKeysWithValues: cases.map { ($0.export.hem, $0) })
        var found: [String: String] = [:]
        while let batch = try await diff.nextBatch() {
            for change in batch {
                switch change {
                case .changed(let old, let new):
                    XCTAssertEqual(old, byHem[new.hem]?.table, "the item as the table holds it")
                    XCTAssertEqual(new, byHem[new.hem]?.export)
                    found[new.hem] = "changed"
                case .moved(let old, let new):
                    XCTAssertEqual(old, byHem[new.hem]?.table, "the item as the table holds it")
                    XCTAssertEqual(new, byHem[new.hem]?.export)
                    found[new.hem] = "moved"
                default: XCTFail("unexpected \(change)")
                }
            }
        }
        for c in cases {
            XCTAssertEqual(found[c.export.hem] ?? "unchanged", c.expected, "hem \(c.export.hem)")
        }
        XCTAssertEqual(diff.unchanged, cases.filter { $0.expected == "unchanged" }.count)
        XCTAssertEqual(diff.repaired, 0)

        // The same item against a decoded row (an export merged as it streams, --assume-sorted):
        // equal exactly when the six strings are equal as UTF-8.
        var scratch: [UInt8] = []
        for c in cases {
            let sorter = ExternalSorter(memoryLimit: 64 * 1024)
            try sorter.add(.row(c.table), part: 0)
            let equal = try sorter.finish().next { _, payload in
                ExternalSorter.rowPayload(payload, hasStringsOf: c.export, scratch: &scratch)
            }
            let fields: (ExportRow) -> [[UInt8]?] = { row in
                [row.vupID, row.email, row.domain, row.source, row.lastVerified, row.updatedAt].map {
                    $0.map { Array($0.utf8) }
                }
            }
            XCTAssertEqual(equal, fields(c.table) == fields(c.export), "hem \(c.export.hem)")
        }
    }

    /// Against the table, an export out of its sort (compared as bytes) gives exactly the changes
    /// the same export merged as it streams (decoded rows) gives: rejections with and without a
    /// valid hem, a rejected row that keeps its hem's item, a duplicate hem, adds, changes, moves
    /// and removals, in the same order (bar the hemless rejections, which a sort puts first).
    func testTableAsPrevious_sortedExport_givesTheChangesOfTheStreamedExport() async throws {
        func item(_ index: Int, _ vup: String, updated: String = "2026-11-25T10:00:00Z") -> ExportRow {
            ExportRow(
                hem: Synthetic.hem(index), vupID: vup, email: Synthetic.email(index), domain: "example.invalid",
                source: "crm", lastVerified: "2026-11-24T08:00:00Z", updatedAt: updated, line: 0)
        }
        let items = [
            item(1, "vup-1"), item(2, "vup-2"), item(2, "UNRESOLVED#00"), item(3, "vup-3"), item(4, "vup-4"),
            item(5, "vup-5", updated: "2026-11-20T00:00:00Z"), item(7, "vup-7"),
        ]
        let export = try write(
            "day.csv",
            [
                Synthetic.row(1, vup: "vup-1"),  // unchanged
                Synthetic.row(2, vup: "vup-2"),  // unchanged, its stale sentinel removed
                "not-a-hem,vup-x,\(Synthetic.email(90)),example.invalid,2026-11-24T08:00:00Z,crm,2026-11-25T10:00:00Z",
                Synthetic.row(3, vup: "vup-3", updatedAt: "yesterday"),  // rejected: vup-3 stays
                Synthetic.row(4, vup: "vup-moved"),  // moved
                Synthetic.row(5, vup: "vup-5"),  // changed (updated_at)
                Synthetic.row(6, vup: "vup-6"),  // added, twice: the last row wins
                Synthetic.row(6, vup: "vup-6b"),
            ])
        func changes(_ current: HemOrderedInput) async throws -> ([ExportChange], Int, Int) {
            let sorter = ExternalSorter(memoryLimit: 64 * 1024)
            for row in items { try sorter.add(.row(row), part: 0) }
            let diff = ExportDiff(
                previous: .sorted(try sorter.finish(), name: "table"), current: current, previousIsTable: true)
            var changes: [ExportChange] = []
            while let batch = try await diff.nextBatch(maxChanges: 3) { changes += batch }
            return (changes, diff.unchanged, diff.repaired)
        }
        let asBytes = try await changes(
            try await .sorting([export], open: { try await ExportReader(location: $0, client: nil) }, directory: nil))
        let decoded = try await changes(.merging([try await ExportReader(location: export, client: nil)]))
        // Rejections without a valid hem have no place in hem order: a sort puts them first.
        func hemless(_ change: ExportChange) -> Bool {
            if case .rejected(let rejection) = change { return rejection.hem == nil }
            return false
        }
        XCTAssertEqual(asBytes.0.filter { !hemless($0) }, decoded.0.filter { !hemless($0) })
        XCTAssertEqual(asBytes.0.filter(hemless), decoded.0.filter(hemless))
        XCTAssertEqual(asBytes.1, decoded.1)
        XCTAssertEqual(asBytes.2, decoded.2)
        XCTAssertEqual(asBytes.1, 2, "hems 1 and 2")
        XCTAssertEqual(asBytes.2, 1, "hem 2 had two items")
        var kinds: [String] = []
        for change in asBytes.0 {
            switch change {
            case .added(let row): kinds.append("added \(row.vupID)")
            case .changed(_, let new): kinds.append("changed \(new.vupID)")
            case .moved(let old, let new): kinds.append("moved \(old.vupID) \(new.vupID)")
            case .removed(let old): kinds.append("removed \(old.vupID)")
            case .rejected(let rejection): kinds.append("rejected \(rejection.reason.rawValue)")
            }
        }
        XCTAssertEqual(
            kinds,
            [
                "rejected invalid_hem", "removed UNRESOLVED#00", "rejected invalid_timestamp", "moved vup-4 vup-moved",
                "changed vup-5", "rejected duplicate_hem", "added vup-6b", "removed vup-7",
            ])
    }

    /// Parts sorted within themselves, hem ranges interleaved, merged as they stream; the last row
    /// of a hem found in two parts wins (the later part), the earlier one is a duplicate_hem.
    func testMergingParts_interleavedRanges_lastPartWinsADuplicate() async throws {
        let a = try write("a.csv", [0, 2, 4, 6].map { Synthetic.row($0) })
        let b = try write("b.csv", [1, 3, 4, 7].map { Synthetic.row($0, vup: $0 == 4 ? "vup-b" : "") })
        let current = HemOrderedInput.merging([
            try await ExportReader(location: a, client: nil), try await ExportReader(location: b, client: nil),
        ])
        let previous = HemOrderedInput.merging([
            try await ExportReader(location: try write("empty.csv", []), client: nil)
        ])
        let diff = ExportDiff(previous: previous, current: current)
        var changes: [ExportChange] = []
        while let batch = try await diff.nextBatch() { changes += batch }
        let added = changes.compactMap { if case .added(let row) = $0 { row } else { nil } }
        XCTAssertEqual(added.map(\.hem), [0, 1, 2, 3, 4, 6, 7].map { Synthetic.hem($0) })
        XCTAssertEqual(added.first { $0.hem == Synthetic.hem(4) }?.vupID, "vup-b")
        let rejected = changes.compactMap { if case .rejected(let r) = $0 { r } else { nil } }
        XCTAssertEqual(rejected.map(\.reason), [.duplicateHem])
        XCTAssertEqual(rejected.first?.line, 4)
        XCTAssertTrue(rejected.first?.source.hasSuffix("a.csv") == true)
    }
}
