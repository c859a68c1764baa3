import Foundation
import JSON
import Synchronization

/// Publishes change events from NDJSON sources (files, or `-` for stdin) to one topic: each line
/// is parsed and validated, keyed by the event's hem, and either acknowledged by the broker or
/// reported as failed by source and line. Nothing read is silently dropped.
public final class NDJSONPublisher: Sendable {
    /// What happened to the lines read; `failed` lines were valid but not acknowledged.
    public struct Summary: Sendable, Equatable {
        public var read = 0
        public var published = 0
        public var rejected = 0
        public var failed = 0
        /// A signal (or `stop`) ended reading before the end of input.
        public var interrupted = false
        /// A fatal producer error, which stops the run.
        public var fatal: String?

        public init(
            read: Int = 0, published: Int = 0, rejected: Int = 0, failed: Int = 0, interrupted: Bool = false,
            fatal: String? = nil
        ) {
            self.read = read
            self.published = published
            self.rejected = rejected
            self.failed = failed
            self.interrupted = interrupted
            self.fatal = fatal
        }

        public var json: String {
            var w = JSONWriter()
            w.beginObject()
            w.key("read"); w.int(read)
            w.key("published"); w.int(published)
            w.key("rejected"); w.int(rejected)
            w.key("failed"); w.int(failed)
            w.key("interrupted"); w.bool(interrupted)
            if let fatal { w.key("fatal"); w.string(fatal) }
            w.endObject()
            return w.string
        }
    }

    public let producer: KafkaProducer
    public let sources: [String]
    private let validate: @Sendable (JSON) -> [String]
    private let report: @Sendable (String) -> Void
    private let tally: Tally
    private let fastPath: CompiledSchema?
    /// Set by a signal handler (or a test) to stop reading and start the bounded flush.
    public let stopRequested = Atomic<Bool>(false)

    /// The producer checks the topic first (see `KafkaProducer.init`).
    /// `fastPath`, the same schema compiled, passes certainly-valid lines without building a
    /// JSON tree; every other line goes through `validate`.
    /// `validate` returns the problems of an event (empty when valid); `report` receives one
    /// line per rejected or failed input line, e.g. `events.ndjson:12: rejected: data.hem: required`.
    public init(
        topic: String, configuration: KafkaConfiguration, sources: [String], createTopic: Bool = false,
        metadataTimeout: Duration = .seconds(10), logLevel: Int32 = -1,
        validate: @escaping @Sendable (JSON) -> [String], fastPath: CompiledSchema? = nil,
        report: @escaping @Sendable (String) -> Void
    ) throws(KafkaError) {
        self.fastPath = fastPath
        self.sources = sources.isEmpty ? ["-"] : sources
        self.validate = validate
        self.report = report
        let tally = Tally()
        self.tally = tally
        let names = self.sources.map { $0 == "-" ? "stdin" : $0 }
        producer = try KafkaProducer(
            topic: topic, configuration: configuration, createTopic: createTopic, metadataTimeout: metadataTimeout,
            logLevel: logLevel
        ) { dr in
            if let error = dr.error {
                tally.failed.add(1, ordering: .relaxed)
                let (file, line) = Tag.decode(dr.tag)
                report("\(names[file]):\(line): not acknowledged: \(error)")
            } else {
                tally.published.add(1, ordering: .relaxed)
            }
        }
    }

    public func stop() { stopRequested.store(true, ordering: .releasing) }
    private var shouldStop: Bool { stopRequested.load(ordering: .acquiring) }

    /// Counts so far, for progress lines.
    public var progress: Summary {
        Summary(
            read: tally.read.load(ordering: .relaxed), published: tally.published.load(ordering: .relaxed),
            rejected: tally.rejected.load(ordering: .relaxed), failed: tally.failed.load(ordering: .relaxed))
    }

    /// Reads every source to its end (or until `stop()`), then flushes within `flushTimeout`;
    /// what is still unacknowledged then is purged and reported failed by line. Blocking: run it
    /// on a thread of its own, never on the cooperative pool.
    public func run(flushTimeout: Duration) -> Summary {
        var fatal: KafkaError?
        var unreadable: [String] = []
        var scanner = fastPath.map(EventScanner.init(schema:))
        sources: for (index, source) in sources.enumerated() {
            let name = source == "-" ? "stdin" : source
            let fd = source == "-" ? STDIN_FILENO : open(source, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                unreadable.append(name)
                report("\(name): cannot open: \(String(cString: strerror(errno)))")
                continue
            }
            defer { if source != "-" { close(fd) } }
            var reader = LineReader(fd: fd)
            var lineNumber = 0
            while let r = reader.next(shouldStop: { self.shouldStop }) {
                lineNumber += 1
                let tag = Tag.encode(file: index, line: lineNumber)
                let outcome: Outcome? = reader.buffer.withUnsafeBufferPointer { all in
                    let line = UnsafeBufferPointer(rebasing: all[r])
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return nil }
                    if let fields = scanner?.scan(line) { return sendFast(line, fields, tag: tag) }
                    return publish(Array(line), tag: tag)
                }
                guard let outcome else { continue }
                tally.read.add(1, ordering: .relaxed)
                if lineNumber & 1023 == 0, let f = producer.fatalError {
                    fatal = f
                    tally.failed.add(1, ordering: .relaxed)
                    report("\(name):\(lineNumber): not acknowledged: \(f)")
                    break sources
                }
                switch outcome {
                case .sent: break
                case .rejected(let why):
                    tally.rejected.add(1, ordering: .relaxed)
                    report("\(name):\(lineNumber): rejected: \(why)")
                case .notSent(let why):
                    tally.failed.add(1, ordering: .relaxed)
                    report("\(name):\(lineNumber): not sent: \(why)")
                case .fatal(let error):
                    fatal = error
                    tally.failed.add(1, ordering: .relaxed)
                    report("\(name):\(lineNumber): not sent: \(error)")
                    break sources
                }
            }
            if let error = reader.error {
                report("\(name):\(lineNumber + 1): read failed: \(error)")
                unreadable.append(name)
            }
            if shouldStop { break }
        }
        producer.close(flushTimeout: flushTimeout)
        var summary = progress
        summary.interrupted = shouldStop
        summary.fatal = (fatal ?? producer.fatalError)?.description
            ?? (unreadable.isEmpty ? nil : "cannot read \(unreadable.joined(separator: ", "))")
        return summary
    }

    enum Outcome {
        case sent
        case rejected(String)
        case notSent(String)
        case fatal(KafkaError)
    }

    /// The record headers every event carries (CloudEvents structured mode, plus the routing
    /// attributes so consumers can filter without parsing the value).
    static let contentType = KafkaHeader("content-type", "application/cloudevents+json")

    private func sendFast(_ line: UnsafeBufferPointer<UInt8>, _ f: EventScanner.Fields, tag: UInt64) -> Outcome {
        let base = UnsafeRawPointer(line.baseAddress!)
        func bytes(_ r: Range<Int>) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + r.lowerBound, count: r.count)
        }
        return withUnsafeTemporaryAllocation(of: KafkaRawHeader.self, capacity: 4) { h in
            var n = 0
            h[n] = KafkaRawHeader("content-type", "application/cloudevents+json")
            n += 1
            if let r = f.specversion {
                h[n] = KafkaRawHeader("ce_specversion", bytes(r))
                n += 1
            }
            if let r = f.id {
                h[n] = KafkaRawHeader("ce_id", bytes(r))
                n += 1
            }
            if let r = f.type {
                h[n] = KafkaRawHeader("ce_type", bytes(r))
                n += 1
            }
            do throws(KafkaError) {
                let sent = try producer.send(
                    key: bytes(f.key), value: UnsafeRawBufferPointer(line),
                    headers: UnsafeBufferPointer(rebasing: h[0..<n]), tag: tag, shouldStop: { self.shouldStop })
                return sent ? .sent : .notSent("stopped while the producer queue was full")
            } catch {
                return error.isFatal ? .fatal(error) : .notSent(error.description)
            }
        }
    }

    private func publish(_ line: [UInt8], tag: UInt64) -> Outcome {
        let event: JSON
        do { event = try JSON.parse(line) } catch { return .rejected("not JSON (\(error))") }
        let problems = validate(event)
        if !problems.isEmpty { return .rejected(problems.prefix(3).joined(separator: "; ")) }
        guard let hem = event["data"]?["hem"]?.stringValue ?? event["subject"]?.stringValue else {
            return .rejected("no data.hem or subject to key by")
        }
        var headers = [Self.contentType]
        if let v = event["specversion"]?.stringValue { headers.append(KafkaHeader("ce_specversion", v)) }
        if let v = event["id"]?.stringValue { headers.append(KafkaHeader("ce_id", v)) }
        if let v = event["type"]?.stringValue { headers.append(KafkaHeader("ce_type", v)) }
        let message = KafkaMessage(key: Array(hem.utf8), value: line, headers: headers)
        do {
            return try producer.send(message, tag: tag, shouldStop: { self.shouldStop })
                ? .sent : .notSent("stopped while the producer queue was full")
        } catch {
            return error.isFatal ? .fatal(error) : .notSent(error.description)
        }
    }
}

final class Tally: Sendable {
    let read = Atomic<Int>(0)
    let published = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
}

/// A message's tag: the source index in the top 24 bits, the line number below, so a delivery
/// report names its input line without a lookup table.
enum Tag {
    static func encode(file: Int, line: Int) -> UInt64 { UInt64(file) << 40 | UInt64(line) }
    static func decode(_ tag: UInt64) -> (file: Int, line: Int) { (Int(tag >> 40), Int(tag & (1 << 40 - 1))) }
}

/// Lines from a file descriptor, read in large blocks. Waits for input with `poll` in short
/// slices so a stop request is noticed even while stdin is idle.
struct LineReader {
    let fd: Int32
    private(set) var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var end = 0
    private var eof = false
    private(set) var error: String?

    init(fd: Int32) { self.fd = fd }

    /// The next line's range in `buffer`, valid until the next call.
    mutating func next(shouldStop: () -> Bool) -> Range<Int>? {
        while true {
            let found = buffer.withUnsafeBytes { b in
                memchr(b.baseAddress! + start, 0x0A, end - start).map { $0 - UnsafeMutableRawPointer(mutating: b.baseAddress!) }
            }
            if let nl = found {
                defer { start = nl + 1 }
                return start..<nl
            }
            if eof {
                guard start < end else { return nil }
                defer { start = end }
                return start..<end
            }
            if shouldStop() { return nil }
            // Make room: move the partial line to the front, grow for a line longer than the buffer.
            if start > 0 {
                buffer.withUnsafeMutableBufferPointer { b in
                    _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            }
            if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 200)
            if ready == 0 || (ready < 0 && errno == EINTR) { continue }
            let n = buffer.withUnsafeMutableBufferPointer { b in read(fd, b.baseAddress! + end, b.count - end) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                error = String(cString: strerror(errno))
                eof = true
            } else if n == 0 {
                eof = true
            } else {
                end += n
            }
        }
    }
}
