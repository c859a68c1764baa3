import Foundation
import JSON

/// Change events broken every way the fast-path tests need: the examples in
/// schemas/events/examples, and thousands of lines one edit away from them (a value replaced by
/// another of every kind and format, a member dropped, added or repeated, members reordered, a
/// byte deleted, replaced or inserted, an email-shaped string in each string's place, PII changes
/// that carry values). Email-shaped strings use `example.invalid`; messages about a line should
/// go through `redacted`.
public enum EventMutations {
    /// Values put in every place a value can be: each kind, and near misses of each format.
    public static let candidates: [JSON] = [
        "", "x", 1, .number("1.5"), .number("1e3"), nil, true, false, [], [:], ["x"], ["a": 1], "UNRESOLVED#0a",
        "UNRESOLVED#zz", "UNRESOLVED#", "UNRESOLVED#0a0", "VUP-9", "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde",
        .string(String(repeating: "a", count: 64)), .string(String(repeating: "a", count: 63)),
        .string(String(repeating: "b", count: 40)), .string(String(repeating: "g", count: 64)),
        "2026-11-18T11:06:40Z", "2026-13-18T11:06:40Z", "2026-11-18t11:06:40.5+01:00", "2026-11-18T24:00:00Z",
        "2026-11-18T11:06:40", "2026-11-18 11:06:40Z", "2026-11-18T11:06:40.Z", "aws:dynamodb:us-east-1:t",
        "aws:dynamodb::t", "aws:dynamodb:US:t", "hem.created", "hem.resolved", "hem.updated", "stream.gap",
        "hem.create", "INSERT", "insert", "12", "1a", "a\nb", "a\\b", "a\"b", "caf\u{e9}", "x\u{7f}", "1.0", "1.1",
        "application/json", "public", "pii", "added", "modified", "removed",
        "e.x@example.invalid", "VUP-1 q@example.invalid",
    ]

    /// The example events (every file in schemas/events/examples) as compact JSON.
    public static let examples: [JSON] = {
        let dir = EventFixtures.root.appendingPathComponent("schemas/events/examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.sorted() ?? []
        return names.filter { $0.hasSuffix(".json") }.map { name in
            try! JSON.parse(try! String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8))
        }
    }()

    /// Every value one edit away from `v`: a value replaced by each candidate (recursively), a
    /// member removed or added, an array emptied or given a copy of its first item, a PII change
    /// given values.
    public static func mutations(_ v: JSON) -> [JSON] {
        var out: [JSON] = candidates
        switch v {
        case .object(let members):
            out.append(.object(members.merging(["extra": 1]) { a, _ in a }))
            if members["class"] == "pii" {
                for extra: [String: JSON] in [
                    ["before": "a", "after": "b"], ["before": nil, "after": "e.x@example.invalid"],
                    ["before_hash": .string(String(repeating: "0", count: 64))], ["after_hash": "00"],
                ] {
                    out.append(.object(members.merging(extra) { _, b in b }))
                }
            }
            for (k, child) in members {
                var without = members
                without[k] = nil
                out.append(.object(without))
                for m in mutations(child) {
                    var changed = members
                    changed[k] = m
                    out.append(.object(changed))
                }
            }
        case .array(let items):
            out.append(.array([]))
            if let first = items.first { out.append(.array(items + [first])) }
            for (i, child) in items.enumerated() {
                for m in mutations(child) {
                    var changed = items
                    changed[i] = m
                    out.append(.array(changed))
                }
            }
        default: break
        }
        return out
    }

    /// `v` as compact JSON with each object's members in the order `order` gives (the writer's
    /// own order is sorted), and the member at `repeating` (an index into `order`'s result, if
    /// any) written twice.
    public static func text(_ v: JSON, order: ([String]) -> [String], repeating: Int? = nil) -> String {
        switch v {
        case .object(let members):
            var keys = order(members.keys.sorted())
            if let r = repeating, r < keys.count { keys.insert(keys[r], at: r) }
            let parts = keys.map {
                JSON.string($0).serialized() + ":" + text(members[$0]!, order: order, repeating: repeating)
            }
            return "{" + parts.joined(separator: ",") + "}"
        case .array(let items):
            return "[" + items.map { text($0, order: order, repeating: repeating) }.joined(separator: ",") + "]"
        default:
            return v.serialized()
        }
    }

    /// Bytes put in, or in place of, a line's bytes.
    static let bytes: [UInt8] = Array("\"\\{}[]:,019afgzAZ-.#@ \tn".utf8) + [0x7F, 0xC3, 0x0A]

    /// Every line of one example's text edited by one byte: each byte deleted, replaced by two of
    /// `bytes`, and one of them inserted before it.
    public static func byteEdits(_ line: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        out.reserveCapacity(line.count * 4)
        for i in line.indices {
            var deleted = line
            deleted.remove(at: i)
            out.append(deleted)
            for k in 0..<2 {
                var replaced = line
                replaced[i] = bytes[(i * 2 + k) % bytes.count]
                if replaced != line { out.append(replaced) }
            }
            var inserted = line
            inserted.insert(bytes[(i * 7) % bytes.count], at: i)
            out.append(inserted)
        }
        return out
    }

    /// The whole corpus: each example as the writer prints it, reversed, rotated and with each
    /// member repeated; every `mutations` of it; every `byteEdits` of its text.
    public static func lines() -> [[UInt8]] {
        var out: [[UInt8]] = []
        for example in examples {
            let line = Array(example.serialized().utf8)
            out.append(line)
            out.append(Array(text(example, order: { $0.reversed() }).utf8))
            out.append(Array(text(example, order: { Array($0.dropFirst()) + $0.prefix(1) }).utf8))
            for r in 0..<9 { out.append(Array(text(example, order: { $0 }, repeating: r).utf8)) }
            for m in mutations(example) { out.append(Array(m.serialized().utf8)) }
            out += byteEdits(line)
        }
        return out
    }

    /// `line` as text safe to print in a test message: `@` written as `(at)`.
    public static func redacted(_ line: [UInt8]) -> String {
        String(decoding: line, as: UTF8.self).replacingOccurrences(of: "@", with: "(at)")
    }
}
