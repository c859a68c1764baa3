import AWSWire
import Foundation
import JSON
import TestSupport

/// A synthetic export for the load tests: rows sorted by hem, emails at example.invalid only.
struct ExportFixture {
    struct Row: Equatable {
        var hem: String
        var vup: String?
        var email: String?
        var domain: String?
        var updatedAt: String
    }

    var rows: [Row]

    /// `count` rows; every third one unresolved (empty vup_id).
    static func make(count: Int, salt: String = "a") -> ExportFixture {
        var rows: [Row] = []
        for i in 0..<count {
            let hem = hexHash("\(salt)-\(i)")
            rows.append(
                Row(
                    hem: hem, vup: i % 3 == 0 ? nil : "VUP-\(i % 97)", email: "user\(i)@example.invalid",
                    domain: i % 5 == 0 ? nil : "example.invalid", updatedAt: "2026-11-24T06:00:00Z"))
        }
        return ExportFixture(rows: rows.sorted { $0.hem < $1.hem })
    }

    /// The next day's export: some unresolved resolved, some reassigned, some resolved ones
    /// unresolved again, some attributes changed, some hems gone, some new.
    func nextDay() -> (export: ExportFixture, changedRows: Int, moves: Int) {
        var next: [Row] = []
        var changed = 0
        var moves = 0
        for (i, row) in rows.enumerated() {
            var r = row
            switch i % 10 {
            case 0:
                if r.vup == nil {
                    r.vup = "VUP-NEW-\(i)"
                    moves += 1
                } else {
                    r.vup = "VUP-MOVED-\(i)"
                    moves += 1
                }
            case 1:
                if r.vup != nil {
                    r.vup = nil
                    moves += 1
                } else {
                    r.domain = "changed.invalid"
                    changed += 1
                }
            case 2:
                r.updatedAt = "2026-11-25T06:00:00Z"
                r.email = "changed\(i)@example.invalid"
                changed += 1
            case 3:
                changed += 1
                continue  // removed
            default: break
            }
            next.append(r)
        }
        for i in 0..<(rows.count / 10) {
            next.append(
                Row(
                    hem: Self.hexHash("new-\(i)"), vup: "VUP-ADDED", email: "new\(i)@example.invalid", domain: nil,
                    updatedAt: "2026-11-25T06:00:00Z"))
            changed += 1
        }
        return (ExportFixture(rows: next.sorted { $0.hem < $1.hem }), changed, moves)
    }

    var csv: String {
        var text = "hem,vup_id,email,domain,updated_at\n"
        for r in rows {
            text += "\(r.hem),\(r.vup ?? ""),\(r.email ?? ""),\(r.domain ?? ""),\(r.updatedAt)\n"
        }
        return text
    }

    func write(to url: URL) throws { try csv.write(to: url, atomically: true, encoding: .utf8) }

    /// The table the export should produce: hem → attributes (bookkeeping left out).
    var expectedItems: [String: [String: String]] {
        var items: [String: [String: String]] = [:]
        for r in rows {
            var item = ["hem": r.hem, "vup_id": r.vup ?? "UNRESOLVED#" + r.hem.prefix(2), "updated_at": r.updatedAt]
            item["email"] = r.email
            item["domain"] = r.domain
            items[r.hem] = item
        }
        return items
    }

    var emails: [String] { rows.compactMap(\.email) }

    static func hexHash(_ text: String) -> String {
        // FNV-1a, widened to 32 hex chars: deterministic, well spread, no crypto needed.
        var a: UInt64 = 0xcbf2_9ce4_8422_2325
        var b: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 &+ a
        }
        return String(format: "%016llx%016llx", a, b)
    }
}

/// Reads a whole table back: hem → attributes (minus bookkeeping); also counts items per hem.
func scanTable(_ table: String, environment: [String: String]) throws -> (
    items: [String: [String: String]], itemsPerHem: [String: Int], raw: [JSON]
) {
    try runAsync {
        let client = AWSClient(configuration: try AWSConfiguration.resolve(region: nil, environment: environment))
        var request: [String: JSON] = ["TableName": .string(table)]
        var raw: [JSON] = []
        repeat {
            let page = try await client.dynamoDB("Scan", .object(request))
            raw += page["Items"]?.arrayValue ?? []
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        } while request["ExclusiveStartKey"] != nil
        var items: [String: [String: String]] = [:]
        var perHem: [String: Int] = [:]
        for item in raw {
            var attributes: [String: String] = [:]
            for (name, value) in item.objectValue ?? [:]
            where !["previous_vup_id", "load_id", "loaded_at"].contains(name) {
                attributes[name] = value["S"]?.stringValue
            }
            let hem = attributes["hem"] ?? ""
            items[hem] = attributes
            perHem[hem, default: 0] += 1
        }
        return (items, perHem, raw)
    }
}
