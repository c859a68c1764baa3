import Foundation
import JSON

/// Valid change events for tests: the examples in schemas/events/examples, with hem, subject
/// and id varied so every event is distinct and keys spread over partitions.
public enum EventFixtures {
    /// The repository root (this file is Sources/TestSupport/EventFixtures.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The hem examples (not stream.gap) as compact JSON text, with the hem and id they use.
    public static let examples: [(text: String, hem: String, id: String)] = {
        let dir = root.appendingPathComponent("schemas/events/examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.sorted() ?? []
        return names.filter { $0.hasPrefix("hem.") && $0.hasSuffix(".json") }.map { name in
            let event = try! JSON.parse(try! String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8))
            return (event.serialized(), event["data"]!["hem"]!.stringValue!, event["id"]!.stringValue!)
        }
    }()

    public static func hex(_ n: Int, width: Int) -> String {
        let s = String(n, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    /// Event number `i` for hem number `key`: an example's text with hem and id replaced.
    public static func event(_ i: Int, key: Int) -> (line: String, hem: String, id: String) {
        let e = examples[i % examples.count]
        let hem = "feed" + hex(key, width: 28)
        let id = "0" + hex(i, width: 63)
        return (e.text.replacingOccurrences(of: e.hem, with: hem).replacingOccurrences(of: e.id, with: id), hem, id)
    }
}
