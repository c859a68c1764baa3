import Foundation
import JSON

/// The publish hot path: one pass over an NDJSON line's bytes that checks the change-event
/// contract while reading it (no tape, no schema tree) and finds the fields a record is built
/// from. `EventScanner.scan` runs it first. Like the scanner it answers only "certainly valid"
/// (the fields) or nil, and nil sends the line on to the scanner's tape and then the canonical
/// validator: whitespace, escapes, control or non-ASCII bytes, numbers, repeated members, any
/// value in an unexpected place are nil, so the verdict stays exactly as strict as the schema.
///
/// Which members each object has and how the objects nest is written here; every leaf rule
/// (`type`, `const`, `enum`, `minLength`, `pattern`, `format`), each object's `required` and each
/// event type's `vup_id_*` rules are read from the schema. `init` returns nil when the schema's
/// shape is not the one written here: a schema change this code does not follow turns the fused
/// path off (the scanner's generic path still runs) instead of making it wrong.
public final class EventContractChecker: @unchecked Sendable {
    // @unchecked: built in init, then only read; the leaves point into `arena`, which lives as
    // long as the checker. Plain pointers keep the hot path free of retains and releases.
    // Member names as this code knows them; `init` checks the schema lists exactly these.
    static let envelopeNames = [
        "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data",
    ]
    /// `data` of a hem event (0..<7), then of a `stream.gap` (7..<11): one table, because `data`
    /// may come before `type` on the line.
    static let dataNames = [
        "hem", "vup_id_before", "vup_id_after", "changes", "updated_at", "partner_missing", "positions",
        "stream_arn", "shard_id", "last_sequence_number_before", "first_sequence_number_after",
    ]
    static let changeNames = ["field", "op", "class", "before", "after", "before_hash", "after_hash"]
    static let positionNames = ["stream_arn", "shard_id", "sequence_number", "event_name"]
    enum Envelope {
        static let specversion = 0, id = 1, type = 3, subject = 4, data = 8
        static let all: UInt32 = (1 << 9) - 1
    }
    enum DataMember {
        static let hem = 0, before = 1, after = 2, changes = 3, positions = 6, gapFirst = 7
        static let hemMask: UInt32 = (1 << 7) - 1
    }

    let envelopeKeys: KeyTable
    let dataKeys: KeyTable
    let changeKeys: KeyTable
    let positionKeys: KeyTable
    /// Leaf rules by member index (the envelope's `data` slot, and `data`'s arrays, are unused).
    let envelope: UnsafeBufferPointer<Leaf>
    let data: UnsafeBufferPointer<Leaf>
    let change: UnsafeBufferPointer<Leaf>
    let position: UnsafeBufferPointer<Leaf>
    /// `subject` of a hem event (the `else` branch's `$ref`).
    let subjectOfHem: Leaf
    let hemRequired: UInt32
    let gapRequired: UInt32
    let changeRequired: UInt32
    let positionRequired: UInt32
    let changesMinItems: Int
    let positionsMinItems: Int
    /// The index of `stream.gap` in the `type` enum.
    let gapType: Int
    /// Per `type` enum index: the `then` rules on `data.vup_id_before` / `vup_id_after`, and
    /// members it requires beyond `data`'s own.
    let typeRules: UnsafeBufferPointer<TypeRule>

    /// Owns what the leaves point to.
    let arena: Arena

    struct TypeRule {
        var before: Leaf?
        var after: Leaf?
        var required: UInt32 = 0
    }

    /// Nil when `schema` is not shaped as this checker expects (see the type's comment).
    public init?(_ schema: JSON) {
        let arena = Arena()
        let s = SchemaReader(root: schema, arena: arena)
        guard let top = s.object(schema, allowing: ["$schema", "$id", "title", "allOf", "$defs"]),
            Set(top.requiredNames) == Set(Self.envelopeNames), top.names == Set(Self.envelopeNames)
        else { return nil }
        var envelope: [Leaf] = []
        for name in Self.envelopeNames {
            if name == "data" {
                guard top.properties["data"] == ["type": "object"] else { return nil }
                envelope.append(Leaf())
            } else {
                guard let leaf = s.leaf(top.properties[name]!) else { return nil }
                envelope.append(leaf)
            }
        }
        guard let types = envelope[Envelope.type].enumValues?.map(Array.init), !envelope[Envelope.type].null else {
            return nil
        }

        // allOf[0]: `stream.gap` takes the gap's data, every other type a hem subject and data.
        guard let allOf = schema["allOf"]?.arrayValue, let first = allOf.first,
            first.objectValue.map({ Set($0.keys) == ["if", "then", "else"] }) == true,
            case .object(let gapIf)? = first["if"], Set(gapIf.keys) == ["required", "properties"],
            gapIf["required"] == ["type"], let gapName = gapIf["properties"]?["type"]?["const"]?.stringValue,
            gapIf["properties"]?.objectValue?.count == 1, gapIf["properties"]?["type"]?.objectValue?.count == 1,
            let gapType = types.firstIndex(of: Array(gapName.utf8)),
            first["then"]?.objectValue?.count == 1, first["then"]?["properties"]?.objectValue?.count == 1,
            let gapRef = first["then"]?["properties"]?["data"],
            first["else"]?.objectValue?.count == 1, first["else"]?["properties"]?.objectValue?.count == 2,
            let subjectRef = first["else"]?["properties"]?["subject"], let subjectOfHem = s.leaf(subjectRef),
            let dataRef = first["else"]?["properties"]?["data"],
            let gap = s.object(gapRef), let hem = s.object(dataRef)
        else { return nil }

        // `data` of a hem event: leaves, and two arrays of objects of leaves.
        let hemNames = Array(Self.dataNames[0..<DataMember.gapFirst])
        let gapNames = Array(Self.dataNames[DataMember.gapFirst...])
        guard hem.names == Set(hemNames), gap.names == Set(gapNames) else { return nil }
        var data: [Leaf] = []
        for name in hemNames {
            if name == "changes" || name == "positions" {
                data.append(Leaf())
            } else {
                guard let leaf = s.leaf(hem.properties[name]!) else { return nil }
                data.append(leaf)
            }
        }
        for name in gapNames {
            guard let leaf = s.leaf(gap.properties[name]!) else { return nil }
            data.append(leaf)
        }
        guard let changes = s.array(hem.properties["changes"]!), let positions = s.array(hem.properties["positions"]!),
            let change = s.object(changes.items), change.names == Set(Self.changeNames),
            let position = s.object(positions.items), position.names == Set(Self.positionNames)
        else { return nil }
        guard let changeLeaves = s.leaves(change, Self.changeNames),
            let positionLeaves = s.leaves(position, Self.positionNames)
        else { return nil }

        // allOf[1...]: `if type is T then data.vup_id_before/after must ...`.
        var typeRules = [TypeRule](repeating: TypeRule(), count: types.count)
        var ruled = Set<Int>()
        for rule in allOf.dropFirst() {
            guard rule.objectValue.map({ Set($0.keys) == ["if", "then"] }) == true,
                rule["if"]?.objectValue?.count == 1, rule["if"]?["properties"]?.objectValue?.count == 1,
                rule["if"]?["properties"]?["type"]?.objectValue?.count == 1,
                let name = rule["if"]?["properties"]?["type"]?["const"]?.stringValue,
                let t = types.firstIndex(of: Array(name.utf8)), t != gapType, ruled.insert(t).inserted,
                rule["then"]?.objectValue?.count == 1, rule["then"]?["properties"]?.objectValue?.count == 1,
                case .object(let then)? = rule["then"]?["properties"]?["data"],
                Set(then.keys).isSubset(of: ["required", "properties"])
            else { return nil }
            for r in then["required"]?.arrayValue ?? [] {
                guard let r = r.stringValue, let i = hemNames.firstIndex(of: r) else { return nil }
                typeRules[t].required |= 1 << i
            }
            for (member, sub) in then["properties"]?.objectValue ?? [:] {
                guard let leaf = s.leaf(sub) else { return nil }
                switch member {
                case "vup_id_before": typeRules[t].before = leaf
                case "vup_id_after": typeRules[t].after = leaf
                default: return nil
                }
            }
        }

        self.arena = arena
        envelopeKeys = KeyTable(Self.envelopeNames, arena)
        dataKeys = KeyTable(
            Self.dataNames, arena, groups: [0..<DataMember.gapFirst, DataMember.gapFirst..<Self.dataNames.count])
        changeKeys = KeyTable(Self.changeNames, arena)
        positionKeys = KeyTable(Self.positionNames, arena)
        self.envelope = arena.buffer(envelope)
        self.data = arena.buffer(data)
        self.change = arena.buffer(changeLeaves)
        self.position = arena.buffer(positionLeaves)
        self.subjectOfHem = subjectOfHem
        hemRequired = Self.mask(hem.requiredNames, hemNames)
        gapRequired = Self.mask(gap.requiredNames, gapNames) << UInt32(DataMember.gapFirst)
        changeRequired = Self.mask(change.requiredNames, Self.changeNames)
        positionRequired = Self.mask(position.requiredNames, Self.positionNames)
        changesMinItems = changes.minItems
        positionsMinItems = positions.minItems
        self.gapType = gapType
        self.typeRules = arena.buffer(typeRules)
    }

    static func mask(_ names: [String], _ table: [String]) -> UInt32 {
        names.reduce(0) { $0 | 1 << UInt32(table.firstIndex(of: $1)!) }
    }

    /// The record fields when `line` is certainly a valid event; nil when not sure.
    public func check(_ line: UnsafeBufferPointer<UInt8>) -> EventScanner.Fields? {
        guard let base = line.baseAddress else { return nil }
        var c = Cursor(base: base, end: line.count)
        var seen: UInt32 = 0
        var typeIndex = -1
        var dataSeen: UInt32 = 0
        var found = Found()
        guard c.take(UInt8(ascii: "{")) else { return nil }
        var expected = envelopeKeys.first
        repeat {
            guard let k = envelopeKeys.index(&c, expected: expected), seen & 1 << k == 0 else { return nil }
            seen |= 1 << k
            expected = envelopeKeys.next[k]
            if k == Envelope.data {
                guard c.take(UInt8(ascii: "{")), dataObject(&c, &dataSeen, &found) else { return nil }
                continue
            }
            // Every other envelope member is a string (elements are used in place, not copied out).
            guard c.take(UInt8(ascii: "\"")), let r = c.stringBody(), envelope[k].check(line, .string, r) else {
                return nil
            }
            switch k {
            case Envelope.type:
                guard let t = envelope[k].enumIndex(base, r) else { return nil }
                typeIndex = t
                found.type = r
            case Envelope.subject: found.subject = r
            case Envelope.specversion: found.specversion = r
            case Envelope.id: found.id = r
            default: break
            }
        } while c.take(UInt8(ascii: ","))
        guard c.take(UInt8(ascii: "}")), c.i == c.end, seen == Envelope.all else { return nil }

        // The rules that depend on `type`, which may have come after `data` and `subject`.
        if typeIndex == gapType {
            guard dataSeen & DataMember.hemMask == 0, dataSeen & gapRequired == gapRequired,
                typeRules[typeIndex].required == 0
            else { return nil }
            return EventScanner.Fields(
                key: found.subject, id: found.id, type: found.type, specversion: found.specversion)
        }
        let required = hemRequired | typeRules[typeIndex].required
        guard dataSeen & ~DataMember.hemMask == 0, dataSeen & required == required,
            subjectOfHem.check(line, .string, found.subject)
        else { return nil }
        if typeRules[typeIndex].before != nil {
            guard dataSeen & 1 << DataMember.before != 0,
                typeRules[typeIndex].before!.check(line, found.before.kind, found.before.range)
            else { return nil }
        }
        if typeRules[typeIndex].after != nil {
            guard dataSeen & 1 << DataMember.after != 0,
                typeRules[typeIndex].after!.check(line, found.after.kind, found.after.range)
            else { return nil }
        }
        return EventScanner.Fields(key: found.hem, id: found.id, type: found.type, specversion: found.specversion)
    }

    /// What the end of `check` needs from the members read.
    struct Found {
        var subject = 0..<0
        var hem = 0..<0
        var id: Range<Int>?
        var type: Range<Int>?
        var specversion: Range<Int>?
        var before = (kind: ValueKind.null, range: 0..<0)
        var after = (kind: ValueKind.null, range: 0..<0)
    }

    /// `data`'s members, after its `{`, through its `}`.
    private func dataObject(_ c: inout Cursor, _ seen: inout UInt32, _ found: inout Found) -> Bool {
        if c.take(UInt8(ascii: "}")) { return true }
        var expected = dataKeys.first
        repeat {
            guard let k = dataKeys.index(&c, expected: expected), seen & 1 << k == 0 else { return false }
            seen |= 1 << k
            expected = dataKeys.next[k]
            switch k {
            case DataMember.changes:
                guard objects(&c, changesMinItems, changeKeys, change, changeRequired) else { return false }
            case DataMember.positions:
                guard objects(&c, positionsMinItems, positionKeys, position, positionRequired) else { return false }
            default:
                guard let v = c.leafValue(), data[k].check(c.line, v.kind, v.range) else { return false }
                if k == DataMember.hem {
                    found.hem = v.range
                } else if k == DataMember.before {
                    found.before = v
                } else if k == DataMember.after {
                    found.after = v
                }
            }
        } while c.take(UInt8(ascii: ","))
        return c.take(UInt8(ascii: "}"))
    }

    /// An array of at least `minItems` objects whose members are all leaves.
    private func objects(
        _ c: inout Cursor, _ minItems: Int, _ keys: KeyTable, _ leaves: UnsafeBufferPointer<Leaf>, _ required: UInt32
    ) -> Bool {
        guard c.take(UInt8(ascii: "[")) else { return false }
        var n = 0
        if !c.take(UInt8(ascii: "]")) {
            repeat {
                guard c.take(UInt8(ascii: "{")), !c.take(UInt8(ascii: "}")) else { return false }
                var seen: UInt32 = 0
                var expected = keys.first
                repeat {
                    guard let k = keys.index(&c, expected: expected), seen & 1 << k == 0, let v = c.leafValue(),
                        leaves[k].check(c.line, v.kind, v.range)
                    else { return false }
                    seen |= 1 << k
                    expected = keys.next[k]
                } while c.take(UInt8(ascii: ","))
                guard c.take(UInt8(ascii: "}")), seen & required == required else { return false }
                n += 1
            } while c.take(UInt8(ascii: ","))
            guard c.take(UInt8(ascii: "]")) else { return false }
        }
        return n >= minItems
    }
}

enum ValueKind { case string, null, boolean }

/// A rule on a string, null or boolean member, as the schema states it. Plain values and
/// pointers into the checker's arena: copied and read without reference counting.
struct Leaf {
    var string = false
    var null = false
    var boolean = false
    var const: UnsafeBufferPointer<UInt8>?
    var enumValues: UnsafeBufferPointer<UnsafeBufferPointer<UInt8>>?
    var minLength = 0
    var pattern: Unmanaged<PatternBox>?
    var dateTime = false

    /// Whether the value at `r` in `line` (for a string: the bytes between the quotes, printable
    /// ASCII) passes. The whole line, so a pattern can load whole words past a string's end.
    @inline(__always)
    func check(_ line: UnsafeBufferPointer<UInt8>, _ kind: ValueKind, _ r: Range<Int>) -> Bool {
        switch kind {
        case .null: return null
        case .boolean: return boolean
        case .string:
            let base = line.baseAddress!
            guard string, r.count >= minLength else { return false }
            if let const {
                guard const.count == r.count, equalBytes(base + r.lowerBound, const.baseAddress!, r.count) else {
                    return false
                }
            }
            if enumValues != nil, enumIndex(base, r) == nil { return false }
            // Through a guaranteed reference: read through a pointer, the pattern was copied
            // (three retains and releases) per call.
            if let pattern, !pattern._withUnsafeGuaranteedRef({ $0.pattern.matches(line, r) }) { return false }
            if dateTime, !BytePattern.isDateTime(line, r) { return false }
            return true
        }
    }

    /// The index of the string at `r` in `enumValues`.
    func enumIndex(_ base: UnsafePointer<UInt8>, _ r: Range<Int>) -> Int? {
        guard let enumValues else { return nil }
        for i in 0..<enumValues.count {
            let v = enumValues[i]
            if v.count == r.count, equalBytes(base + r.lowerBound, v.baseAddress!, v.count) { return i }
        }
        return nil
    }
}

/// Memory for the leaves' constants and patterns, freed with the checker.
final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []
    private var patterns: [PatternBox] = []

    func bytes(_ b: [UInt8]) -> UnsafeBufferPointer<UInt8> {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(b.count, 1))
        p.initialize(from: b, count: b.count)
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafeBufferPointer(start: p, count: b.count)
    }

    func list(_ items: [[UInt8]]) -> UnsafeBufferPointer<UnsafeBufferPointer<UInt8>> {
        let p = UnsafeMutablePointer<UnsafeBufferPointer<UInt8>>.allocate(capacity: max(items.count, 1))
        p.initialize(from: items.map(bytes), count: items.count)
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafeBufferPointer(start: p, count: items.count)
    }

    /// `items` (of a type without references: leaves, numbers) in memory of their own.
    func buffer<T: BitwiseCopyable>(_ items: [T]) -> UnsafeBufferPointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(items.count, 1))
        p.initialize(from: items, count: items.count)
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafeBufferPointer(start: p, count: items.count)
    }

    /// Kept alive here; leaves hold it unretained.
    func pattern(_ pattern: BytePattern) -> Unmanaged<PatternBox> {
        let box = PatternBox(pattern)
        patterns.append(box)
        return Unmanaged.passUnretained(box)
    }

    deinit {
        for b in blocks { b.deallocate() }
    }
}

/// A pattern behind a reference, so the hot path borrows it instead of copying it.
final class PatternBox {
    let pattern: BytePattern
    init(_ pattern: BytePattern) { self.pattern = pattern }
}

/// Object member names for one object. A member is first expected to be the one that follows
/// the previous in sorted order (as writers usually list them): `"name":` compared in place.
/// Otherwise the name is read and matched by length and first eight bytes (integer compares),
/// then the rest of a longer name.
struct KeyTable {
    let count: Int
    /// `"name":` of each member.
    let quoted: UnsafeBufferPointer<UnsafeBufferPointer<UInt8>>
    let heads: UnsafeBufferPointer<UInt64>
    /// The member expected after each one (-1: none), and first.
    let next: UnsafeBufferPointer<Int>
    let first: Int

    /// `groups`: the index ranges of names that appear together (one object's members each);
    /// the first group's first name is expected first.
    init(_ names: [String], _ arena: Arena, groups: [Range<Int>]? = nil) {
        let bytes = names.map { Array($0.utf8) }
        count = names.count
        quoted = arena.list(bytes.map { [UInt8(ascii: "\"")] + $0 + Array("\":".utf8) })
        heads = arena.buffer(
            bytes.map { n in n.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) } })
        var next = [Int](repeating: -1, count: names.count)
        var first = -1
        for group in groups ?? [names.indices] {
            let sorted = group.sorted { bytes[$0].lexicographicallyPrecedes(bytes[$1]) }
            for (a, b) in zip(sorted, sorted.dropFirst()) { next[a] = b }
            if first < 0 { first = sorted.first ?? -1 }
        }
        self.next = arena.buffer(next)
        self.first = first
    }

    /// Reads `"name":` at the cursor; the name's index, or nil (not a name of this table, or not
    /// plain). `expected`: the index to try first.
    @inline(__always)
    func index(_ c: inout Cursor, expected: Int) -> Int? {
        if expected >= 0 {
            let q = quoted[expected]
            if c.i + q.count <= c.end, equalBytes(c.base + c.i, q.baseAddress!, q.count) {
                c.i += q.count
                return expected
            }
        }
        guard c.take(UInt8(ascii: "\"")), let r = c.stringBody(), c.take(UInt8(ascii: ":")) else { return nil }
        let n = r.count
        let head: UInt64
        if r.lowerBound + 8 <= c.end {
            let word = UnsafeRawPointer(c.base + r.lowerBound).loadUnaligned(as: UInt64.self)
            head = n >= 8 ? word : word & ((1 << UInt64(8 * n)) &- 1)
        } else {
            head = (0..<min(n, 8)).reduce(0) { $0 | UInt64(c.base[r.lowerBound + $1]) << (8 * $1) }
        }
        for i in 0..<count where heads[i] == head && quoted[i].count == n + 3 {
            if equalBytes(c.base + r.lowerBound, quoted[i].baseAddress! + 1, n) { return i }
        }
        return nil
    }
}

/// Whether `n` bytes at `a` and `b` are equal, in whole-word loads only: eight bytes at a time
/// and a last word that may overlap the one before, or two overlapping four-byte words, or for
/// under four bytes the first, middle and last byte (short names and constants; a call to
/// `memcmp`, or a byte loop for the tail, cost more than the compare).
@inline(__always)
func equalBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    let ra = UnsafeRawPointer(a)
    let rb = UnsafeRawPointer(b)
    if n >= 8 {
        var k = 0
        while k + 8 < n {
            let x = ra.loadUnaligned(fromByteOffset: k, as: UInt64.self)
            if x != rb.loadUnaligned(fromByteOffset: k, as: UInt64.self) { return false }
            k += 8
        }
        return ra.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            == rb.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
    }
    if n >= 4 {
        return ra.loadUnaligned(as: UInt32.self) == rb.loadUnaligned(as: UInt32.self)
            && ra.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
                == rb.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
    }
    if n == 0 { return true }
    return a[0] == b[0] && a[n >> 1] == b[n >> 1] && a[n - 1] == b[n - 1]
}

/// A position in a line; every step fails (false/nil) rather than skip what it does not expect.
struct Cursor {
    let base: UnsafePointer<UInt8>
    let end: Int
    var i = 0

    init(base: UnsafePointer<UInt8>, end: Int) {
        self.base = base
        self.end = end
    }

    /// The whole line.
    var line: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: end) }

    /// Consumes `byte` when it is next.
    @inline(__always)
    mutating func take(_ byte: UInt8) -> Bool {
        guard i < end, base[i] == byte else { return false }
        i += 1
        return true
    }

    /// After an opening quote: the string's bytes, through its closing quote (plain strings only).
    @inline(__always)
    mutating func stringBody() -> Range<Int>? {
        let start = i
        guard let close = plainStringEnd(UnsafeBufferPointer(start: base, count: end), from: i) else { return nil }
        i = close + 1
        return start..<close
    }

    /// A string (its bytes), `null`, `true` or `false`; nil for anything else.
    @inline(__always)
    mutating func leafValue() -> (kind: ValueKind, range: Range<Int>)? {
        guard i < end else { return nil }
        let start = i
        switch base[i] {
        case UInt8(ascii: "\""):
            i += 1
            return stringBody().map { (.string, $0) }
        case UInt8(ascii: "n"): return word("null") ? (.null, start..<i) : nil
        case UInt8(ascii: "t"): return word("true") ? (.boolean, start..<i) : nil
        case UInt8(ascii: "f"): return word("false") ? (.boolean, start..<i) : nil
        default: return nil
        }
    }

    private mutating func word(_ w: StaticString) -> Bool {
        let n = w.utf8CodeUnitCount
        guard i + n <= end, memcmp(base + i, w.utf8Start, n) == 0 else { return false }
        i += n
        return true
    }
}

/// Reads the subset of the schema the checker knows, refusing (nil) any keyword or shape beyond it.
struct SchemaReader {
    let root: JSON
    let arena: Arena
    static let notes: Set<String> = ["description", "title", "$comment"]

    /// `{"$ref": "#/..."}` (and notes) resolved; any other node as it is.
    func resolved(_ node: JSON, depth: Int = 0) -> [String: JSON]? {
        guard depth < 8, case .object(var s) = node else { return nil }
        for n in Self.notes { s[n] = nil }
        guard let ref = s["$ref"] else { return s }
        guard s.count == 1, let path = ref.stringValue else { return nil }
        return ChangeEventSchema.resolve(path, in: root).flatMap { resolved($0, depth: depth + 1) }
    }

    /// A string, null or boolean rule; nil for any other kind of value or keyword.
    func leaf(_ node: JSON) -> Leaf? {
        guard let s = resolved(node),
            Set(s.keys).isSubset(of: ["type", "const", "enum", "minLength", "pattern", "format"])
        else { return nil }
        var l = Leaf()
        if let t = s["type"] {
            let names: [String?] = t.arrayValue?.map(\.stringValue) ?? [t.stringValue]
            for name in names {
                switch name {
                case "string": l.string = true
                case "null": l.null = true
                case "boolean": l.boolean = true
                default: return nil
                }
            }
        } else {
            // No `type`: `const` or `enum` (strings only) must say what is allowed.
            guard s["const"] != nil || s["enum"] != nil else { return nil }
            l.string = true
        }
        if let c = s["const"] {
            guard let v = c.stringValue else { return nil }
            l.const = arena.bytes(Array(v.utf8))
            (l.null, l.boolean) = (false, false)
        }
        if let e = s["enum"] {
            guard let values = e.arrayValue?.map(\.stringValue), !values.isEmpty, !values.contains(nil) else {
                return nil
            }
            l.enumValues = arena.list(values.map { Array($0!.utf8) })
            (l.null, l.boolean) = (false, false)
        }
        if let m = s["minLength"] {
            guard let v = m.intValue, v >= 0 else { return nil }
            l.minLength = v
        }
        if let p = s["pattern"] {
            guard let text = p.stringValue, let compiled = BytePattern(text) else { return nil }
            l.pattern = arena.pattern(compiled)
        }
        if let f = s["format"] {
            guard f == "date-time" else { return nil }
            l.dateTime = true
        }
        return l
    }

    struct Object {
        var properties: [String: JSON]
        var requiredNames: [String]
        var names: Set<String> { Set(properties.keys) }
    }

    /// The leaf rules of `object`'s members, in the order of `names`.
    func leaves(_ object: Object, _ names: [String]) -> [Leaf]? {
        var out: [Leaf] = []
        for name in names {
            guard let node = object.properties[name], let leaf = leaf(node) else { return nil }
            out.append(leaf)
        }
        return out
    }

    /// A closed object (`additionalProperties: false`) whose `required` names are properties.
    func object(_ node: JSON, allowing extra: Set<String> = []) -> Object? {
        guard let s = resolved(node),
            Set(s.keys).isSubset(of: extra.union(["type", "required", "additionalProperties", "properties"])),
            s["type"] == "object", s["additionalProperties"] == false, let properties = s["properties"]?.objectValue
        else { return nil }
        let required = s["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard required.count == (s["required"]?.arrayValue?.count ?? 0), Set(required).isSubset(of: properties.keys)
        else { return nil }
        return Object(properties: properties, requiredNames: required)
    }

    /// An array of objects: its `minItems` and `items`.
    func array(_ node: JSON) -> (minItems: Int, items: JSON)? {
        guard let s = resolved(node), Set(s.keys).isSubset(of: ["type", "items", "minItems"]), s["type"] == "array",
            let items = s["items"]
        else { return nil }
        guard let m = s["minItems"] else { return (0, items) }
        guard let v = m.intValue, v >= 0 else { return nil }
        return (v, items)
    }
}
