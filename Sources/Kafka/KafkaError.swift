import CRdKafka

/// A Kafka failure that keeps librdkafka's error code, told apart into fatal (the producer
/// cannot go on) and retriable (librdkafka retries it; it surfaces only when a message times out).
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t`: negative for client-side errors, positive for broker ones.
    public var code: Int32
    /// librdkafka's name for the code, e.g. `_MSG_TIMED_OUT` or `TOPIC_AUTHORIZATION_FAILED`.
    public var name: String
    /// What happened, in one line.
    public var message: String
    public var isFatal: Bool
    public var isRetriable: Bool

    public init(code: Int32, name: String, message: String, isFatal: Bool = false, isRetriable: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    public var description: String { "\(message) (\(name))" }

    /// librdkafka's own text for `err`, with `context` in front when given.
    init(_ err: rd_kafka_resp_err_t, context: String? = nil, isFatal: Bool = false) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(
            code: err.rawValue, name: String(cString: rd_kafka_err2name(err)),
            message: context.map { "\($0): \(text)" } ?? text,
            isFatal: isFatal || err == RD_KAFKA_RESP_ERR__FATAL,
            isRetriable: Self.retriable.contains(err.rawValue))
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, context: String? = nil) {
        defer { rd_kafka_error_destroy(error) }
        let text = String(cString: rd_kafka_error_string(error))
        self.init(
            code: rd_kafka_error_code(error).rawValue, name: String(cString: rd_kafka_error_name(error)),
            message: context.map { "\($0): \(text)" } ?? text,
            isFatal: rd_kafka_error_is_fatal(error) != 0, isRetriable: rd_kafka_error_is_retriable(error) != 0)
    }

    /// An invalid argument found before librdkafka was asked (a bad property, a bad topic spec).
    public static func invalidArgument(_ message: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, name: "_INVALID_ARG", message: message)
    }

    /// The caller asked to stop (a signal) before the work was done; `_INTR` is librdkafka's
    /// own code for an interrupted operation.
    public static func stopped(_ what: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INTR.rawValue, name: "_INTR", message: "stopped \(what)")
    }

    /// Whether this is `stopped`: the run was interrupted, nothing failed.
    public var isStopped: Bool { code == RD_KAFKA_RESP_ERR__INTR.rawValue }

    /// Errors librdkafka (or a caller) may retry: transient broker and transport conditions.
    static let retriable: Set<Int32> = Set(
        [
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
            RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE,
            RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__WAIT_COORD,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            RD_KAFKA_RESP_ERR_NOT_CONTROLLER, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
        ].map(\.rawValue))
}

extension rd_kafka_resp_err_t {
    var isError: Bool { self != RD_KAFKA_RESP_ERR_NO_ERROR }
}
