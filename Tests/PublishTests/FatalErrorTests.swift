import CRdKafka
import Events
import Foundation
import Publish
import Synchronization
import TestSupport
import XCTest

@testable import Kafka

/// A fatal producer error (here raised with librdkafka's own test hook) stops the run: the
/// error is typed as fatal, later lines are reported as not sent, and the summary says why.
final class FatalErrorTests: XCTestCase {
    func testPublish_whenProducerRaisesFatalError_stopsAndReportsIt() throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("events")
        var config = KafkaConfiguration.producerDefaults()
        config.set("bootstrap.servers", cluster.bootstrapServers)
        let lines = (0..<50).map { EventFixtures.event($0, key: $0).line + "\n" }.joined()
        let file = try TemporaryFile(name: "events.ndjson", contents: Data(lines.utf8))
        let schema = try ChangeEventSchema.load()
        let reports = Mutex<[String]>([])
        let publisher = try NDJSONPublisher(
            topic: "events", configuration: config, sources: [file.path], validate: { schema.validate($0) },
            fastPath: CompiledSchema(schema.root), report: { line in reports.withLock { $0.append(line) } })

        _ = rd_kafka_test_fatal_error(
            publisher.producer.client.handle, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "injected by test")
        let error = try XCTUnwrap(waitForFatal(publisher.producer))
        XCTAssertTrue(error.isFatal)
        XCTAssertEqual(error.name, "OUT_OF_ORDER_SEQUENCE_NUMBER")

        let summary = publisher.run(flushTimeout: .seconds(5))
        XCTAssertEqual(summary.read, 50)
        XCTAssertEqual(summary.published, 0)
        XCTAssertEqual(summary.failed, 50, "every line read is reported")
        XCTAssertTrue(summary.fatal?.contains("injected by test") ?? false, summary.fatal ?? "nil")
        XCTAssertFalse(summary.interrupted)
        XCTAssertEqual(reports.withLock { $0.count }, 50)
    }

    func waitForFatal(_ producer: KafkaProducer) -> KafkaError? {
        for _ in 0..<100 {
            if let e = producer.fatalError { return e }
            usleep(50_000)
        }
        return nil
    }
}
