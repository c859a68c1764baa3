import ArgumentParser
import Foundation
import Kafka

struct KafkaMockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-mock",
        abstract: "Host librdkafka's mock Kafka cluster for local use and tests, until SIGTERM.",
        discussion: """
            Prints the bootstrap servers as the first line on stdout, then serves Kafka over TCP on \
            loopback until SIGTERM or SIGINT. Topics given with --topic exist from the start; others \
            are auto-created on a producer's first metadata request. Nothing is persisted.

            Example:
              hemstream kafka-mock --brokers 3 --topic hem-changes:6 &
              kcat -C -b "$(head -1 <&3)" -t hem-changes -e
            """)

    @Option(help: "Number of brokers.") var brokers = 1
    @Option(
        help: ArgumentHelp("A topic to create, with its partition count (default 1).", valueName: "name[:partitions]"))
    var topic: [String] = []
    @OptionGroup var log: LogOptions

    func validate() throws {
        if brokers < 1 { throw ValidationError("--brokers must be at least 1") }
        for t in topic where Self.parse(t) == nil { throw ValidationError("--topic \(t): expected name[:partitions]") }
    }

    static func parse(_ spec: String) -> (name: String, partitions: Int)? {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard let name = parts.first, !name.isEmpty, parts.count <= 2 else { return nil }
        guard parts.count == 2 else { return (String(name), 1) }
        guard let n = Int(parts[1]), n >= 1 else { return nil }
        return (String(name), n)
    }

    func run() async throws {
        log.bootstrap()
        let cluster: KafkaMockCluster
        do {
            cluster = try KafkaMockCluster(brokers: brokers)
            for spec in topic.compactMap(Self.parse) { try cluster.createTopic(spec.name, partitions: spec.partitions) }
        } catch {
            Console.line("hemstream kafka-mock: \(error)")
            throw ExitCode.failure
        }
        FileHandle.standardOutput.write(Data((cluster.bootstrapServers + "\n").utf8))
        Console.line("kafka mock cluster: \(cluster.bootstrapServers) (\(brokers) broker(s)); SIGTERM stops it")
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let signals = SignalWatcher { continuation.yield($0) }
        for await name in stream {
            Console.line("hemstream kafka-mock: \(name): stopping")
            break
        }
        signals.cancel()
        withExtendedLifetime(cluster) {}
    }
}
