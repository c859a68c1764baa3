import ArgumentParser
import Kafka

/// Kafka flags shared by `publish` and `stream`: brokers (or the in-process mock), a
/// properties file, -X overrides, topic creation for local use.
struct KafkaOptions: ParsableArguments {
    @Option(help: "Bootstrap brokers (host:port,...); `mock` starts librdkafka's mock cluster in this process.")
    var brokers: String?
    @Option(help: "librdkafka properties file (key=value lines).") var kafkaConfig: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("A librdkafka property.", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "Create the topic if missing (local use: a broker with auto-creation, or the mock).")
    var createTopic = false
    @Option(help: "Partitions of the topic that --brokers mock creates.") var mockPartitions = 3
    @Option(help: "Seconds to wait for cluster metadata at start.") var metadataTimeout: Double = 10
    @Flag(help: "Pass librdkafka's own log lines to stderr.") var verbose = false

    func validate() throws {
        if metadataTimeout <= 0 { throw ValidationError("--metadata-timeout must be positive") }
        for p in properties where KafkaConfiguration.parsePair(p) == nil {
            throw ValidationError("-X \(p): expected key=value")
        }
    }

    /// Safe producer defaults, then the file, then -X, then --brokers; with `--brokers mock`, the
    /// started cluster (keep it alive while producing) with `topics` made on it.
    func configuration(messageTimeoutMs: Int, topics: [String]) throws -> (KafkaConfiguration, KafkaMockCluster?) {
        var config = KafkaConfiguration.producerDefaults(messageTimeoutMs: messageTimeoutMs)
        if let kafkaConfig {
            for p in try KafkaConfiguration.loadProperties(file: kafkaConfig) { config.set(p.key, p.value) }
        }
        for p in properties.compactMap(KafkaConfiguration.parsePair) { config.set(p.key, p.value) }
        var mock: KafkaMockCluster?
        if brokers == "mock" {
            let cluster = try KafkaMockCluster(brokers: 1)
            for t in topics { try cluster.createTopic(t, partitions: mockPartitions) }
            mock = cluster
            config.set("bootstrap.servers", cluster.bootstrapServers)
            Console.line("kafka mock cluster: \(cluster.bootstrapServers)")
        } else if let brokers {
            config.set("bootstrap.servers", brokers)
        }
        guard let servers = config["bootstrap.servers"], !servers.isEmpty else {
            throw KafkaOptionsError("no brokers: give --brokers (or bootstrap.servers in --kafka-config)")
        }
        return (config, mock)
    }
}

struct KafkaOptionsError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
