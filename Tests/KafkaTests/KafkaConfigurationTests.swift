import Kafka
import XCTest

final class KafkaConfigurationTests: XCTestCase {
    func testParseProperties_readsPairsAndSkipsCommentsAndBlankLines() throws {
        let text = "# SASL setup\nbootstrap.servers = b1:9093,b2:9093\n\nsasl.mechanism=PLAIN\nsasl.password=a=b\n"
        let pairs = try KafkaConfiguration.parseProperties(text, file: "client.properties")
        XCTAssertEqual(pairs.map(\.key), ["bootstrap.servers", "sasl.mechanism", "sasl.password"])
        XCTAssertEqual(pairs.map(\.value), ["b1:9093,b2:9093", "PLAIN", "a=b"])
    }

    func testParseProperties_whenLineIsMalformed_namesFileAndLine() {
        XCTAssertThrowsError(try KafkaConfiguration.parseProperties("acks=all\n# ok\nlinger.ms 5\n", file: "p.conf")) {
            XCTAssertEqual(($0 as? KafkaConfigurationError)?.description, "p.conf:3: expected key=value")
        }
    }

    func testProducerDefaults_areIdempotentAllAcksCompressedAndBounded() {
        let c = KafkaConfiguration.producerDefaults(messageTimeoutMs: 30_000)
        XCTAssertEqual(c["enable.idempotence"], "true")
        XCTAssertEqual(c["acks"], "all")
        // lz4, as the README promises (librdkafka 2.0.2 always builds it in).
        XCTAssertEqual(c["compression.type"], "lz4")
        XCTAssertEqual(c["linger.ms"], "5")
        XCTAssertEqual(c["message.timeout.ms"], "30000")
    }

    func testSet_laterValueWins() {
        var c = KafkaConfiguration.producerDefaults()
        c.set("acks", "1")
        XCTAssertEqual(c["acks"], "1")
        XCTAssertEqual(c.properties.filter { $0.key == "acks" }.count, 1)
    }
}
