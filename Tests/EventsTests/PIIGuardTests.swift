import Foundation
import XCTest

@testable import Events

final class PIIGuardTests: XCTestCase {
    func testEmailShapedStrings_areFound_anywhereInTheBytes() {
        for text in [
            #"{"a":"x@example.invalid"}"#, #"{"source":"crm user.name+tag@mail.example.co.uk"}"#,
            "a@b.cd", #"["first","second.person@sub-domain.example.org"]"#,
        ] {
            XCTAssertTrue(PIIGuard.containsEmailAddress(Array(text.utf8)), text)
        }
    }

    func testKeysHashesAndTimestamps_passTheGuard() throws {
        for text in [
            #"{"vup_id":"UNRESOLVED#0a","hem":"0123456789abcdef0123456789abcdef"}"#,
            #"{"time":"2026-11-29T18:00:00Z","domain":"example.invalid","note":"@ at start","x":"a@b"}"#,
            "user@localhost", "a@b.c", "x@1.23", "",
        ] {
            XCTAssertFalse(PIIGuard.containsEmailAddress(Array(text.utf8)), text)
        }
        for name in ["hem.created", "hem.updated", "hem.resolved", "stream.gap"] {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("schemas/events/examples/\(name).json")
            XCTAssertFalse(PIIGuard.containsEmailAddress(Array(try Data(contentsOf: url))), name)
        }
    }
}
