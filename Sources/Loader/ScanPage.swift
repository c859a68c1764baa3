import Export
import JSON

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A Scan answer read straight from its bytes: the items as the external sort's records (their
/// `S` values by attribute name, copied from the page as they are; a value with escapes is
/// decoded), and the other top-level members (LastEvaluatedKey, ConsumedCapacity, ...) as JSON.
/// A JSON tree for a million items (a dictionary per item and per attribute), and then a String
/// per attribute, cost several times what reading the export does; this makes neither.
/// A shape it does not expect gives nil, and the caller parses the page the general way.
struct ScanPage {
    var records = SortRecordBuffer()
    var members: [String: JSON] = [:]

    static func parse(_ bytes: [UInt8]) -> ScanPage? {
        bytes.withUnsafeBufferPointer { buffer in
            var cursor = Cursor(bytes: buffer)
            var page = ScanPage()
            guard cursor.take(UInt8(ascii: "{")) else { return nil }
            if cursor.take(UInt8(ascii: "}")) { return page }
            repeat {
                guard let name = cursor.string(), cursor.take(UInt8(ascii: ":")) else { return nil }
                if name == "Items" {
                    guard cursor.items(into: &page.records) else { return nil }
                } else {
                    let start = cursor.index
                    guard cursor.skipValue(), let value = try? JSON.parse(Array(buffer[start..<cursor.index])) else {
                        return nil
                    }
                    page.members[name] = value
                }
            } while cursor.take(UInt8(ascii: ","))
            guard cursor.take(UInt8(ascii: "}")) else { return nil }
            return page
        }
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count,
                bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D
                    || bytes[index] == 0x09
            {
                index += 1
            }
        }

        /// Skips white space, then takes `byte` if it is next.
        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A string; one with escapes is decoded by the JSON parser.
        mutating func string() -> String? {
            guard let (range, escaped) = stringRange() else { return nil }
            return decode(range, escaped: escaped)
        }

        /// The bytes between a string's quotes, and whether they hold an escape.
        mutating func stringRange() -> (Range<Int>, escaped: Bool)? {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let base = bytes.baseAddress else {
                return nil
            }
            let start = index + 1
            // The closing quote by memchr; a backslash before it means escapes, walked byte by byte.
            guard let quote = memchr(base + start, Int32(UInt8(ascii: "\"")), bytes.count - start) else { return nil }
            var i = start + UnsafeRawPointer(base + start).distance(to: UnsafeRawPointer(quote))
            let escaped = memchr(base + start, Int32(UInt8(ascii: "\\")), i - start) != nil
            if escaped {
                i = start
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\") { i += 1 }
                    i += 1
                }
                guard i < bytes.count else { return nil }
            }
            index = i + 1
            return (start..<i, escaped)
        }

        func decode(_ range: Range<Int>, escaped: Bool) -> String? {
            if escaped {
                return (try? JSON.parse(Array(bytes[(range.lowerBound - 1)...range.upperBound])))?.stringValue
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        /// Any value, without looking at it.
        mutating func skipValue() -> Bool {
            skipSpace()
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                return stringRange() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "\""):
                        guard stringRange() != nil else { return false }
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            return true
                        }
                    default: break
                    }
                    index += 1
                }
                return false
            default:
                while index < bytes.count, !",}] \n\r\t".utf8.contains(bytes[index]) { index += 1 }
                return true
            }
        }

        /// `[ item, ... ]`, each item `{ "name": {"S": "value"}, ... }`, into sort records (an
        /// item without hem or vup_id is left out, as the table cannot hold one).
        mutating func items(into records: inout SortRecordBuffer) -> Bool {
            guard take(UInt8(ascii: "[")) else { return false }
            if take(UInt8(ascii: "]")) { return true }
            // Per slot (hem, vup_id, email, domain, source, last_verified, updated_at): the value's
            // bytes in the page, and whether they need decoding. Reused across items.
            var values = [Range<Int>?](repeating: nil, count: 7)
            var escapes = [Bool](repeating: false, count: 7)
            repeat {
                guard take(UInt8(ascii: "{")) else { return false }
                for slot in 0..<7 { values[slot] = nil }
                if !take(UInt8(ascii: "}")) {
                    repeat {
                        guard let (name, nameEscaped) = stringRange(), take(UInt8(ascii: ":")),
                            take(UInt8(ascii: "{"))
                        else {
                            return false
                        }
                        let slot = nameEscaped ? decode(name, escaped: true).flatMap(Self.slot) : slot(name)
                        repeat {
                            guard let (type, _) = stringRange(), take(UInt8(ascii: ":")) else { return false }
                            if let slot, type.count == 1, bytes[type.lowerBound] == UInt8(ascii: "S") {
                                guard let (value, escaped) = stringRange() else { return false }
                                values[slot] = value
                                escapes[slot] = escaped
                            } else if !skipValue() {
                                return false
                            }
                        } while take(UInt8(ascii: ","))
                        guard take(UInt8(ascii: "}")) else { return false }
                    } while take(UInt8(ascii: ","))
                    guard take(UInt8(ascii: "}")) else { return false }
                }
                guard let hem = values[0], values[1] != nil else { continue }
                guard append(hem: hem, values: values, escapes: escapes, to: &records) else { return false }
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]"))
        }

        /// One item's record: the page's bytes where they need no decoding. False when an
        /// escaped value does not decode.
        private func append(
            hem: Range<Int>, values: [Range<Int>?], escapes: [Bool], to records: inout SortRecordBuffer
        ) -> Bool {
            let base = UnsafeRawBufferPointer(bytes)
            var ok = true
            func strings(_ out: inout [UInt8]) {
                for slot in 1..<7 {
                    guard let range = values[slot] else {
                        // updated_at is "" when absent, as the row made from the JSON tree has it.
                        let absent: String? = slot == 6 ? "" : nil
                        SortRecordBuffer.append(string: absent, to: &out)
                        continue
                    }
                    if escapes[slot] {
                        guard let text = decode(range, escaped: true) else {
                            ok = false
                            return
                        }
                        SortRecordBuffer.append(string: text, to: &out)
                    } else {
                        SortRecordBuffer.append(string: UnsafeRawBufferPointer(rebasing: base[range]), to: &out)
                    }
                }
            }
            if escapes[0] {
                guard var text = decode(hem, escaped: true) else { return false }
                text.withUTF8 { records.appendTableRow(hem: UnsafeRawBufferPointer($0), strings: strings) }
            } else {
                records.appendTableRow(hem: UnsafeRawBufferPointer(rebasing: base[hem]), strings: strings)
            }
            return ok
        }

        /// The slot of an attribute name given as the page's bytes.
        func slot(_ name: Range<Int>) -> Int? {
            let start = bytes.baseAddress! + name.lowerBound
            for (slot, known) in Self.names.enumerated() where known.count == name.count {
                if known.withUnsafeBufferPointer({ memcmp($0.baseAddress!, start, name.count) }) == 0 { return slot }
            }
            return nil
        }

        static let names: [[UInt8]] = ["hem", "vup_id", "email", "domain", "source", "last_verified", "updated_at"]
            .map { Array($0.utf8) }

        static func slot(_ name: String) -> Int? { names.firstIndex(of: Array(name.utf8)) }
    }
}
