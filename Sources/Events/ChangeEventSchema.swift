import Foundation
import JSON
import Schemas

/// The JSON Schema of a change event (schemas/events/change-event.v1.json) and a validator for
/// the draft 2020-12 subset it uses. Problems name the JSON path and the rule, never the value.
public struct ChangeEventSchema: Sendable {
    public static let path = "events/change-event.v1.json"
    public let root: JSON
    private let patterns: PatternCache

    public init(root: JSON) {
        self.root = root
        patterns = PatternCache(root)
    }

    /// Loads the schema through `SchemaFiles` (embedded copy, or `HEMSTREAM_SCHEMAS`).
    public static func load() throws -> ChangeEventSchema {
        ChangeEventSchema(root: try JSON.parse(try SchemaFiles.text(path)))
    }

    /// `[]` when `event` is valid; otherwise one line per problem, e.g. `data.hem: does not match pattern ...`.
    public func validate(_ event: JSON) -> [String] {
        var problems: [String] = []
        check(event, root, "", &problems)
        return problems
    }

    private func name(_ path: String) -> String { path.isEmpty ? "(event)" : path }
    private func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

    /// The node a local `$ref` (`#/a/b`) names in `root`; nil for any other reference or a
    /// path that leads nowhere. The one reading of `$ref` for this validator, the compiled
    /// schema and the contract checker.
    static func resolve(_ ref: String, in root: JSON) -> JSON? {
        guard ref.hasPrefix("#/") else { return nil }
        var node: JSON? = root
        for part in ref.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }

    private func check(_ value: JSON, _ schema: JSON, _ path: String, _ out: inout [String]) {
        if case .bool(let b) = schema { if !b { out.append("\(name(path)): not allowed") }; return }
        guard case .object(let s) = schema else { return }
        if let ref = s["$ref"]?.stringValue {
            if let target = Self.resolve(ref, in: root) { check(value, target, path, &out) } else { out.append("\(name(path)): schema $ref \(ref) not found") }
        }
        if let t = s["type"] {
            let allowed = t.arrayValue?.compactMap(\.stringValue) ?? [t.stringValue ?? ""]
            let actual = value.schemaTypeName
            if !(allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))) {
                out.append("\(name(path)): expected \(allowed.joined(separator: " or ")), got \(actual)")
                return
            }
        }
        if let c = s["const"], c != value { out.append("\(name(path)): must be \(c.serialized())") }
        if let e = s["enum"]?.arrayValue, !e.contains(value) {
            out.append("\(name(path)): must be one of \(e.map { $0.serialized() }.joined(separator: ", "))")
        }
        if case .string(let str) = value {
            if let min = s["minLength"]?.intValue, str.count < min { out.append("\(name(path)): shorter than \(min) characters") }
            if let p = s["pattern"]?.stringValue {
                if let re = patterns.regexes[p] {
                    if str.firstMatch(of: re) == nil { out.append("\(name(path)): does not match pattern \(p)") }
                } else { out.append("\(name(path)): schema pattern \(p) does not compile") }
            }
            if s["format"]?.stringValue == "date-time", !Self.isDateTime(str) {
                out.append("\(name(path)): not an RFC 3339 date-time")
            }
        }
        if case .object(let members) = value {
            for req in s["required"]?.arrayValue ?? [] {
                if let k = req.stringValue, members[k] == nil { out.append("\(join(path, k)): required") }
            }
            let props = s["properties"]?.objectValue ?? [:]
            // A member the schema does not declare is named by count, never by its name: the
            // name is input and may hold anything, an address included.
            var undeclared = 0
            for (k, v) in members.sorted(by: { $0.key < $1.key }) {
                if let sub = props[k] { check(v, sub, join(path, k), &out) }
                else if let extra = s["additionalProperties"] {
                    undeclared += 1
                    if case .bool(false) = extra {
                        out.append("\(name(path)): property not allowed (undeclared member \(undeclared); names are not echoed)")
                    } else {
                        check(v, extra, join(path, "<undeclared member \(undeclared)>"), &out)
                    }
                }
            }
        }
        if case .array(let items) = value {
            if let min = s["minItems"]?.intValue, items.count < min { out.append("\(name(path)): fewer than \(min) items") }
            if let itemSchema = s["items"] {
                for (i, item) in items.enumerated() { check(item, itemSchema, "\(path)[\(i)]", &out) }
            }
        }
        for sub in s["allOf"]?.arrayValue ?? [] { check(value, sub, path, &out) }
        if let any = s["anyOf"]?.arrayValue {
            let ok = any.contains { sub in var o: [String] = []; check(value, sub, path, &o); return o.isEmpty }
            if !ok { out.append("\(name(path)): matches none of anyOf") }
        }
        if let one = s["oneOf"]?.arrayValue {
            let n = one.filter { sub in var o: [String] = []; check(value, sub, path, &o); return o.isEmpty }.count
            if n != 1 { out.append("\(name(path)): matches \(n) of oneOf, expected exactly 1") }
        }
        if let cond = s["if"] {
            var o: [String] = []
            check(value, cond, path, &o)
            if o.isEmpty { if let then = s["then"] { check(value, then, path, &out) } }
            else if let els = s["else"] { check(value, els, path, &out) }
        }
    }

    /// RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; the rule lives in
    /// `BytePattern.isDateTime`, which the fast paths use too.
    static func isDateTime(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { BytePattern.isDateTime($0, 0..<$0.count) }
    }
}

/// Every `pattern` of a schema compiled once (a pattern that does not compile is absent), so
/// `validate` does not build a Regex per check.
private final class PatternCache: @unchecked Sendable {
    // @unchecked: filled in init, then only read; matching does not change a Regex.
    let regexes: [String: Regex<AnyRegexOutput>]

    init(_ schema: JSON) {
        var found: [String: Regex<AnyRegexOutput>] = [:]
        func walk(_ node: JSON) {
            switch node {
            case .object(let members):
                if let p = members["pattern"]?.stringValue, found[p] == nil, let re = try? Regex(p) { found[p] = re }
                for v in members.values { walk(v) }
            case .array(let items): for v in items { walk(v) }
            default: break
            }
        }
        walk(schema)
        regexes = found
    }
}
