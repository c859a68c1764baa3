/// Writes JSON straight into a byte buffer. Hot paths (BatchWriteItem bodies, events) use
/// the streaming calls; `value(_:)` writes a whole `JSON` with sorted object keys.
///
/// The streaming calls insert commas themselves: call `beginObject`, then `key` and a value
/// call per member, then `endObject`.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma = false
    }

    @inline(__always) private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }
    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }
    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }
    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// An object key; the next value call writes its value.
    public mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }
    public mutating func string(_ value: Substring) {
        string(String(value))
    }
    /// A number given as its JSON text (already valid).
    public mutating func rawNumber(_ text: String) {
        separate()
        bytes.append(contentsOf: text.utf8)
        needsComma = true
    }
    public mutating func int(_ value: Int) {
        rawNumber(String(value))
    }
    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: value ? Array("true".utf8) : Array("false".utf8))
        needsComma = true
    }
    public mutating func null() {
        separate()
        bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        needsComma = true
    }
    /// Already-serialized JSON, inserted as one value.
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }

    public mutating func value(_ json: JSON) {
        switch json {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let text): rawNumber(text)
        case .string(let s): string(s)
        case .array(let items):
            beginArray()
            for item in items { value(item) }
            endArray()
        case .object(let members):
            beginObject()
            for name in members.keys.sorted() {
                key(name)
                value(members[name]!)
            }
            endObject()
        }
    }

    // MARK: Template writing: hot paths that write one fixed shape (change events) append
    // verbatim JSON text and quoted strings themselves; these calls leave commas to the caller.

    /// JSON text written as it is (the caller keeps the document well-formed).
    public mutating func appendLiteral(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Bytes written as they are: JSON text the caller knows is well-formed.
    public mutating func appendLiteral<C: Collection>(_ text: C) where C.Element == UInt8 {
        bytes.append(contentsOf: text)
    }

    /// A string, quoted and escaped as `string(_:)` writes it.
    public mutating func appendQuoted(_ s: String) {
        var s = s
        s.withUTF8 { appendQuoted(utf8: $0) }
    }

    /// Eight bytes (little-endian) at a time: nonzero when one of them may be a quote, a
    /// backslash or a control byte (what JSON strings escape; a false alarm only beside a true
    /// one). The one such test for the writer here and the fast string scans of the Events module.
    @inlinable
    public static func mayHoldQuoteBackslashOrControl(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22)
        let slash = w ^ (ones &* 0x5C)
        // A zero byte in `quote` or `slash`, or a byte below 0x20 in `w`.
        return ((quote &- ones) & ~quote | (slash &- ones) & ~slash | (w &- ones &* 0x20) & ~w) & highs != 0
    }

    /// True when `buffer` holds a quote, a backslash or a control byte (what `appendQuoted`
    /// escapes).
    static func needsEscaping(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        if let base = buffer.baseAddress {
            let raw = UnsafeRawPointer(base)
            while i + 8 <= buffer.count {
                if mayHoldQuoteBackslashOrControl(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return true }
                i += 8
            }
        }
        while i < buffer.count {
            let c = buffer[i]
            if c < 0x20 || c == 0x22 || c == 0x5C { return true }
            i += 1
        }
        return false
    }

    /// UTF-8 text, quoted and escaped as `string(_:)` writes it.
    public mutating func appendQuoted(utf8 buffer: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        // Most text (hems, ids, positions, timestamps) needs no escape: one copy, after a check
        // eight bytes at a time.
        if !Self.needsEscaping(buffer) {
            bytes.append(contentsOf: buffer)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        var runStart = 0
        var i = 0
        while i < buffer.count {
            let c = buffer[i]
            if c >= 0x20 && c != 0x22 && c != 0x5C {
                i += 1
                continue
            }
            if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[runStart..<i])) }
            switch c {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            default:
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30])
                bytes.append(Hex.digits[Int(c >> 4)])
                bytes.append(Hex.digits[Int(c & 0xF)])
            }
            i += 1
            runStart = i
        }
        if runStart < buffer.count {
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[runStart..<buffer.count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
