import Foundation
import Kafka
import Outlet
import Synchronization
import TestSupport
import XCTest

/// The outlet both `publish` and `stream` send through, against librdkafka's mock cluster: what
/// reaches the topics (keys, headers, no PII) and which tags come back acknowledged.
final class KafkaOutletTests: XCTestCase {
    func testOutlet_sendsKeyedEventsWithHeaders_deadLettersWithout_andNeverAnAddress() async throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("events")
        try cluster.createTopic("dead")
        var config = KafkaConfiguration.producerDefaults()
        config.set("bootstrap.servers", cluster.bootstrapServers)
        let acknowledged = Mutex<[UInt64]>([])
        let outlet = try KafkaOutlet(topic: "events", dlqTopic: "dead", configuration: config) { tag, error in
            if error == nil { acknowledged.withLock { $0.append(tag) } }
        }
        let hem = "0123456789abcdef0123456789abcdef"
        let event = Array(#"{"type":"hem.updated","subject":"\#(hem)"}"#.utf8)
        let carrying = Array(#"{"type":"hem.updated","data":{"after":"kim.roe@example.invalid"}}"#.utf8)
        let deadLetter = Array(#"{"shard_id":"s-1","error":"cannot read"}"#.utf8)

        XCTAssertEqual(
            try outlet.send(
                key: Array(hem.utf8), value: event, headers: EventHeaders(id: "e1", type: "hem.updated"), tag: 1,
                toDLQ: false),
            .enqueued)
        XCTAssertEqual(try outlet.send(key: [], value: deadLetter, headers: nil, tag: 2, toDLQ: true), .enqueued)
        XCTAssertEqual(
            try outlet.send(
                key: Array(hem.utf8), value: carrying, headers: EventHeaders(id: "e3", type: "hem.updated"), tag: 3,
                toDLQ: false),
            .blockedPII, "the PII guard stops it at the outlet")
        XCTAssertEqual(try outlet.send(key: [], value: carrying, headers: nil, tag: 4, toDLQ: true), .blockedPII)
        let flushed = await outlet.flush(timeout: .seconds(30))
        withExtendedLifetime((event, deadLetter)) {}  // sent without a copy: alive until acknowledged
        XCTAssertTrue(flushed)
        XCTAssertEqual(acknowledged.withLock { $0.sorted() }, [1, 2], "reports come back by tag, only for what was sent")

        let events = try KafkaTopicReader.readAll(brokers: cluster.bootstrapServers, topic: "events")
        XCTAssertEqual(events.count, 1)
        XCTAssertEqual(events.first?.key, Array(hem.utf8))
        XCTAssertEqual(events.first?.value, event)
        XCTAssertEqual(events.first?.header("content-type"), "application/cloudevents+json")
        XCTAssertEqual(events.first?.header("ce_specversion"), "1.0")
        XCTAssertEqual(events.first?.header("ce_id"), "e1")
        XCTAssertEqual(events.first?.header("ce_type"), "hem.updated")
        let dead = try KafkaTopicReader.readAll(brokers: cluster.bootstrapServers, topic: "dead")
        XCTAssertEqual(dead.map(\.value), [deadLetter])
        XCTAssertEqual(dead.first?.headers.count, 0, "dead letters carry no event headers")
        XCTAssertFalse((events + dead).contains { $0.value.contains(UInt8(ascii: "@")) }, "no address reached Kafka")
        outlet.close(timeout: .seconds(5))
    }
}
