import Events
import Foundation
import JSON
import Kafka
import Outlet
import Stream
import TestSupport
import XCTest

/// The stream reader's pipeline (detector → Kafka → checkpoint) against librdkafka's mock
/// cluster: where a shard's checkpoint may move once Kafka has acknowledged what was sent.
final class EventPipelineTests: XCTestCase {
    static let shard = "shardId-00000001700000000000-00000001"

    static func record(
        _ name: String, seq: String, hem: String, old: String? = nil, new: String? = nil
    ) -> StreamRecord {
        func image(_ domain: String) -> JSON {
            ["hem": ["S": .string(hem)], "vup_id": ["S": "VUP-1"], "domain": ["S": .string(domain)]]
        }
        var d: [String: JSON] = [
            "SequenceNumber": .string(seq), "ApproximateCreationDateTime": .int(1_764_460_800),
            "Keys": ["hem": ["S": .string(hem)], "vup_id": ["S": "VUP-1"]],
        ]
        if let old { d["OldImage"] = image(old) }
        if let new { d["NewImage"] = image(new) }
        return StreamRecord(["eventName": .string(name), "dynamodb": .object(d)])
    }

    static func hem(_ n: Int) -> String { String(repeating: "a", count: 56) + String(format: "%08x", n) }

    /// Two records a server gave one sequence number (moto does under concurrent writes): the
    /// checkpoint stays before that number until both are settled, though the first one's event
    /// is acknowledged; then it moves, and every event is in the topic.
    func testCheckpoint_waitsForEveryRecordOfOneSequenceNumber_thenMovesPastThem() throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("events")
        var config = KafkaConfiguration.producerDefaults()
        config.set("bootstrap.servers", cluster.bootstrapServers)
        let detector = ChangeDetector(
            region: "us-east-1", table: "vector_emails_operational", fields: try FieldClassification.load(), window: 30)
        let pipeline = EventPipeline(detector: detector, metrics: StreamMetrics(), hasDLQ: false) { message in
            XCTFail("unexpected report: \(message)")
        }
        let outlet = try KafkaOutlet(topic: "events", configuration: config) { [weak pipeline] tag, error in
            pipeline?.delivered(tag: tag, error: error.map { "\($0)" })
        }
        pipeline.attach(outlet)
        defer { outlet.close(timeout: .seconds(5)) }

        // 1: a MODIFY (its event goes out); 2: a MODIFY (likewise) and an INSERT of another hem
        // without previous_vup_id, which waits in the pairing window for a partner.
        let page = [
            Self.record("MODIFY", seq: "1", hem: Self.hem(1), old: "a.invalid", new: "b.invalid"),
            Self.record("MODIFY", seq: "2", hem: Self.hem(2), old: "a.invalid", new: "b.invalid"),
            Self.record("INSERT", seq: "2", hem: Self.hem(3), new: "a.invalid"),
        ]
        try pipeline.process(page, shardID: Self.shard, streamARN: "arn:test", departing: [])
        try waitUntil("both MODIFYs' events are acknowledged", timeout: 30) { pipeline.inFlight == 0 }
        XCTAssertEqual(pipeline.safeCheckpoint(shardID: Self.shard), "1", "record 2's INSERT is still held")
        XCTAssertFalse(pipeline.isSettled(shardID: Self.shard))

        try pipeline.flushDetector()
        try waitUntil("the settled INSERT's event is acknowledged", timeout: 30) { pipeline.inFlight == 0 }
        XCTAssertEqual(pipeline.safeCheckpoint(shardID: Self.shard), "2")
        XCTAssertTrue(pipeline.isSettled(shardID: Self.shard))
        let events = try KafkaTopicReader.readAll(brokers: cluster.bootstrapServers, topic: "events")
        XCTAssertEqual(
            events.compactMap { $0.header("ce_type") }.sorted(), ["hem.created", "hem.updated", "hem.updated"])
    }
}
