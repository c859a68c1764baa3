import Foundation

/// librdkafka properties for a client, applied in order (a later value for a key wins).
/// Producer defaults are safe ones; files and `-X` pairs pass anything through, SASL/SSL included.
public struct KafkaConfiguration: Sendable {
    public private(set) var properties: [(key: String, value: String)] = []

    public init(_ properties: [(key: String, value: String)] = []) {
        for p in properties { set(p.key, p.value) }
    }

    /// Sets `key`, replacing an earlier value.
    public mutating func set(_ key: String, _ value: String) {
        properties.removeAll { $0.key == key }
        properties.append((key, value))
    }

    public subscript(key: String) -> String? { properties.last { $0.key == key }?.value }

    /// Idempotent, all in-sync replicas, compressed, and a bounded delivery time, so that a
    /// message is either acknowledged or reported failed within `messageTimeoutMs`.
    public static func producerDefaults(messageTimeoutMs: Int = 120_000) -> KafkaConfiguration {
        var c = KafkaConfiguration()
        c.set("client.id", "hemstream")
        c.set("enable.idempotence", "true")
        c.set("acks", "all")
        let features = RDKafkaClient.builtinFeatures
        if let codec = ["lz4", "zstd", "snappy", "gzip"].first(where: features.contains) {
            c.set("compression.type", codec)
        }
        c.set("message.timeout.ms", String(messageTimeoutMs))
        c.set("linger.ms", "5")
        return c
    }

    /// Parses librdkafka's properties format: `key=value` lines, `#` comments, blank lines.
    /// A malformed line throws an error naming `file` and the line number.
    public static func parseProperties(_ text: String, file: String) throws(KafkaConfigurationError) -> [(
        key: String, value: String
    )] {
        var out: [(key: String, value: String)] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let pair = parsePair(line) else {
                throw KafkaConfigurationError("\(file):\(n + 1): expected key=value")
            }
            out.append(pair)
        }
        return out
    }

    /// Reads and parses a properties file (`--kafka-config FILE`).
    public static func loadProperties(file: String) throws(KafkaConfigurationError) -> [(key: String, value: String)] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw KafkaConfigurationError("\(file): cannot read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KafkaConfigurationError("\(file): not UTF-8 text")
        }
        return try parseProperties(text, file: file)
    }

    /// One `key=value` pair as given to `-X`.
    public static func parsePair(_ text: String) -> (key: String, value: String)? {
        guard let eq = text.firstIndex(of: "=") else { return nil }
        let key = text[..<eq].trimmingCharacters(in: .whitespaces)
        let value = text[text.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, !key.contains(where: \.isWhitespace) else { return nil }
        return (key, value)
    }
}

/// A properties file or `-X` pair that could not be read; the message names file and line.
public struct KafkaConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
