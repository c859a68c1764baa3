/// An RFC 4180 CSV tokenizer over bytes, fed in chunks: commas, doubled quotes and line breaks
/// inside quotes, CRLF or LF. It copies one record's unescaped field bytes into `record` (with
/// `fieldEnds` marking where each field stops) and counts physical lines, so a quoted newline
/// advances the line. Blank lines are skipped. Memory stays bounded: bytes past `limit` in one
/// record are dropped and the record is marked `oversized`.
struct CSVReader {
    private enum State {
        case fieldStart, unquoted, quoted, quoteInQuoted
    }

    private static let comma = UInt8(ascii: ",")
    private static let quote = UInt8(ascii: "\"")
    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")

    /// Unescaped bytes of the current record's fields, back to back.
    private(set) var record: [UInt8] = []
    /// End offset in `record` of each field of the current record.
    private(set) var fieldEnds: [Int] = []
    /// Physical line (1-based) where the current record starts.
    private(set) var recordLine = 1
    /// Physical line of the next unread byte.
    private(set) var line = 1
    /// The current record went past `limit`; its bytes are incomplete.
    private(set) var oversized = false
    /// At the end of the input, the last record was inside an open quote (from this line).
    private(set) var unterminatedQuote = false
    /// Most bytes one record may hold.
    var limit: Int

    private var input: [UInt8] = []
    private var inputCount = 0
    private var position = 0
    private var state = State.fieldStart
    private var inRecord = false
    private var returned = false

    init(limit: Int) {
        self.limit = limit
        record.reserveCapacity(4096)
        fieldEnds.reserveCapacity(16)
    }

    /// True when every fed byte has been consumed.
    var needsInput: Bool { position >= inputCount }

    /// Bytes held for the record being read so far.
    var pendingBytes: Int { record.count }

    /// Hands over the first `count` bytes of `bytes` as the next chunk. Call only once `next()`
    /// returned false.
    mutating func feed(_ bytes: [UInt8], count: Int) {
        input = bytes
        inputCount = count
        position = 0
    }

    /// Drops the reference to the consumed chunk, so its owner can refill it in place.
    mutating func releaseInput() {
        input = []
        inputCount = 0
        position = 0
    }

    /// The bytes of field `index` of the current record.
    func field(_ index: Int, in buffer: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        let start = index == 0 ? 0 : fieldEnds[index - 1]
        return UnsafeBufferPointer(rebasing: buffer[start..<fieldEnds[index]])
    }

    /// Reads up to the end of the next record. False when the fed bytes ran out first.
    mutating func next() -> Bool {
        if returned { resetRecord() }
        let chunk = input
        let count = inputCount
        return chunk.withUnsafeBufferPointer { scan(UnsafeBufferPointer(rebasing: $0[..<count])) }
    }

    /// At the end of the input: completes a last record that has no line break after it.
    mutating func finish() -> Bool {
        if returned { resetRecord() }
        guard inRecord else { return false }
        if state == .quoted { unterminatedQuote = true }
        endField()
        return completeRecord()
    }

    private mutating func resetRecord() {
        record.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        oversized = false
        inRecord = false
        returned = false
        recordLine = line
    }

    private mutating func append(_ buffer: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) {
        guard to > from else { return }
        if record.count + (to - from) > limit {
            oversized = true
            return
        }
        record.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[from..<to]))
    }

    private mutating func endField() {
        fieldEnds.append(record.count)
    }

    /// A record ended at a line break: returns it, or skips it when the line was blank.
    private mutating func completeRecord() -> Bool {
        state = .fieldStart
        if fieldEnds.count == 1 && fieldEnds[0] == 0 && !oversized {
            resetRecord()
            return false
        }
        returned = true
        return true
    }

    private mutating func scan(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = position
        let n = buffer.count
        defer { position = i }
        while i < n {
            inRecord = true
            switch state {
            case .fieldStart:
                if buffer[i] == Self.quote {
                    state = .quoted
                    i += 1
                } else {
                    state = .unquoted
                }
            case .unquoted:
                let j = Self.endOfUnquoted(buffer, from: i)
                append(buffer, i, j)
                i = j
                guard j < n else { return false }
                i += 1
                if buffer[j] == Self.comma {
                    endField()
                    state = .fieldStart
                } else {
                    let fieldStart = fieldEnds.last ?? 0
                    if record.count > fieldStart && record[record.count - 1] == Self.cr { record.removeLast() }
                    endField()
                    line += 1
                    if completeRecord() { return true }
                }
            case .quoted:
                let j = Self.nextQuote(buffer, from: i, lines: &line)
                append(buffer, i, j)
                i = j
                guard j < n else { return false }
                i += 1
                state = .quoteInQuoted
            case .quoteInQuoted:
                let byte = buffer[i]
                if byte == Self.quote {
                    append(buffer, i, i + 1)
                    state = .quoted
                    i += 1
                } else if byte == Self.comma {
                    endField()
                    state = .fieldStart
                    i += 1
                } else if byte == Self.lf {
                    endField()
                    line += 1
                    i += 1
                    if completeRecord() { return true }
                } else if byte == Self.cr {
                    i += 1
                } else {
                    // Lenient: text after a closing quote is kept as part of the field.
                    state = .unquoted
                }
            }
        }
        return false
    }

    // Scanning eight bytes at a time (SWAR): a word with none of the bytes sought is skipped
    // whole; the rest is checked byte by byte. Fields are mostly 10-64 bytes of plain text.

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    @inline(__always) private static func hasByte(_ word: UInt64, _ byte: UInt8) -> Bool {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highs != 0
    }

    /// Index of the first comma or line feed at or after `start`, or the end.
    @inline(__always) private static func endOfUnquoted(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let n = buffer.count
        guard let base = buffer.baseAddress else { return n }
        let raw = UnsafeRawPointer(base)
        var j = start
        while j + 8 <= n {
            let word = raw.loadUnaligned(fromByteOffset: j, as: UInt64.self)
            if hasByte(word, comma) || hasByte(word, lf) { break }
            j += 8
        }
        while j < n {
            let byte = base[j]
            if byte == comma || byte == lf { return j }
            j += 1
        }
        return n
    }

    /// Index of the next quote at or after `start`, or the end; counts the line feeds passed.
    @inline(__always) private static func nextQuote(
        _ buffer: UnsafeBufferPointer<UInt8>, from start: Int, lines: inout Int
    ) -> Int {
        let n = buffer.count
        guard let base = buffer.baseAddress else { return n }
        let raw = UnsafeRawPointer(base)
        var j = start
        while j < n {
            while j + 8 <= n {
                let word = raw.loadUnaligned(fromByteOffset: j, as: UInt64.self)
                if hasByte(word, quote) || hasByte(word, lf) { break }
                j += 8
            }
            let stop = min(j + 8, n)
            while j < stop {
                let byte = base[j]
                if byte == quote { return j }
                if byte == lf { lines += 1 }
                j += 1
            }
        }
        return n
    }
}
