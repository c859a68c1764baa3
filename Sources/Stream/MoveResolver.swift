import AWSWire
import Foundation
import JSON

/// Decides, for a REMOVE, whether it is the departing half of a loader move, by looking the
/// hem up in `hem-index`. The loader's move is one transaction (Delete old, Put new with
/// `previous_vup_id`), so after it the hem is found under another vup_id. The index is
/// eventually consistent: a lookup that finds nothing while the record is younger than
/// `grace` seconds is made again once it is that old.
///
/// What a lookup cannot decide: the hem moved again, or was deleted, between the move and the
/// REMOVE being read (the lookup sees the newest state only). A hem deleted in that time makes
/// the move's REMOVE a `hem.deleted` too; a hem found under another vup_id without
/// `previous_vup_id` (another writer) goes to the detector's in-memory pairing.
public struct MoveResolver: Sendable {
    public let client: AWSClient
    public let table: String
    public let index: String
    public let grace: Double
    /// Called once per `Query` sent (each costs read capacity on the index): the lookups metric.
    let queried: @Sendable () -> Void

    public init(
        client: AWSClient, table: String, index: String = "hem-index", grace: Double = 2,
        queried: @escaping @Sendable () -> Void = {}
    ) {
        self.client = client
        self.table = table
        self.index = index
        self.grace = grace
        self.queried = queried
    }

    /// True when the REMOVE of (hem, vup) is a loader move's departing half.
    public func isDepartingHalf(hem: String, vup: String, recordTime: Double) async throws -> Bool {
        try await departingVups(hem: hem, among: [vup], recordTime: recordTime).contains(vup)
    }

    /// Which of `vups` (REMOVEs of one hem, e.g. from one page) are a loader move's departing
    /// half: one lookup answers them all. `recordTime` is the youngest record's.
    public func departingVups(hem: String, among vups: Set<String>, recordTime: Double) async throws -> Set<String> {
        let found = try await movedAway(hem: hem, from: vups)
        if found.count == vups.count { return found }
        // ApproximateCreationDateTime is whole seconds: count the grace from the end of that second.
        let wait = recordTime + 1 + grace - Date().timeIntervalSince1970
        guard wait > 0 else { return found }
        try await Task.sleep(for: .milliseconds(Int(min(wait, grace + 1) * 1000)))
        return try await movedAway(hem: hem, from: vups)
    }

    /// The vup_ids among `vups` that the hem has moved away from: it is found under another
    /// vup_id in an item the loader wrote for a move (one with `previous_vup_id`).
    func movedAway(hem: String, from vups: Set<String>) async throws -> Set<String> {
        queried()
        let answer = try await client.dynamoDB(
            "Query",
            [
                "TableName": .string(table), "IndexName": .string(index),
                "KeyConditionExpression": "hem = :h",
                "ExpressionAttributeValues": [":h": ["S": .string(hem)]],
                "ProjectionExpression": "vup_id, previous_vup_id",
            ])
        var movedTo: [String] = []
        for item in answer["Items"]?.arrayValue ?? [] {
            guard let other = item["vup_id"]?["S"]?.stringValue, item["previous_vup_id"]?["S"]?.stringValue != nil else {
                continue
            }
            movedTo.append(other)
        }
        return vups.filter { vup in movedTo.contains { $0 != vup } }
    }
}
