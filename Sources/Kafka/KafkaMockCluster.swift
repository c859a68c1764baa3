import CRdKafka

/// librdkafka's mock Kafka cluster, hosted in this process and reachable over TCP at
/// `bootstrapServers` by any client (kcat included) while the object lives.
public final class KafkaMockCluster: @unchecked Sendable {
    // @unchecked: the rd_kafka_mock_cluster_t runs on its own thread and its setters
    // (topic create, broker up/down) post operations to it under librdkafka's lock.
    public let bootstrapServers: String
    public let brokerCount: Int
    private let client: RDKafkaClient
    private let cluster: OpaquePointer

    public init(brokers: Int = 1) throws(KafkaError) {
        guard brokers >= 1 else { throw .invalidArgument("a mock cluster needs at least one broker") }
        brokerCount = brokers
        // The cluster needs an rd_kafka_t of its own for bookkeeping; it is otherwise idle.
        client = try RDKafkaClient(
            type: RD_KAFKA_PRODUCER, configuration: KafkaConfiguration([("client.id", "hemstream-mock")]),
            context: RDKafkaContext(logLevel: -1, onDelivery: nil))
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, Int32(brokers)) else {
            throw .invalidArgument("cannot start librdkafka's mock cluster")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit { rd_kafka_mock_cluster_destroy(cluster) }

    public func createTopic(_ name: String, partitions: Int = 1, replicationFactor: Int? = nil) throws(KafkaError) {
        let rf = replicationFactor ?? min(brokerCount, 3)
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(rf))
        if err.isError { throw KafkaError(err, context: "create topic \(name)") }
    }

    /// Disconnects the broker (-1: every broker) and refuses new connections until `setBrokerUp`.
    public func setBrokerDown(_ id: Int32 = -1) {
        _ = rd_kafka_mock_broker_set_down(cluster, id)
    }

    public func setBrokerUp(_ id: Int32 = -1) {
        _ = rd_kafka_mock_broker_set_up(cluster, id)
    }

    /// Moves a partition's leadership to `broker`, as a broker failover would.
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker)
    }
}
