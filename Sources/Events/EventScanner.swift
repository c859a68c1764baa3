import Foundation
import JSON

/// The publish fast path: checks one NDJSON line against a `CompiledSchema` straight from its
/// bytes (no JSON tree, no Strings) and finds the fields the record needs. It answers only
/// "certainly valid" (with the fields) or nil, and nil sends the line to the canonical path:
/// anything unusual (escapes, non-ASCII text, duplicate keys, a rule it cannot decide) is nil.
public struct EventScanner {
    let schema: CompiledSchema
    private var tokens: [Token] = []

    public init(schema: CompiledSchema) {
        self.schema = schema
        tokens.reserveCapacity(256)
    }

    /// Byte ranges (into the line) of the values a record is built from.
    public struct Fields: Equatable {
        public var key: Range<Int>
        public var id: Range<Int>?
        public var type: Range<Int>?
        public var specversion: Range<Int>?
    }

    /// The record fields when `line` is certainly a valid event; nil when not sure. The fused
    /// contract check first (one pass, no tape); what it is not sure of, through the tape and the
    /// compiled schema.
    public mutating func scan(_ line: UnsafeBufferPointer<UInt8>) -> Fields? {
        if let fields = schema.contract?.check(line) { return fields }
        return scanTape(line)
    }

    /// `scan` without the fused check: the tape and the compiled schema, for any schema.
    mutating func scanTape(_ line: UnsafeBufferPointer<UInt8>) -> Fields? {
        guard TapeParser.parseObject(line, into: &tokens) else { return nil }
        return tokens.withUnsafeBufferPointer { tokens in
            // The tape borrows the tokens: no array to retain on every rule's call.
            let tape = Tape(bytes: line, tokens: tokens)
            guard schema.root.verdict(tape, 0) == .valid else { return nil }
            guard
                let hem = tape.member(0, "data").flatMap({ tape.member($0, "hem") }) ?? tape.member(0, "subject"),
                tape.tokens[hem].kind == .string
            else { return nil }
            func range(_ name: StaticString) -> Range<Int>? {
                guard let t = tape.member(0, name), tape.tokens[t].kind == .string else { return nil }
                return tape.tokens[t].range
            }
            return Fields(
                key: tape.tokens[hem].range, id: range("id"), type: range("type"), specversion: range("specversion"))
        }
    }
}

/// A key's hash, only ever a prefilter before comparing bytes: the length with the first and
/// last eight bytes (or all of a shorter key), mixed. Byte-at-a-time FNV-1a was a chain of
/// dependent multiplies, most of the parser's time on keys.
@inline(__always)
func keyHash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
    let n = bytes.count
    var x = UInt64(n) &* 0x9E37_79B9_7F4A_7C15
    if n >= 8 {
        let raw = UnsafeRawPointer(bytes.baseAddress!)
        x ^= raw.loadUnaligned(as: UInt64.self)
        x = (x ^ (x >> 31)) &* 0xBF58_476D_1CE4_E5B9
        x ^= raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
    } else {
        for b in bytes { x = x << 8 | UInt64(b) }
    }
    x = (x ^ (x >> 29)) &* 0x94D0_49BB_1331_11EB
    return UInt32(truncatingIfNeeded: x >> 32)
}

enum TokenKind: UInt8 { case null, bool, integer, number, string, object, array }

/// One JSON value on the tape. Strings: the bytes between the quotes. Objects and arrays: `count`
/// members (an object's tokens alternate key, value), `next` is the token after the whole value.
struct Token {
    var kind: TokenKind
    var start: Int32
    var end: Int32
    var count: Int32 = 0
    var next: Int32 = 0
    /// For object keys: `keyHash` of the bytes, so key lookups compare integers first.
    var hash: UInt32 = 0
    var range: Range<Int> { Int(start)..<Int(end) }
}

struct Tape {
    let bytes: UnsafeBufferPointer<UInt8>
    let tokens: UnsafeBufferPointer<Token>

    func equals(_ t: Int, _ literal: [UInt8]) -> Bool {
        let tok = tokens[t]
        guard Int(tok.end - tok.start) == literal.count else { return false }
        return literal.withUnsafeBufferPointer { l in
            memcmp(bytes.baseAddress! + Int(tok.start), l.baseAddress!, l.count) == 0
        }
    }

    func equals(_ t: Int, _ r: Range<Int>) -> Bool {
        let tok = tokens[t]
        guard Int(tok.end - tok.start) == r.count else { return false }
        return memcmp(bytes.baseAddress! + Int(tok.start), bytes.baseAddress! + r.lowerBound, r.count) == 0
    }

    /// The value token of the member whose key has `hash` and `key`, in the object at `object`.
    func member(_ object: Int, hash: UInt32, key: [UInt8]) -> Int? {
        var k = object + 1
        for _ in 0..<tokens[object].count {
            if tokens[k].hash == hash, equals(k, key) { return k + 1 }
            k = Int(tokens[k + 1].next)
        }
        return nil
    }

    func equals(_ t: Int, _ literal: StaticString) -> Bool {
        let tok = tokens[t]
        guard Int(tok.end - tok.start) == literal.utf8CodeUnitCount else { return false }
        return memcmp(bytes.baseAddress! + Int(tok.start), literal.utf8Start, literal.utf8CodeUnitCount) == 0
    }

    /// The value token of member `name` of the object at `object`.
    func member(_ object: Int, _ name: StaticString) -> Int? {
        guard tokens[object].kind == .object else { return nil }
        var t = object + 1
        for _ in 0..<tokens[object].count {
            if equals(t, name) { return t + 1 }
            t = Int(tokens[t + 1].next)
        }
        return nil
    }
}

/// A strict JSON parser onto the tape that gives up (false) on what the fast path leaves to
/// the canonical parser: escapes, control or non-ASCII bytes, nesting deeper than 64.
struct TapeParser {
    let bytes: UnsafeBufferPointer<UInt8>
    /// Where tokens are written, `capacity` of them; `count` written so far.
    let tokens: UnsafeMutablePointer<Token>
    let capacity: Int
    var count = 0
    /// The document has more tokens than `capacity`: parse again with more room.
    var overflowed = false
    var i = 0

    /// Parses `bytes` into `tokens[0...]`, reusing the array as a slab: it keeps the size it
    /// grew to (later elements are stale; the tape is walked from token 0, never by count), and
    /// tokens are written through a pointer, without an append's checks per token. True when
    /// the document is a JSON object.
    static func parseObject(_ bytes: UnsafeBufferPointer<UInt8>, into tokens: inout [Token], reserve: Int = 0) -> Bool {
        // Offsets are kept as Int32.
        guard bytes.count < Int(Int32.max) else { return false }
        var size = max(tokens.count, reserve, 64)
        while true {
            if tokens.count < size {
                tokens.append(contentsOf: repeatElement(Token(kind: .null, start: 0, end: 0), count: size - tokens.count))
            }
            let (parsed, overflowed) = tokens.withUnsafeMutableBufferPointer { slab in
                var parser = TapeParser(bytes: bytes, tokens: slab.baseAddress!, capacity: slab.count)
                let parsed = parser.parseDocument()
                return (parsed && parser.count > 0 && slab[0].kind == .object, parser.overflowed)
            }
            if !overflowed { return parsed }
            size *= 2
        }
    }

    /// Writes the next token; false (and `overflowed`) when there is no room.
    @inline(__always)
    mutating func push(_ token: Token) -> Bool {
        guard count < capacity else {
            overflowed = true
            return false
        }
        tokens[count] = token
        count += 1
        return true
    }

    mutating func parseDocument() -> Bool {
        skipSpace()
        guard value(depth: 0) else { return false }
        skipSpace()
        return i == bytes.count
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    mutating func value(depth: Int) -> Bool {
        guard i < bytes.count, depth < 64 else { return false }
        switch bytes[i] {
        case UInt8(ascii: "{"): return container(object: true, depth: depth)
        case UInt8(ascii: "["): return container(object: false, depth: depth)
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true", .bool)
        case UInt8(ascii: "f"): return literal("false", .bool)
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    mutating func container(object: Bool, depth: Int) -> Bool {
        let index = count
        guard push(Token(kind: object ? .object : .array, start: Int32(truncatingIfNeeded: i), end: 0)) else { return false }
        i += 1
        skipSpace()
        let close = UInt8(ascii: object ? "}" : "]")
        var members: Int32 = 0
        if i < bytes.count, bytes[i] == close {
            i += 1
        } else {
            while true {
                if object {
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), string() else { return false }
                    let key = self.count - 1
                    let h = keyHash(UnsafeBufferPointer(rebasing: bytes[tokens[key].range]))
                    tokens[key].hash = h
                    // A repeated key: which one counts is the canonical parser's business.
                    var other = index + 1
                    while other < key {
                        let o = tokens[other]
                        if o.hash == h, o.end - o.start == tokens[key].end - tokens[key].start,
                            memcmp(
                                bytes.baseAddress! + Int(o.start), bytes.baseAddress! + Int(tokens[key].start),
                                Int(o.end - o.start)) == 0
                        {
                            return false
                        }
                        other = Int(tokens[other + 1].next)
                    }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
                    i += 1
                    skipSpace()
                }
                guard value(depth: depth + 1) else { return false }
                members += 1
                skipSpace()
                guard i < bytes.count else { return false }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    skipSpace()
                } else if bytes[i] == close {
                    i += 1
                    break
                } else {
                    return false
                }
            }
        }
        tokens[index].end = Int32(truncatingIfNeeded: i)
        tokens[index].count = members
        tokens[index].next = Int32(truncatingIfNeeded: self.count)
        return true
    }

    mutating func string() -> Bool {
        i += 1
        let start = i
        guard let close = plainStringEnd(bytes, from: i) else { return false }
        i = close + 1
        return push(
            Token(
                kind: .string, start: Int32(truncatingIfNeeded: start), end: Int32(truncatingIfNeeded: close),
                next: Int32(truncatingIfNeeded: count + 1)))
    }

    mutating func literal(_ text: StaticString, _ kind: TokenKind) -> Bool {
        let n = text.utf8CodeUnitCount
        guard i + n <= bytes.count, memcmp(bytes.baseAddress! + i, text.utf8Start, n) == 0 else { return false }
        defer { i += n }
        return push(
            Token(
                kind: kind, start: Int32(truncatingIfNeeded: i), end: Int32(truncatingIfNeeded: i + n),
                next: Int32(truncatingIfNeeded: count + 1)))
    }

    mutating func number() -> Bool {
        let start = i
        var integer = true
        func digits() -> Bool {
            let s = i
            while i < bytes.count, bytes[i] >= 0x30 && bytes[i] <= 0x39 { i += 1 }
            return i > s
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count else { return false }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { guard digits() else { return false } }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            integer = false
            guard digits() else { return false }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            integer = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() else { return false }
        }
        return push(
            Token(
                kind: integer ? .integer : .number, start: Int32(truncatingIfNeeded: start),
                end: Int32(truncatingIfNeeded: i), next: Int32(truncatingIfNeeded: count + 1)))
    }
}

/// The index of the quote that closes a string whose bytes start at `from`; nil when the string
/// has an escape, a control or non-ASCII byte, or no end (the fast paths leave those to the
/// canonical parser).
@inline(__always)
func plainStringEnd(_ bytes: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
    var i = from
    let base = UnsafeRawPointer(bytes.baseAddress!)
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highs: UInt64 = 0x8080_8080_8080_8080
    // Eight bytes at a time while none is a quote, a backslash, a control or non-ASCII byte.
    while i + 8 <= bytes.count {
        let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        if w & highs != 0 || JSONWriter.mayHoldQuoteBackslashOrControl(w) {
            // Settled in this word, without a byte loop: the first quote's position is exact (a
            // zero byte of w ^ "\"\"..."), and the string is plain when no byte before it is
            // special (the bytes from the quote on replaced by a plain 'a' for the same test).
            let x = w ^ (ones &* 0x22)
            let quotes = (x &- ones) & ~x & highs
            guard quotes != 0 else { return nil }
            let q = quotes.trailingZeroBitCount >> 3
            let before: UInt64 = q == 0 ? 0 : ~0 >> (64 - 8 * UInt64(q))
            let plain = w & before | (ones &* 0x61) & ~before
            if plain & highs != 0 || JSONWriter.mayHoldQuoteBackslashOrControl(plain) { return nil }
            return i + q
        }
        i += 8
    }
    while i < bytes.count {
        let c = bytes[i]
        if c == UInt8(ascii: "\"") { return i }
        if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { return nil }
        i += 1
    }
    return nil
}

/// A `pattern` compiled for printable-ASCII input: top-level alternatives of anchored sequences
/// of byte classes with quantifiers (`^[0-9a-f]{64}$|^[0-9a-f]{32}$`, `^aws:[a-z-]+:.+$`), or
/// the `^(?!PREFIX).+$` shape. Anything else does not compile (nil) and is left to the slow path.
struct BytePattern {
    struct Atom {
        var set: ByteSet
        var min: Int
        var max: Int
        /// Greedy is the only way: the next atom needs a byte this one cannot take (or there is
        /// none), so giving bytes back can never help; the match goes on without backtracking.
        var possessive = false
        /// The set as a few byte ranges, tested eight bytes at a time (nil: too many ranges).
        var ranges: ByteRanges?
        /// A run of single-byte atoms (`aws:dynamodb:`) merged into one: its bytes are
        /// `literals[literal]`, compared at once; `set`, `min` and `max` are then unused.
        var literal: Range<Int>?
    }

    /// At most six ranges of ASCII bytes, tested on eight bytes at once: for each range the
    /// constants that, added to a byte's low seven bits, set its high bit when the byte is at or
    /// above the range's low end, and when it is above its high end. No sum carries into the
    /// next byte (each stays below 0x100), so one 64-bit add tests eight bytes.
    struct ByteRanges {
        static let ones: UInt64 = 0x0101_0101_0101_0101
        static let highs: UInt64 = 0x8080_8080_8080_8080
        var atLeast: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        var above: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        /// More than three ranges: the last three slots are tested too.
        var wide = false

        /// Nil when `set` holds a byte of 0x80 or more, or is more than six ranges.
        init?(_ set: ByteSet) {
            guard set.w2 | set.w3 == 0 else { return nil }
            var lows: [UInt64] = []
            var highs: [UInt64] = []
            var b = 0
            while b < 128 {
                guard set.contains(UInt8(b)) else {
                    b += 1
                    continue
                }
                let lo = b
                while b < 128, set.contains(UInt8(b)) { b += 1 }
                lows.append((0x80 - UInt64(lo)) &* Self.ones)
                highs.append((0x7F - UInt64(b - 1)) &* Self.ones)
            }
            guard !lows.isEmpty, lows.count <= 6 else { return nil }
            wide = lows.count > 3
            // Unused slots repeat the first range (an OR of the same test).
            while lows.count < 6 {
                lows.append(lows[0])
                highs.append(highs[0])
            }
            atLeast = (lows[0], lows[1], lows[2], lows[3], lows[4], lows[5])
            above = (highs[0], highs[1], highs[2], highs[3], highs[4], highs[5])
        }

        /// The high bit of each byte of `w` (little-endian) that is in the set.
        @inline(__always)
        func members(_ w: UInt64) -> UInt64 {
            let low7 = w & ~Self.highs
            var m = (low7 &+ atLeast.0) & ~(low7 &+ above.0)
            m |= (low7 &+ atLeast.1) & ~(low7 &+ above.1)
            m |= (low7 &+ atLeast.2) & ~(low7 &+ above.2)
            if wide {
                m |= (low7 &+ atLeast.3) & ~(low7 &+ above.3)
                m |= (low7 &+ atLeast.4) & ~(low7 &+ above.4)
                m |= (low7 &+ atLeast.5) & ~(low7 &+ above.5)
            }
            // A byte of 0x80 or more is never a member.
            return m & ~w & Self.highs
        }
    }

    /// 256 bits, one per byte value.
    struct ByteSet {
        var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
        init(_ bools: [Bool]) {
            for (b, on) in bools.enumerated() where on {
                let bit = UInt64(1) << UInt64(b & 63)
                switch b >> 6 {
                case 0: w0 |= bit
                case 1: w1 |= bit
                case 2: w2 |= bit
                default: w3 |= bit
                }
            }
        }
        func isDisjoint(with o: ByteSet) -> Bool {
            w0 & o.w0 == 0 && w1 & o.w1 == 0 && w2 & o.w2 == 0 && w3 & o.w3 == 0
        }
        @inline(__always) func contains(_ b: UInt8) -> Bool {
            // Selects without a jump table (a per-byte indirect jump cost more than the test).
            let lo = b < 64 ? w0 : w1
            let hi = b < 192 ? w2 : w3
            return (b < 128 ? lo : hi) & (UInt64(1) << UInt64(b & 63)) != 0
        }
    }
    /// Every alternative's atoms, one after another: alternative `i` is `atoms[starts[i]..<starts[i + 1]]`
    /// (one array, so a match borrows one buffer instead of retaining an array per alternative).
    var atoms: [Atom] = []
    var starts: [Int] = [0]
    /// The bytes of the merged literal runs.
    var literals: [UInt8] = []
    /// Each alternative's possible match lengths, to skip the ones a string cannot match.
    var lengths: [ClosedRange<Int>] = []
    var forbiddenPrefix: [UInt8]?

    init?(_ pattern: String) {
        if let m = pattern.wholeMatch(of: /\^\(\?!([A-Za-z0-9#_:-]+)\)\.\+\$/) {
            forbiddenPrefix = Array(m.1.utf8)
            return
        }
        let p = Array(pattern.utf8)
        guard !p.contains(UInt8(ascii: "(")), !p.contains(UInt8(ascii: ")")) else { return nil }
        // Split on | outside brackets.
        var parts: [[UInt8]] = [[]]
        var inClass = false
        var escaped = false
        for c in p {
            if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "[") {
                inClass = true
            } else if c == UInt8(ascii: "]") { inClass = false } else if c == UInt8(ascii: "|"), !inClass {
                parts.append([])
                continue
            }
            parts[parts.count - 1].append(c)
        }
        for part in parts {
            guard var atoms = Self.sequence(part) else { return nil }
            for i in atoms.indices {
                atoms[i].possessive = atoms[i].min == atoms[i].max || i == atoms.count - 1
                    || (atoms[i + 1].min >= 1 && atoms[i].set.isDisjoint(with: atoms[i + 1].set))
                atoms[i].ranges = ByteRanges(atoms[i].set)
            }
            let lo = atoms.reduce(0) { $0 + $1.min }
            let hi = atoms.reduce(0) { $0 > Int.max - $1.max ? Int.max : $0 + $1.max }
            lengths.append(lo...hi)
            self.atoms += mergingLiterals(atoms)
            starts.append(self.atoms.count)
        }
    }

    /// `atoms` with each run of two or more single-byte atoms (one byte, exactly once) made one
    /// literal atom, its bytes appended to `literals`.
    private mutating func mergingLiterals(_ atoms: [Atom]) -> [Atom] {
        func byte(_ a: Atom) -> UInt8? {
            guard a.min == 1, a.max == 1 else { return nil }
            let words = [a.set.w0, a.set.w1, a.set.w2, a.set.w3]
            guard words.reduce(0, { $0 + $1.nonzeroBitCount }) == 1, let w = words.firstIndex(where: { $0 != 0 })
            else { return nil }
            return UInt8(w * 64 + words[w].trailingZeroBitCount)
        }
        var out: [Atom] = []
        var i = 0
        while i < atoms.count {
            var run: [UInt8] = []
            while i + run.count < atoms.count, let b = byte(atoms[i + run.count]) { run.append(b) }
            if run.count >= 2 {
                var atom = atoms[i]
                atom.literal = literals.count..<(literals.count + run.count)
                (atom.min, atom.max, atom.possessive, atom.ranges) = (run.count, run.count, true, nil)
                literals += run
                out.append(atom)
                i += run.count
            } else {
                out.append(atoms[i])
                i += 1
            }
        }
        return out
    }

    static let printable = (0..<256).map { $0 >= 0x20 && $0 < 0x7F }
    static let digits = (0..<256).map { $0 >= 0x30 && $0 <= 0x39 }

    static func sequence(_ p: [UInt8]) -> [Atom]? {
        guard p.first == UInt8(ascii: "^"), p.last == UInt8(ascii: "$"), p.count >= 2 else { return nil }
        var atoms: [Atom] = []
        var i = 1
        let end = p.count - 1
        while i < end {
            var set = [Bool](repeating: false, count: 256)
            let c = p[i]
            switch c {
            case UInt8(ascii: "["):
                i += 1
                guard i < end, p[i] != UInt8(ascii: "^") else { return nil }
                var members: [UInt8] = []
                var first = true
                while i < end, p[i] != UInt8(ascii: "]") || first {
                    first = false
                    var m = p[i]
                    if m == UInt8(ascii: "\\") {
                        guard i + 1 < end else { return nil }
                        i += 1
                        if p[i] == UInt8(ascii: "d") {
                            for d in UInt8(ascii: "0")...UInt8(ascii: "9") { set[Int(d)] = true }
                            i += 1
                            continue
                        }
                        guard [UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "\\"), UInt8(ascii: "]")].contains(p[i])
                        else { return nil }
                        m = p[i]
                    } else if m == UInt8(ascii: "-"), let lo = members.last, i + 1 < end, p[i + 1] != UInt8(ascii: "]") {
                        let hi = p[i + 1]
                        guard hi >= lo, hi != UInt8(ascii: "\\") else { return nil }
                        for x in lo...hi { set[Int(x)] = true }
                        i += 2
                        continue
                    } else if m == UInt8(ascii: "[") {
                        return nil  // POSIX classes like [:alpha:]
                    }
                    members.append(m)
                    set[Int(m)] = true
                    i += 1
                }
                guard i < end else { return nil }
                i += 1
            case UInt8(ascii: "\\"):
                guard i + 1 < end else { return nil }
                switch p[i + 1] {
                case UInt8(ascii: "d"): set = digits
                case UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "\\"): set[Int(p[i + 1])] = true
                default: return nil
                }
                i += 2
            case UInt8(ascii: "."):
                set = printable
                i += 1
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"), UInt8(ascii: "}"),
                UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "|"), UInt8(ascii: "]"):
                return nil
            default:
                guard c >= 0x20, c < 0x7F else { return nil }
                set[Int(c)] = true
                i += 1
            }
            var atom = Atom(set: ByteSet(set), min: 1, max: 1)
            if i < end {
                switch p[i] {
                case UInt8(ascii: "+"): (atom.min, atom.max, i) = (1, Int.max, i + 1)
                case UInt8(ascii: "*"): (atom.min, atom.max, i) = (0, Int.max, i + 1)
                case UInt8(ascii: "?"): (atom.min, atom.max, i) = (0, 1, i + 1)
                case UInt8(ascii: "{"):
                    guard let close = p[i...].firstIndex(of: UInt8(ascii: "}")), close < end else { return nil }
                    let inner = String(decoding: p[(i + 1)..<close], as: UTF8.self)
                    let bounds = inner.split(separator: ",", omittingEmptySubsequences: false)
                    guard let lo = Int(bounds[0]) else { return nil }
                    if bounds.count == 1 {
                        (atom.min, atom.max) = (lo, lo)
                    } else if bounds.count == 2 {
                        let hi = bounds[1].isEmpty ? Int.max : Int(bounds[1])
                        guard let hi, hi >= lo else { return nil }
                        (atom.min, atom.max) = (lo, hi)
                    } else {
                        return nil
                    }
                    i = close + 1
                default: break
                }
                if i < end, [UInt8(ascii: "?"), UInt8(ascii: "+")].contains(p[i]) { return nil }  // lazy/possessive
            }
            atoms.append(atom)
        }
        return atoms
    }

    /// Whether the bytes `b[r]` (printable ASCII, as the tape guarantees) match. `b` is the whole
    /// line: the match looks only at `r`, but loads whole words wherever `b` has them.
    func matches(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        if let forbiddenPrefix {
            guard !r.isEmpty else { return false }
            guard r.count >= forbiddenPrefix.count else { return true }
            return forbiddenPrefix.withUnsafeBufferPointer { p in
                !equalBytes(b.baseAddress! + r.lowerBound, p.baseAddress!, p.count)
            }
        }
        return atoms.withUnsafeBufferPointer { atoms in
            lengths.withUnsafeBufferPointer { lengths in
                starts.withUnsafeBufferPointer { starts in
                    literals.withUnsafeBufferPointer { literals in
                        for i in 0..<lengths.count where lengths[i].contains(r.count) {
                            let alternative = UnsafeBufferPointer(rebasing: atoms[starts[i]..<starts[i + 1]])
                            if Self.match(alternative, 0, b, r.lowerBound, r.upperBound, literals) { return true }
                        }
                        return false
                    }
                }
            }
        }
    }

    /// Matches `atoms[a...]` against `b[pos..<end]`: possessive atoms in a loop, backtracking
    /// (by recursion) only at the atoms that may need to give bytes back.
    static func match(
        _ atoms: UnsafeBufferPointer<Atom>, _ first: Int, _ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int,
        _ literals: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        var a = first
        var pos = start
        while a < atoms.count {
            let atom = atoms[a]
            if let literal = atom.literal {
                guard end - pos >= literal.count,
                    equalBytes(b.baseAddress! + pos, literals.baseAddress! + literal.lowerBound, literal.count)
                else { return false }
                pos += literal.count
                a += 1
                continue
            }
            var k = 0
            let limit = Swift.min(atom.max, end - pos)
            if let ranges = atom.ranges {
                // Eight bytes at a time (a word may reach past the string, within the line) while
                // all are members; then up to the first that is not.
                let raw = UnsafeRawPointer(b.baseAddress!)
                while k < limit {
                    guard pos + k + 8 <= b.count else {
                        while k < limit, ranges.members(UInt64(b[pos + k])) & 0x80 != 0 { k += 1 }
                        break
                    }
                    let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: pos + k, as: UInt64.self))
                    let outside = ~ranges.members(w) & ByteRanges.highs
                    let run = outside == 0 ? 8 : outside.trailingZeroBitCount >> 3
                    if k + run >= limit {
                        k = limit
                        break
                    }
                    k += run
                    if run < 8 { break }
                }
            } else if atom.set.w2 | atom.set.w3 == 0 {
                // An ASCII-only set (every pattern here): one word select per byte; a byte of
                // 0x80 or more is never in it.
                let (w0, w1) = (atom.set.w0, atom.set.w1)
                while k < limit {
                    let c = b[pos + k]
                    if c >= 0x80 || (c < 64 ? w0 : w1) & (1 &<< UInt64(c & 63)) == 0 { break }
                    k += 1
                }
            } else {
                while k < limit, atom.set.contains(b[pos + k]) { k += 1 }
            }
            if k < atom.min { return false }
            if atom.possessive {
                pos += k
                a += 1
                continue
            }
            var n = k
            while n >= atom.min {
                if match(atoms, a + 1, b, pos + n, end, literals) { return true }
                n -= 1
            }
            return false
        }
        return pos == end
    }

    /// RFC 3339 date-time as the canonical validator's expression has it:
    /// `YYYY-MM-DD(T|t)HH:MM:SS[.frac](Z|z|±HH:MM)`, month 01-12, day 01-31, hour 00-23, second 00-60.
    static func isDateTime(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        var i = r.lowerBound
        let end = r.upperBound
        func num(_ n: Int) -> Int? {
            guard i + n <= end else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            i += n
            return v
        }
        // One byte, or either of two (bytes, not a String: this runs per event on the hot path).
        func lit(_ a: Unicode.Scalar, _ other: Unicode.Scalar? = nil) -> Bool {
            guard i < end, b[i] == UInt8(ascii: a) || (other.map { b[i] == UInt8(ascii: $0) } ?? false) else {
                return false
            }
            i += 1
            return true
        }
        guard num(4) != nil, lit("-"), let mo = num(2), (1...12).contains(mo), lit("-"), let d = num(2), (1...31).contains(d),
            lit("T", "t"), let h = num(2), h <= 23, lit(":"), let mi = num(2), mi <= 59, lit(":"), let s = num(2), s <= 60
        else { return false }
        if i < end, b[i] == UInt8(ascii: ".") {
            i += 1
            let s = i
            while i < end, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            guard i > s else { return false }
        }
        if i < end, b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") { return i + 1 == end }
        guard lit("+", "-"), let oh = num(2), oh <= 23, lit(":"), let om = num(2), om <= 59 else { return false }
        return i == end
    }
}
