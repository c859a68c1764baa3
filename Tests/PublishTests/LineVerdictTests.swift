import Events
import JSON
import TestSupport
import XCTest

@testable import Publish

/// What `publish` decides for a line (the PII guard, the fused contract check, the tape, the
/// canonical validator) is exactly what the canonical validator and the PII guard say, over the
/// examples and ~30,000 lines one edit away from them; a line taken is keyed by its hem.
final class LineVerdictTests: XCTestCase {
    func testPublish_acceptsExactlyWhatTheValidatorAccepts_andKeysByHem() throws {
        let schema = try ChangeEventSchema.load()
        var scanner: EventScanner? = EventScanner(schema: CompiledSchema(schema.root))
        var (checked, taken, fast) = (0, 0, 0)
        for line in EventMutations.lines() {
            checked += 1
            let item = line.withUnsafeBufferPointer { all in
                NDJSONPublisher.check(all, 0..<all.count, tag: 7, scanner: &scanner, validate: schema.validate)
            }
            let event = (try? JSON.parse(line)).flatMap { schema.validate($0).isEmpty ? $0 : nil }
            let key = event.flatMap { $0["data"]?["hem"]?.stringValue ?? $0["subject"]?.stringValue }
            let expected = PIIGuard.containsEmailAddress(line) ? nil : key
            let got: String?
            switch item {
            case .fast(let range, let fields, _):
                XCTAssertEqual(range, 0..<line.count)
                got = String(decoding: line[fields.key], as: UTF8.self)
                fast += 1
            case .event(let k, let value, _, _):
                XCTAssertEqual(value, line)
                got = String(decoding: k, as: UTF8.self)
            case .rejected(let why, _):
                got = nil
                XCTAssertFalse(
                    PIIGuard.containsEmailAddress(Array(why.utf8)), "a rejection echoes an email-shaped value")
            case .report: got = nil
            }
            XCTAssertEqual(got, expected, EventMutations.redacted(line))
            if got != nil { taken += 1 }
        }
        XCTAssertGreaterThan(checked, 20_000)
        XCTAssertGreaterThan(fast, 500)
        XCTAssertGreaterThan(taken, fast, "lines the fast paths leave are still taken when valid")
    }
}
