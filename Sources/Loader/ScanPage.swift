import Export
import JSON

/// A Scan answer read straight from its bytes: the items as export rows (their `S` values by
/// attribute name), and the other top-level members (LastEvaluatedKey, ConsumedCapacity, ...)
/// as JSON. Building a JSON tree for a million items (a dictionary per item and per attribute)
/// cost several times what reading the export does; this reads each item once, without one.
/// A shape it does not expect gives nil, and the caller parses the page the general way.
struct ScanPage {
    var rows: [ExportRow] = []
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
                    guard cursor.items(into: &page.rows) else { return nil }
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
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let start = index + 1
            var i = start
            var escaped = false
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\") {
                    escaped = true
                    i += 1
                }
                i += 1
            }
            guard i < bytes.count else { return nil }
            index = i + 1
            if escaped { return (try? JSON.parse(Array(bytes[(start - 1)...i])))?.stringValue }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        /// Any value, without looking at it.
        mutating func skipValue() -> Bool {
            skipSpace()
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "\""):
                        guard string() != nil else { return false }
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

        /// `[ item, ... ]`, each item `{ "name": {"S": "value"}, ... }`.
        mutating func items(into rows: inout [ExportRow]) -> Bool {
            guard take(UInt8(ascii: "[")) else { return false }
            if take(UInt8(ascii: "]")) { return true }
            repeat {
                guard take(UInt8(ascii: "{")) else { return false }
                var values: [String?] = Array(repeating: nil, count: 7)
                if !take(UInt8(ascii: "}")) {
                    repeat {
                        guard let name = string(), take(UInt8(ascii: ":")), take(UInt8(ascii: "{")) else {
                            return false
                        }
                        let slot = Self.slot(name)
                        repeat {
                            guard let type = string(), take(UInt8(ascii: ":")) else { return false }
                            if type == "S", let slot {
                                guard let value = string() else { return false }
                                values[slot] = value
                            } else if !skipValue() {
                                return false
                            }
                        } while take(UInt8(ascii: ","))
                        guard take(UInt8(ascii: "}")) else { return false }
                    } while take(UInt8(ascii: ","))
                    guard take(UInt8(ascii: "}")) else { return false }
                }
                if let hem = values[0], let vupID = values[1] {
                    rows.append(
                        ExportRow(
                            hem: hem, vupID: vupID, email: values[2], domain: values[3], source: values[4],
                            lastVerified: values[5], updatedAt: values[6] ?? "", line: 0))
                }
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]"))
        }

        static func slot(_ name: String) -> Int? {
            switch name {
            case "hem": return 0
            case "vup_id": return 1
            case "email": return 2
            case "domain": return 3
            case "source": return 4
            case "last_verified": return 5
            case "updated_at": return 6
            default: return nil
            }
        }
    }
}
