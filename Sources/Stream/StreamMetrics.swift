import Metrics

/// The stream reader's metrics, through swift-metrics (the process bootstraps the Prometheus
/// backend); names in Prometheus style, base units.
public struct StreamMetrics: Sendable {
    let recordsRead = Counter(label: "hemstream_stream_records_read_total")
    let noOps = Gauge(label: "hemstream_stream_noop_modifies")
    let deadLettered = Counter(label: "hemstream_stream_dead_letter_records_total")
    /// Events stopped by the PII guard (an email-shaped value in a public field).
    let piiBlocked = Counter(label: "hemstream_stream_pii_blocked_events_total")
    let gaps = Counter(label: "hemstream_stream_gaps_total")
    let getRecordsCalls = Counter(label: "hemstream_stream_getrecords_calls_total")
    let getRecordsThrottled = Counter(label: "hemstream_stream_getrecords_throttled_total")
    let expiredIterators = Counter(label: "hemstream_stream_expired_iterators_total")
    let leasesHeld = Gauge(label: "hemstream_stream_leases_held")
    let leasesTaken = Counter(label: "hemstream_stream_leases_taken_total")
    let leasesLost = Counter(label: "hemstream_stream_leases_lost_total")
    let checkpoints = Counter(label: "hemstream_stream_checkpoints_total")
    let deliveryFailures = Counter(label: "hemstream_stream_delivery_failures_total")
    /// hem-index `Query` calls made to classify REMOVEs (one per hem per page, plus a second
    /// after `--index-grace` for a young record the index did not show moved yet).
    let indexLookups = Counter(label: "hemstream_stream_index_lookups_total")
    /// Seconds between reading a record and Kafka acknowledging its event.
    let deliveryLatency = Timer(label: "hemstream_stream_delivery_latency_seconds", preferredDisplayUnit: .seconds)

    public init() {}

    /// One counter per event type, made once (making one per event cost a factory lookup each).
    let eventCounters: [String: Counter] = Dictionary(
        uniqueKeysWithValues: [
            "hem.created", "hem.deleted", "hem.resolved", "hem.reassigned", "hem.unresolved", "hem.updated", "stream.gap",
        ].map { ($0, Counter(label: "hemstream_stream_events_total", dimensions: [("type", $0)])) })
    let moveCounters: [String: Counter] = Dictionary(
        uniqueKeysWithValues: ["index", "record"].map {
            ($0, Counter(label: "hemstream_stream_moves_classified_total", dimensions: [("path", $0)]))
        })

    func events(type: String, count: Int = 1) {
        (eventCounters[type] ?? Counter(label: "hemstream_stream_events_total", dimensions: [("type", type)]))
            .increment(by: count)
    }

    func movesClassified(by path: String) {
        (moveCounters[path] ?? Counter(label: "hemstream_stream_moves_classified_total", dimensions: [("path", path)]))
            .increment()
    }

    /// How far behind the shard's events are: now − ApproximateCreationDateTime (whole seconds,
    /// as DynamoDB rounds it) of the oldest record read but not yet acknowledged by Kafka, else of
    /// the last record read; 0 once the shard is caught up and everything read is acknowledged.
    func iteratorAge(shard: String, seconds: Double) {
        Gauge(label: "hemstream_stream_iterator_age_seconds", dimensions: [("shard", shard)]).record(seconds)
    }

    /// A shard this replica no longer reads (lost, finished, handed over, released): its lag
    /// series stop claiming a frozen age (0 behind, a full day before trim), so a max() over
    /// replicas shows the reader that has it now.
    func notReading(shard: String) {
        iteratorAge(shard: shard, seconds: 0)
        timeLeftBeforeTrim(shard: shard, seconds: 86_400)
    }

    /// 24 h − age of the oldest record not yet read: how long before the stream trims it.
    func timeLeftBeforeTrim(shard: String, seconds: Double) {
        Gauge(label: "hemstream_stream_time_left_before_trim_seconds", dimensions: [("shard", shard)]).record(seconds)
    }
}
