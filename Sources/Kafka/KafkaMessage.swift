/// One message to produce: key (partitions by it), value and headers. librdkafka copies all of it.
public struct KafkaMessage: Sendable {
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A Kafka record header; a nil value is a header without a value.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ text: String) { self.init(name: name, value: Array(text.utf8)) }
}

/// The broker's answer for one produced message: where it was written, or why it was not.
/// `tag` is the caller's number given to `send`, so the caller can say which input it was.
public struct KafkaDeliveryReport: Sendable {
    public var tag: UInt64
    public var partition: Int32
    public var offset: Int64
    public var error: KafkaError?

    public var isAcknowledged: Bool { error == nil }
}

/// A header for `KafkaProducer.send(key:value:headers:)`: a C-string name and value bytes the
/// caller keeps alive for the duration of the call (librdkafka copies them).
public struct KafkaRawHeader {
    public var name: UnsafePointer<CChar>
    public var value: UnsafeRawBufferPointer

    public init(name: UnsafePointer<CChar>, value: UnsafeRawBufferPointer) {
        self.name = name
        self.value = value
    }

    /// A header whose name and value are string literals (NUL-terminated, static storage).
    public init(_ name: StaticString, _ value: StaticString) {
        self.name = UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
        self.value = UnsafeRawBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount)
    }

    public init(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        self.name = UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
        self.value = value
    }
}
