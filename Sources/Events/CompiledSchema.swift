import Foundation
import JSON

/// A JSON Schema (the draft 2020-12 subset the change-event schema uses) compiled once, for the
/// publish hot path: `pattern`s become POSIX regexes, `$ref`s are resolved ahead of time.
/// It only answers "certainly valid" or "not sure": callers send every "not sure" to the
/// canonical validator (Events' `ChangeEventSchema`), which gives the verdict and the messages.
/// So this can never reject a valid event, and accepts only what every rule here passes.
public final class CompiledSchema: Sendable {
    let root: Node
    /// The fused one-pass check of the change-event contract, when `schema` has the shape it was
    /// written for (`EventScanner.scan` tries it first).
    public let contract: EventContractChecker?

    public init(_ schema: JSON) {
        var refs: [String: Node] = [:]
        root = Node.compile(schema, root: schema, refs: &refs)
        contract = EventContractChecker(schema)
    }

    /// True when `value` passes every rule; false means "ask the canonical validator".
    public func certainlyValid(_ value: JSON) -> Bool { root.verdict(value) == .valid }
}

final class Node: @unchecked Sendable {
    // @unchecked: built once in `compile` (`ref` filled in before the schema is used), then only read.

    /// What `compile` gathers before the node is built (every rule is a `let` on the node, so the
    /// hot path reads them without retains or exclusivity checks).
    struct Spec {
        var boolean: Bool?
        var ref: Node?
        var types: [String]?
        var const: JSON?
        var enumValues: [JSON]?
        var minLength: Int?
        var pattern: Pattern?
        var dateTime = false
        var required: [String] = []
        var properties: [String: Node] = [:]
        var forbidsAdditional = false
        var additional: Node?
        var minItems: Int?
        var items: Node?
        var allOf: [Node] = []
        var anyOf: [Node]?
        var oneOf: [Node]?
        var ifNode: Node?
        var thenNode: Node?
        var elseNode: Node?
        /// A keyword this compiler does not know makes the node answer "not sure".
        var unsupported = false
        // The same rules in byte form, for `EventScanner`'s tape.
        var bytePattern: BytePattern?
        var propertyList: [(key: [UInt8], node: Node)] = []
        var propertyHashes: [UInt32] = []
        var requiredIndexes: [Int] = []
        var requiredOther: [[UInt8]] = []
        /// Allowed token kinds as bits (1 << rawValue); nil when `type` is absent.
        var kindMask: UInt8?
        /// `const` and `enum` in byte form when they are all strings (else compared as JSON).
        var constBytes: [UInt8]?
        var enumBytes: [[UInt8]]?
    }

    let boolean: Bool?
    var ref: Node? { didSet { uRef = ref.map { Unmanaged.passUnretained($0) } } }
    // The children again, unretained, for the tape's hot path (the fields above keep them alive).
    private(set) var uRef: Unmanaged<Node>?
    let uProperties: [Unmanaged<Node>]
    let uAdditional: Unmanaged<Node>?
    let uItems: Unmanaged<Node>?
    let uAllOf: [Unmanaged<Node>]
    let uIf: Unmanaged<Node>?
    let uThen: Unmanaged<Node>?
    let uElse: Unmanaged<Node>?
    let types: [String]?
    let const: JSON?
    let enumValues: [JSON]?
    let minLength: Int?
    let pattern: Pattern?
    let dateTime: Bool
    let required: [String]
    let properties: [String: Node]
    let forbidsAdditional: Bool
    let additional: Node?
    let minItems: Int?
    let items: Node?
    let allOf: [Node]
    let anyOf: [Node]?
    let oneOf: [Node]?
    let ifNode: Node?
    let thenNode: Node?
    let elseNode: Node?
    /// A keyword this compiler does not know makes the node answer "not sure".
    let unsupported: Bool
    // The same rules in byte form, for `EventScanner`'s tape.
    let bytePattern: BytePattern?
    let propertyList: [(key: [UInt8], node: Node)]
    let propertyHashes: [UInt32]
    let requiredIndexes: [Int]
    let requiredOther: [[UInt8]]
    /// Allowed token kinds as bits (1 << rawValue); nil when `type` is absent.
    let kindMask: UInt8?
    /// `const` and `enum` in byte form when they are all strings (else compared as JSON).
    let constBytes: [UInt8]?
    let enumBytes: [[UInt8]]?

    init(_ s: Spec) {
        boolean = s.boolean
        types = s.types
        const = s.const
        enumValues = s.enumValues
        minLength = s.minLength
        pattern = s.pattern
        dateTime = s.dateTime
        required = s.required
        properties = s.properties
        forbidsAdditional = s.forbidsAdditional
        additional = s.additional
        minItems = s.minItems
        items = s.items
        allOf = s.allOf
        anyOf = s.anyOf
        oneOf = s.oneOf
        ifNode = s.ifNode
        thenNode = s.thenNode
        elseNode = s.elseNode
        unsupported = s.unsupported
        bytePattern = s.bytePattern
        propertyList = s.propertyList
        propertyHashes = s.propertyHashes
        requiredIndexes = s.requiredIndexes
        requiredOther = s.requiredOther
        kindMask = s.kindMask
        constBytes = s.constBytes
        enumBytes = s.enumBytes
        ref = s.ref
        uRef = s.ref.map { Unmanaged.passUnretained($0) }
        uProperties = s.propertyList.map { Unmanaged.passUnretained($0.node) }
        uAdditional = s.additional.map { Unmanaged.passUnretained($0) }
        uItems = s.items.map { Unmanaged.passUnretained($0) }
        uAllOf = s.allOf.map { Unmanaged.passUnretained($0) }
        uIf = s.ifNode.map { Unmanaged.passUnretained($0) }
        uThen = s.thenNode.map { Unmanaged.passUnretained($0) }
        uElse = s.elseNode.map { Unmanaged.passUnretained($0) }
    }

    static let known: Set<String> = [
        "$schema", "$id", "title", "description", "$defs", "$ref", "type", "const", "enum", "minLength", "pattern",
        "format", "required", "properties", "additionalProperties", "minItems", "items", "allOf", "anyOf", "oneOf",
        "if", "then", "else",
    ]

    static func compile(_ schema: JSON, root: JSON, refs: inout [String: Node]) -> Node {
        var n = Spec()
        if case .bool(let b) = schema {
            n.boolean = b
            return Node(n)
        }
        guard case .object(let s) = schema else { return Node(n) }
        if s.keys.contains(where: { !known.contains($0) }) { n.unsupported = true }
        if let r = s["$ref"]?.stringValue {
            if let done = refs[r] {
                n.ref = done
            } else if let target = ChangeEventSchema.resolve(r, in: root) {
                let placeholder = Node(Spec())
                refs[r] = placeholder
                let compiled = compile(target, root: root, refs: &refs)
                placeholder.ref = compiled
                n.ref = compiled
            } else {
                n.unsupported = true
            }
        }
        if let t = s["type"] { n.types = t.arrayValue?.compactMap(\.stringValue) ?? [t.stringValue ?? ""] }
        n.const = s["const"]
        n.enumValues = s["enum"]?.arrayValue
        n.minLength = s["minLength"]?.intValue
        if let p = s["pattern"]?.stringValue {
            n.pattern = Pattern(p)
            n.bytePattern = BytePattern(p)
            if n.pattern == nil || n.bytePattern == nil { n.unsupported = true }
        }
        if let f = s["format"]?.stringValue {
            if f == "date-time" { n.dateTime = true } else { n.unsupported = true }
        }
        n.required = s["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for (k, v) in s["properties"]?.objectValue ?? [:] { n.properties[k] = compile(v, root: root, refs: &refs) }
        if let extra = s["additionalProperties"] {
            if case .bool(false) = extra { n.forbidsAdditional = true } else { n.additional = compile(extra, root: root, refs: &refs) }
        }
        n.propertyList = n.properties.map { (Array($0.key.utf8), $0.value) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        if n.propertyList.count > 64 { n.unsupported = true }
        n.propertyHashes = n.propertyList.map { key, _ in key.withUnsafeBufferPointer(keyHash) }
        for r in n.required {
            if let i = n.propertyList.firstIndex(where: { $0.key == Array(r.utf8) }) {
                n.requiredIndexes.append(i)
            } else {
                n.requiredOther.append(Array(r.utf8))
            }
        }
        n.minItems = s["minItems"]?.intValue
        if let types = n.types {
            var mask: UInt8 = 0
            for kind in [TokenKind.null, .bool, .integer, .number, .string, .array, .object] {
                let name = typeName(kind)
                if types.contains(name) || (name == "integer" && types.contains("number")) { mask |= 1 << kind.rawValue }
            }
            n.kindMask = mask
        }
        if case .string(let c)? = n.const { n.constBytes = Array(c.utf8) }
        if let e = n.enumValues, e.allSatisfy({ $0.stringValue != nil }) { n.enumBytes = e.map { Array($0.stringValue!.utf8) } }
        if let i = s["items"] { n.items = compile(i, root: root, refs: &refs) }
        n.allOf = (s["allOf"]?.arrayValue ?? []).map { compile($0, root: root, refs: &refs) }
        n.anyOf = s["anyOf"]?.arrayValue?.map { compile($0, root: root, refs: &refs) }
        n.oneOf = s["oneOf"]?.arrayValue?.map { compile($0, root: root, refs: &refs) }
        if let c = s["if"] {
            n.ifNode = compile(c, root: root, refs: &refs)
            n.thenNode = s["then"].map { compile($0, root: root, refs: &refs) }
            n.elseNode = s["else"].map { compile($0, root: root, refs: &refs) }
        }
        return Node(n)
    }

    func verdict(_ value: JSON) -> Verdict {
        if unsupported { return .unsure }
        if let boolean { return boolean ? .valid : .invalid }
        var result = Verdict.valid
        // Every rule must pass: the first "invalid" decides; an "unsure" taints the result.
        func rule(_ v: Verdict) -> Bool {
            if v == .invalid { result = .invalid }
            if v == .unsure { result = .unsure }
            return v == .invalid
        }
        if let ref, rule(ref.verdict(value)) { return result }
        if let types {
            let actual = value.schemaTypeName
            guard types.contains(actual) || (actual == "integer" && types.contains("number")) else { return .invalid }
        }
        if let const, const != value { return .invalid }
        if let enumValues, !enumValues.contains(value) { return .invalid }
        switch value {
        case .string(let str):
            if let minLength, str.count < minLength { return .invalid }
            if let pattern, rule(pattern.verdict(str)) { return result }
            if dateTime, !ChangeEventSchema.isDateTime(str) { return .invalid }
        case .object(let members):
            for k in required where members[k] == nil { return .invalid }
            for (k, v) in members {
                if let sub = properties[k] {
                    if rule(sub.verdict(v)) { return result }
                } else if forbidsAdditional {
                    return .invalid
                } else if let additional, rule(additional.verdict(v)) {
                    return result
                }
            }
        case .array(let elements):
            if let minItems, elements.count < minItems { return .invalid }
            if let items { for e in elements where rule(items.verdict(e)) { return result } }
        default: break
        }
        for sub in allOf where rule(sub.verdict(value)) { return result }
        if let anyOf {
            let vs = anyOf.map { $0.verdict(value) }
            if rule(vs.contains(.valid) ? .valid : vs.contains(.unsure) ? .unsure : .invalid) { return result }
        }
        if let oneOf {
            let vs = oneOf.map { $0.verdict(value) }
            let v: Verdict = vs.contains(.unsure) ? .unsure : vs.filter { $0 == .valid }.count == 1 ? .valid : .invalid
            if rule(v) { return result }
        }
        if let ifNode {
            switch ifNode.verdict(value) {
            case .valid: if let thenNode, rule(thenNode.verdict(value)) { return result }
            case .invalid: if let elseNode, rule(elseNode.verdict(value)) { return result }
            case .unsure: result = .unsure
            }
        }
        return result
    }
}

enum Verdict { case valid, invalid, unsure }

extension Node {
    static func typeName(_ kind: TokenKind) -> String {
        switch kind {
        case .null: return "null"
        case .bool: return "boolean"
        case .integer: return "integer"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// The value at token `t` as a JSON value, for `const`/`enum` (small values only).
    static func json(_ tape: Tape, _ t: Int) -> JSON? {
        let tok = tape.tokens[t]
        let text = { String(decoding: UnsafeBufferPointer(rebasing: tape.bytes[tok.range]), as: UTF8.self) }
        switch tok.kind {
        case .null: return .null
        case .bool: return .bool(tape.bytes[Int(tok.start)] == UInt8(ascii: "t"))
        case .integer, .number: return .number(text())
        case .string: return .string(text())
        case .array, .object: return nil
        }
    }

    /// The index in `propertyList` of the key at token `k`, trying `from` first: serialized
    /// events usually list keys in the same (sorted) order.
    func propertyIndex(_ tape: Tape, _ k: Int, from: Int) -> Int? {
        let n = propertyList.count
        guard n > 0 else { return nil }
        let h = tape.tokens[k].hash
        return propertyHashes.withUnsafeBufferPointer { hashes in
            var i = from < n ? from : 0
            for _ in 0..<n {
                if hashes[i] == h, tape.equals(k, propertyList[i].key) { return i }
                i += 1
                if i == n { i = 0 }
            }
            return nil
        }
    }

    /// A child's verdict without retaining it: the schema outlives every check, and retains of
    /// shared nodes from several worker threads fight over the same cache lines.
    @inline(__always)
    static func unretained(_ node: Unmanaged<Node>, _ tape: Tape, _ t: Int) -> Verdict {
        node._withUnsafeGuaranteedRef { $0.verdict(tape, t) }
    }

    /// `verdict(_:)` on the tape: the same rules, read from bytes.
    func verdict(_ tape: Tape, _ t: Int) -> Verdict {
        if unsupported { return .unsure }
        if let boolean { return boolean ? .valid : .invalid }
        var result = Verdict.valid
        func rule(_ v: Verdict) -> Bool {
            if v == .invalid { result = .invalid }
            if v == .unsure { result = .unsure }
            return v == .invalid
        }
        if let uRef, rule(Node.unretained(uRef, tape, t)) { return result }
        let tok = tape.tokens[t]
        if let kindMask, kindMask & (1 << tok.kind.rawValue) == 0 { return .invalid }
        if let constBytes {
            if tok.kind != .string || !tape.equals(t, constBytes) { return .invalid }
        } else if let const {
            guard let value = Self.json(tape, t) else { return .unsure }
            if const != value { return .invalid }
        }
        if let enumBytes {
            if tok.kind != .string || !enumBytes.contains(where: { tape.equals(t, $0) }) { return .invalid }
        } else if let enumValues {
            guard let value = Self.json(tape, t) else { return .unsure }
            if !enumValues.contains(value) { return .invalid }
        }
        switch tok.kind {
        case .string:
            // The tape holds printable ASCII only: one byte is one character.
            if let minLength, tok.range.count < minLength { return .invalid }
            if let bytePattern, !bytePattern.matches(tape.bytes, tok.range) { return .invalid }
            if dateTime, !BytePattern.isDateTime(tape.bytes, tok.range) { return .invalid }
        case .object:
            if !forbidsAdditional, additional == nil {
                // Only the listed properties matter: look each up (the parser refused repeated keys).
                for i in 0..<propertyList.count {
                    let m = tape.member(t, hash: propertyHashes[i], key: propertyList[i].key)
                    if let m {
                        if rule(Node.unretained(uProperties[i], tape, m)) { return result }
                    } else if requiredIndexes.contains(i) {
                        return .invalid
                    }
                }
            } else {
                var seen: UInt64 = 0
                var k = t + 1
                var cursor = 0
                for _ in 0..<tok.count {
                    let v = k + 1
                    if let index = propertyIndex(tape, k, from: cursor) {
                        cursor = index + 1
                        seen |= 1 << index
                        if rule(Node.unretained(uProperties[index], tape, v)) { return result }
                    } else if forbidsAdditional {
                        return .invalid
                    } else if let uAdditional, rule(Node.unretained(uAdditional, tape, v)) {
                        return result
                    }
                    k = Int(tape.tokens[v].next)
                }
                for i in requiredIndexes where seen & (1 << i) == 0 { return .invalid }
            }
            for name in requiredOther {
                var present = false
                var m = t + 1
                for _ in 0..<tok.count where !present {
                    present = tape.equals(m, name)
                    m = Int(tape.tokens[m + 1].next)
                }
                if !present { return .invalid }
            }
        case .array:
            if let minItems, Int(tok.count) < minItems { return .invalid }
            if let uItems {
                var e = t + 1
                for _ in 0..<tok.count {
                    if rule(Node.unretained(uItems, tape, e)) { return result }
                    e = Int(tape.tokens[e].next)
                }
            }
        default: break
        }
        for sub in uAllOf where rule(Node.unretained(sub, tape, t)) { return result }
        if let anyOf {
            let vs = anyOf.map { $0.verdict(tape, t) }
            if rule(vs.contains(.valid) ? .valid : vs.contains(.unsure) ? .unsure : .invalid) { return result }
        }
        if let oneOf {
            let vs = oneOf.map { $0.verdict(tape, t) }
            let v: Verdict = vs.contains(.unsure) ? .unsure : vs.filter { $0 == .valid }.count == 1 ? .valid : .invalid
            if rule(v) { return result }
        }
        if let uIf {
            switch Node.unretained(uIf, tape, t) {
            case .valid: if let uThen, rule(Node.unretained(uThen, tape, t)) { return result }
            case .invalid: if let uElse, rule(Node.unretained(uElse, tape, t)) { return result }
            case .unsure: result = .unsure
            }
        }
        return result
    }
}

/// A `pattern` as a POSIX extended regex (for the subset both dialects read alike), or a
/// prefix rule for `^(?!LITERAL).+$`. Patterns outside that subset are not compiled.
final class Pattern: @unchecked Sendable {
    // @unchecked: the regex_t is compiled once and only read; glibc's regexec is thread-safe.
    private var regex = regex_t()
    private let forbiddenPrefix: String?
    private let compiled: Bool

    init?(_ pattern: String) {
        if let m = pattern.wholeMatch(of: /\^\(\?!([A-Za-z0-9#_:-]+)\)\.\+\$/) {
            forbiddenPrefix = String(m.1)
            compiled = false
            return
        }
        forbiddenPrefix = nil
        // Only anchored, plain constructs: no lookaround, backreferences, lazy or possessive
        // quantifiers, and no escapes but \d and \. (ERE has no \d: it becomes [0-9]).
        guard !pattern.contains("(?"), !pattern.contains("*?"), !pattern.contains("+?"), !pattern.contains("}?"),
            pattern.hasPrefix("^"), pattern.hasSuffix("$")
        else { return nil }
        var ere = ""
        var escaped = false
        for c in pattern {
            if escaped {
                switch c {
                case "d": ere += "[0-9]"
                case ".": ere += "\\."
                default: return nil
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                ere.append(c)
            }
        }
        guard !escaped, regcomp(&regex, ere, REG_EXTENDED | REG_NOSUB) == 0 else { return nil }
        compiled = true
    }

    deinit { if compiled { regfree(&regex) } }

    /// Control characters (newlines included) and non-ASCII text are where the regex dialects
    /// (bytes vs characters, `.` and `$` around newlines) may differ: those are "unsure".
    func verdict(_ s: String) -> Verdict {
        guard s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x80 }) else { return .unsure }
        if let forbiddenPrefix { return !s.isEmpty && !s.hasPrefix(forbiddenPrefix) ? .valid : .invalid }
        return regexec(&regex, s, 0, nil, 0) == 0 ? .valid : .invalid
    }
}

