import Events
import JSON
import TestSupport
import XCTest

/// The publish fast path may only ever accept what the canonical validator (Events'
/// ChangeEventSchema) accepts. Checked over the examples and thousands of mutations of them.
final class CompiledSchemaTests: XCTestCase {
    func examples() throws -> [JSON] {
        try (0..<6).map { try JSON.parse(EventFixtures.event($0, key: $0).line) }
    }

    func testFastPaths_neverAcceptWhatTheCanonicalValidatorRejects() throws {
        let schema = try ChangeEventSchema.load()
        let compiled = CompiledSchema(schema.root)
        var scanner = EventScanner(schema: compiled)
        var checked = 0
        var fastAccepted = 0
        for example in try examples() {
            for event in EventMutations.mutations(example) {
                let line = Array(event.serialized().utf8)
                let valid = schema.validate(try JSON.parse(line)).isEmpty
                let byTree = compiled.certainlyValid(event)
                let byBytes = line.withUnsafeBufferPointer { scanner.scan($0) } != nil
                if byTree { XCTAssertTrue(valid, "tree fast path accepted an invalid event: \(event)") }
                if byBytes { XCTAssertTrue(valid, "byte fast path accepted an invalid event: \(event)") }
                if byBytes { fastAccepted += 1 }
                let plain = line.allSatisfy { $0 >= 0x20 && $0 < 0x80 && $0 != UInt8(ascii: "\\") }
                if valid, plain { XCTAssertTrue(byBytes, "plain valid event left to the slow path: \(event)") }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 5000)
        XCTAssertGreaterThan(fastAccepted, 100, "the fast path does take valid events")
    }

    func testScanner_acceptsTheExamplesAndFindsKeyAndHeaderFields() throws {
        let schema = try ChangeEventSchema.load()
        var scanner = EventScanner(schema: CompiledSchema(schema.root))
        for i in 0..<6 {
            let e = EventFixtures.event(i, key: 100 + i)
            let line = Array(e.line.utf8)
            let fields = try XCTUnwrap(line.withUnsafeBufferPointer { scanner.scan($0) }, e.line)
            XCTAssertEqual(String(decoding: line[fields.key], as: UTF8.self), e.hem)
            XCTAssertEqual(fields.id.map { String(decoding: line[$0], as: UTF8.self) }, e.id)
            XCTAssertEqual(
                fields.type.map { String(decoding: line[$0], as: UTF8.self) },
                try JSON.parse(e.line)["type"]?.stringValue)
        }
    }

    func testScanner_leavesUnusualLinesToTheCanonicalPath() throws {
        let schema = try ChangeEventSchema.load()
        var scanner = EventScanner(schema: CompiledSchema(schema.root))
        let good = EventFixtures.event(0, key: 1).line
        let unusual = [
            // A repeated key: which one counts is the canonical parser's business.
            good.replacingOccurrences(of: "{\"data\"", with: "{\"type\":\"hem.deleted\",\"data\""),
            good.replacingOccurrences(of: "example.invalid", with: "example\\u002einvalid"),  // escape
            good + " x", "[" + good + "]", String(good.dropLast()), "", "{}",
        ]
        for line in unusual {
            let bytes = Array(line.utf8)
            XCTAssertNil(bytes.withUnsafeBufferPointer { scanner.scan($0) }, line)
        }
    }
}
