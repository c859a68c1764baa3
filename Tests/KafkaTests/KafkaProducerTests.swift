import Events
import Foundation
import JSON
import Kafka
import Publish
import Synchronization
import TestSupport
import XCTest

/// Against librdkafka's mock cluster in this process, over real TCP.
final class KafkaProducerTests: XCTestCase {
    func config(_ cluster: KafkaMockCluster) -> KafkaConfiguration {
        var c = KafkaConfiguration.producerDefaults()
        c.set("bootstrap.servers", cluster.bootstrapServers)
        return c
    }

    func testPublish_whenAllValid_everyEventIsAcknowledgedAndReadBackWithKeyAndHeaders() throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try cluster.createTopic("events", partitions: 4)
        let events = (0..<600).map { EventFixtures.event($0, key: $0 % 37) }
        let file = try TemporaryFile(
            name: "events.ndjson", contents: Data(events.map { $0.line + "\n" }.joined().utf8))
        let schema = try ChangeEventSchema.load()
        let reports = Mutex<[String]>([])
        let publisher = try NDJSONPublisher(
            topic: "events", configuration: config(cluster), sources: [file.path],
            validate: { schema.validate($0) }, fastPath: CompiledSchema(schema.root),
            report: { line in reports.withLock { $0.append(line) } })
        let summary = publisher.run(flushTimeout: .seconds(60))

        XCTAssertEqual(summary, .init(read: 600, published: 600, rejected: 0, failed: 0), reports.withLock { $0 }.description)
        let records = try KafkaTopicReader.readAll(brokers: cluster.bootstrapServers, topic: "events")
        XCTAssertEqual(records.count, 600)
        let byID = Dictionary(uniqueKeysWithValues: events.map { ($0.id, $0) })
        for r in records {
            let id = try XCTUnwrap(r.header("ce_id"))
            let sent = try XCTUnwrap(byID[id], "unknown ce_id \(id)")
            XCTAssertEqual(r.key.map { String(decoding: $0, as: UTF8.self) }, sent.hem)
            XCTAssertEqual(String(decoding: r.value, as: UTF8.self), sent.line)
            XCTAssertEqual(r.header("content-type"), "application/cloudevents+json")
            XCTAssertEqual(r.header("ce_specversion"), "1.0")
            XCTAssertEqual(r.header("ce_type"), try JSON.parse(sent.line)["type"]?.stringValue)
        }
        XCTAssertEqual(Set(records.compactMap { $0.header("ce_id") }).count, 600, "no duplicates")
        // Keyed by hem: all events of one hem share one partition.
        let partitionsPerKey = Dictionary(grouping: records, by: { $0.key ?? [] }).mapValues { Set($0.map(\.partition)) }
        XCTAssertTrue(partitionsPerKey.values.allSatisfy { $0.count == 1 })
    }

    func testPublish_whenLinesAreBad_rejectsThemByLineAndPublishesTheRest() throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("events")
        var invalid = try JSON.parse(EventFixtures.event(2, key: 2).line)
        if case .object(var members) = invalid {
            members["type"] = "hem.exploded"
            invalid = .object(members)
        }
        // Schema-valid but for an address in a member: the PII guard rejects it before the schema.
        var carrying = try JSON.parse(EventFixtures.event(2, key: 2).line)
        if case .object(var members) = carrying, case .object(var data)? = members["data"] {
            data["email"] = "someone@example.invalid"
            members["data"] = .object(data)
            carrying = .object(members)
        }
        let lines = [
            EventFixtures.event(0, key: 0).line, "not json at all", "", EventFixtures.event(1, key: 1).line,
            invalid.serialized(), "{\"specversion\":\"1.0\"", carrying.serialized(),
        ]
        let file = try TemporaryFile(name: "mixed.ndjson", contents: Data(lines.joined(separator: "\n").utf8))
        let schema = try ChangeEventSchema.load()
        let reports = Mutex<[String]>([])
        let publisher = try NDJSONPublisher(
            topic: "events", configuration: config(cluster), sources: [file.path],
            validate: { schema.validate($0) }, report: { line in reports.withLock { $0.append(line) } })
        let summary = publisher.run(flushTimeout: .seconds(30))

        XCTAssertEqual(summary, .init(read: 6, published: 2, rejected: 4, failed: 0))
        let lines2 = reports.withLock { $0 }
        XCTAssertEqual(lines2.count, 4)
        XCTAssertTrue(lines2[0].hasPrefix("\(file.path):2: rejected: not JSON"), lines2[0])
        XCTAssertTrue(lines2[1].hasPrefix("\(file.path):5: rejected: "), lines2[1])
        XCTAssertTrue(lines2[1].contains("type"), lines2[1])
        XCTAssertTrue(lines2[2].hasPrefix("\(file.path):6: rejected: not JSON"), lines2[2])
        XCTAssertTrue(lines2[3].hasPrefix("\(file.path):7: rejected: holds an email-shaped value"), lines2[3])
        XCTAssertFalse(lines2.joined().contains("@example.invalid"), "no email in reports")
        XCTAssertEqual(try KafkaTopicReader.readAll(brokers: cluster.bootstrapServers, topic: "events").count, 2)
    }

    func testProducer_whenBrokersGoDownAndComeBack_losesNothingAndKeepsPerKeyOrder() throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try cluster.createTopic("orders", partitions: 6)
        let acked = Atomic<Int>(0)
        let failures = Mutex<[KafkaError]>([])
        let producer = try KafkaProducer(topic: "orders", configuration: config(cluster)) { report in
            if let e = report.error { failures.withLock { $0.append(e) } } else { acked.add(1, ordering: .relaxed) }
        }
        let total = 6000
        func send(_ range: Range<Int>) throws {
            for i in range {
                let message = KafkaMessage(key: Array("key-\(i % 25)".utf8), value: Array("\(i)".utf8))
                XCTAssertTrue(try producer.send(message, tag: UInt64(i)))
            }
        }
        try send(0..<total / 2)
        XCTAssertNil(producer.lastClientError, "no error before the outage")
        cluster.setBrokerDown(-1)
        try send(total / 2..<total)
        // The brokers return only once the producer has seen them go (librdkafka's error callback),
        // with messages still waiting for them: the outage happened to this producer.
        try waitUntil("the producer reports the brokers down", timeout: 60) { producer.lastClientError != nil }
        XCTAssertGreaterThan(producer.inFlight, 0, "messages wait while every broker is down")
        XCTAssertLessThan(acked.load(ordering: .relaxed), total)
        cluster.setBrokerUp(-1)
        producer.close(flushTimeout: .seconds(90))

        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertEqual(acked.load(ordering: .relaxed), total)
        let records = try KafkaTopicReader.readAll(brokers: cluster.bootstrapServers, topic: "orders")
        let values = records.map { Int(String(decoding: $0.value, as: UTF8.self))! }
        XCTAssertEqual(values.count, total, "nothing lost, nothing duplicated")
        XCTAssertEqual(Set(values).count, total)
        for (key, group) in Dictionary(grouping: records, by: { String(decoding: $0.key ?? [], as: UTF8.self) }) {
            let inOffsetOrder = group.sorted { $0.offset < $1.offset }.map { Int(String(decoding: $0.value, as: UTF8.self))! }
            XCTAssertEqual(inOffsetOrder, inOffsetOrder.sorted(), "order kept for \(key)")
        }
    }

    func testProducer_whenTopicIsMissing_failsNamingTopicAndBrokers() throws {
        let cluster = try KafkaMockCluster()
        XCTAssertThrowsError(try KafkaProducer(topic: "no-such-topic", configuration: config(cluster)) { _ in }) {
            let e = $0 as! KafkaError
            XCTAssertTrue(e.message.contains("'no-such-topic'"), e.message)
            XCTAssertTrue(e.message.contains(cluster.bootstrapServers), e.message)
            XCTAssertFalse(e.isFatal)
        }
        // --create-topic creates it (the mock auto-creates on a producer's topic request).
        let producer = try KafkaProducer(topic: "no-such-topic", configuration: config(cluster), createTopic: true) { _ in }
        XCTAssertGreaterThan(producer.partitionCount, 0)
        producer.close(flushTimeout: .seconds(5))
    }

    func testProducer_whenBrokerIsUnreachable_failsWithinTheBoundNamingTheBroker() throws {
        var c = KafkaConfiguration.producerDefaults()
        let address = "127.0.0.1:\(LocalPorts.free())"
        c.set("bootstrap.servers", address)
        XCTAssertThrowsError(
            try KafkaProducer(topic: "t", configuration: c, metadataTimeout: .seconds(2)) { _ in }
        ) {
            let e = $0 as! KafkaError
            XCTAssertTrue(e.message.hasPrefix("cannot reach Kafka brokers \(address) within 2 s"), e.message)
            XCTAssertTrue(e.isRetriable)
        }
    }

    func testProducer_whenPropertyIsUnknown_failsNamingIt() {
        var c = KafkaConfiguration.producerDefaults()
        c.set("bootstrap.servers", "127.0.0.1:9")
        c.set("no.such.property", "1")
        XCTAssertThrowsError(try KafkaProducer(topic: "t", configuration: c) { _ in }) {
            XCTAssertTrue(($0 as! KafkaError).message.contains("no.such.property"))
        }
    }

    func testClose_whenBrokersStayDown_reportsEveryUnacknowledgedMessageAsFailed() throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("t")
        let acked = Atomic<Int>(0)
        let failedTags = Mutex<[UInt64]>([])
        let producer = try KafkaProducer(topic: "t", configuration: config(cluster)) { report in
            if report.error != nil { failedTags.withLock { $0.append(report.tag) } } else { acked.add(1, ordering: .relaxed) }
        }
        cluster.setBrokerDown(-1)
        for i in 1...50 { _ = try producer.send(KafkaMessage(key: nil, value: Array("\(i)".utf8)), tag: UInt64(i)) }
        producer.close(flushTimeout: .milliseconds(500))
        XCTAssertEqual(acked.load(ordering: .relaxed) + failedTags.withLock { $0.count }, 50, "every message reported")
        XCTAssertEqual(Set(failedTags.withLock { $0 }).count, failedTags.withLock { $0.count })
        XCTAssertGreaterThan(failedTags.withLock { $0.count }, 0)
    }
}
