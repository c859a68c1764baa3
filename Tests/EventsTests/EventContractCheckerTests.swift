import JSON
import TestSupport
import XCTest

@testable import Events

/// The fused contract check may only ever accept what the canonical validator (Events'
/// ChangeEventSchema) accepts, must find the same fields as the tape path, and must follow the
/// schema or turn itself off when the schema changes.
final class EventContractCheckerTests: XCTestCase {
    func canonical(_ schema: ChangeEventSchema, _ line: [UInt8]) -> JSON? {
        guard let event = try? JSON.parse(line), schema.validate(event).isEmpty else { return nil }
        return event
    }

    func text(_ line: [UInt8], _ r: Range<Int>?) -> String? { r.map { String(decoding: line[$0], as: UTF8.self) } }

    func testChecker_isBuiltForTheShippedSchema_andTakesEveryExample() throws {
        let schema = try ChangeEventSchema.load()
        let compiled = CompiledSchema(schema.root)
        let checker = try XCTUnwrap(compiled.contract, "the fused check does not know the shipped schema's shape")
        var scanner = EventScanner(schema: compiled)
        XCTAssertEqual(EventMutations.examples.count, 7)
        for example in EventMutations.examples {
            let line = Array(example.serialized().utf8)
            let fused = try XCTUnwrap(line.withUnsafeBufferPointer { checker.check($0) }, "\(example["type"]!)")
            let tape = line.withUnsafeBufferPointer { scanner.scanTape($0) }
            XCTAssertEqual(fused, tape)
            let key = example["data"]?["hem"]?.stringValue ?? example["subject"]?.stringValue
            XCTAssertEqual(text(line, fused.key), key)
            XCTAssertEqual(text(line, fused.id), example["id"]?.stringValue)
            XCTAssertEqual(text(line, fused.type), example["type"]?.stringValue)
            XCTAssertEqual(text(line, fused.specversion), example["specversion"]?.stringValue)
        }
    }

    /// The differential test: the examples and ~30,000 lines one edit away from them.
    func testChecker_neverAcceptsWhatTheValidatorRejects() throws {
        let schema = try ChangeEventSchema.load()
        let compiled = CompiledSchema(schema.root)
        let checker = try XCTUnwrap(compiled.contract)
        var scanner = EventScanner(schema: compiled)
        var (checked, accepted, valid) = (0, 0, 0)
        for line in EventMutations.lines() {
            checked += 1
            let fused = line.withUnsafeBufferPointer { checker.check($0) }
            let event = canonical(schema, line)
            if event != nil { valid += 1 }
            guard let fused else {
                // Plain compact text (what the writer prints) is the fused path's to take.
                if let event, !line.contains(UInt8(ascii: "\\")), line.allSatisfy({ $0 >= 0x20 && $0 < 0x80 }),
                    event.serializedBytes() == line
                {
                    XCTFail("a plain valid event left to the slower paths: \(EventMutations.redacted(line))")
                }
                continue
            }
            accepted += 1
            guard let event else {
                XCTFail("accepted an event the validator rejects: \(EventMutations.redacted(line))")
                continue
            }
            XCTAssertEqual(text(line, fused.key), event["data"]?["hem"]?.stringValue ?? event["subject"]?.stringValue)
            XCTAssertEqual(text(line, fused.id), event["id"]?.stringValue)
            XCTAssertEqual(text(line, fused.type), event["type"]?.stringValue)
            XCTAssertEqual(text(line, fused.specversion), event["specversion"]?.stringValue)
            XCTAssertEqual(fused, line.withUnsafeBufferPointer { scanner.scanTape($0) })
        }
        XCTAssertGreaterThan(checked, 20_000)
        XCTAssertGreaterThan(accepted, 500, "the fused path does take valid events")
        print("fused contract check: \(checked) lines, \(valid) valid, \(accepted) accepted by the fused path")
    }

    /// A schema change either turns the fused check off (nil) or is followed: over a sample of
    /// the corpus, what it accepts under the changed schema, that schema's validator accepts.
    func testChecker_followsEverySchemaEditOrTurnsOff() throws {
        let root = try ChangeEventSchema.load().root
        let sample =
            EventMutations.lines().enumerated().filter { $0.offset % 97 == 0 }.map(\.element)
            + EventMutations.examples.map { Array($0.serialized().utf8) }
        var edits: [(String, JSON)] = []
        func walk(_ node: JSON, _ path: [String], isMap: Bool) {
            switch node {
            case .object(let members):
                if !isMap {
                    // Rules the canonical validator applies at any node, that no example passes.
                    edits.append(("const at \(path)", set(root, path, node, ["const": "zzz"])))
                    edits.append(("required zzz at \(path)", set(root, path, node, ["required": ["zzz"]])))
                    if let req = members["required"]?.arrayValue {
                        for i in req.indices {
                            var fewer = req
                            fewer.remove(at: i)
                            edits.append(
                                ("required less one at \(path)", set(root, path + ["required"], nil, .array(fewer))))
                        }
                    }
                    if let values = members["enum"]?.arrayValue {
                        edits.append(
                            (
                                "enum less one at \(path)",
                                set(root, path + ["enum"], nil, .array(Array(values.dropFirst())))
                            ))
                    }
                    if members["pattern"] != nil {
                        edits.append(("pattern at \(path)", set(root, path + ["pattern"], nil, "^x$")))
                    }
                    if members["const"] != nil {
                        edits.append(("const at \(path)", set(root, path + ["const"], nil, "x")))
                    }
                    if members["minLength"] != nil {
                        edits.append(("minLength at \(path)", set(root, path + ["minLength"], nil, 100)))
                    }
                    if members["type"] != nil {
                        edits.append(("type at \(path)", set(root, path + ["type"], nil, "string")))
                    }
                }
                for (k, v) in members {
                    walk(v, path + [k], isMap: !isMap && (k == "properties" || k == "$defs"))
                }
            case .array(let items):
                for (i, v) in items.enumerated() { walk(v, path + ["\(i)"], isMap: false) }
            default: break
            }
        }
        walk(root, [], isMap: false)
        XCTAssertGreaterThan(edits.count, 60)
        var followed = 0
        for (name, edited) in edits {
            guard let checker = EventContractChecker(edited) else { continue }
            followed += 1
            let schema = ChangeEventSchema(root: edited)
            for line in sample where line.withUnsafeBufferPointer({ checker.check($0) }) != nil {
                XCTAssertNotNil(canonical(schema, line), "\(name): accepted \(EventMutations.redacted(line))")
            }
        }
        XCTAssertGreaterThan(followed, 10, "leaf rules are read from the schema, not fixed in code")
    }

    /// `node` (at `path` in `root`) merged with `extra`, or the value at `path` replaced by `value`.
    func set(_ root: JSON, _ path: [String], _ node: JSON?, _ value: JSON) -> JSON {
        guard let head = path.first else {
            if case .object(let m)? = node, case .object(let extra) = value {
                return .object(m.merging(extra) { _, b in b })
            }
            return value
        }
        let rest = Array(path.dropFirst())
        switch root {
        case .object(var members):
            members[head] = set(members[head] ?? .null, rest, node, value)
            return .object(members)
        case .array(var items):
            let i = Int(head)!
            items[i] = set(items[i], rest, node, value)
            return .array(items)
        default: return root
        }
    }
}
