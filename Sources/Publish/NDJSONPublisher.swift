import Events
import Foundation
import JSON
import Kafka
import Outlet
import Synchronization
import ThreadNames

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

    /// Where the lines go (the same outlet `stream` sends through).
    public let outlet: KafkaOutlet
    /// The outlet's producer: its reports, errors and queue.
    public var producer: KafkaProducer { outlet.events }
    public let sources: [String]
    private let validate: @Sendable (JSON) -> [String]
    private let report: @Sendable (String) -> Void
    private let tally: Tally
    private let fastPath: CompiledSchema?
    private let pinned: PinnedBuffers
    /// Longest line accepted; a longer one is rejected by number without being held whole.
    public let maxLineBytes: Int
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
        maxLineBytes: Int = LineReader.defaultMaxLineBytes, shouldStop: () -> Bool = { false },
        validate: @escaping @Sendable (JSON) -> [String], fastPath: CompiledSchema? = nil,
        report: @escaping @Sendable (String) -> Void
    ) throws(KafkaError) {
        self.fastPath = fastPath
        self.maxLineBytes = maxLineBytes
        self.sources = sources.isEmpty ? ["-"] : sources
        self.validate = validate
        self.report = report
        let tally = Tally()
        self.tally = tally
        let pinned = PinnedBuffers()
        self.pinned = pinned
        let names = self.sources.map { $0 == "-" ? "stdin" : $0 }
        outlet = try KafkaOutlet(
            topic: topic, configuration: configuration, createTopic: createTopic, metadataTimeout: metadataTimeout,
            logLevel: logLevel, pollInBackground: false, shouldStop: shouldStop
        ) { tag, error in
            if let slot = Tag.slot(tag) { pinned.release(slot) }
            if let error {
                tally.failed.add(1, ordering: .relaxed)
                let (file, line) = Tag.decode(tag)
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
    /// on a thread of its own, never on the cooperative pool. Reading and validating run on a
    /// second thread, handing chunks of checked lines to this one, which produces them in order.
    public func run(flushTimeout: Duration) -> Summary {
        // One core is left to the producing thread and librdkafka's broker thread, which now
        // take as much as checking does: on 2 cores one worker was as fast, for less CPU.
        let workers = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount - 1))
        let queue = ChunkQueue(capacity: 2 * workers + 2, workers: workers)
        let unreadable = Unreadable()
        if !Thread.isMainThread { nameCurrentThread("hs-publish") }
        let reading = Thread { [self] in
            nameCurrentThread("hs-publish-read")
            read(into: queue, unreadable: unreadable)
            queue.closeJobs()
        }
        reading.start()
        for n in 0..<workers {
            let checking = Thread { [self] in
                nameCurrentThread("hs-publish-chk\(n)")
                var scanner = fastPath.map(EventScanner.init(schema:))
                while let job = queue.nextJob() {
                    queue.finish(job.sequence, check(job, scanner: &scanner))
                }
                queue.workerDone()
            }
            checking.start()
        }

        pinned.recycler = { queue.recycle($0) }
        var fatal: KafkaError?
        // This thread serves the delivery reports too (see `KafkaProducer.init`): between
        // records, and while waiting for the next chunk.
        var sinceServed = 0
        // A fatal error is looked for once per chunk and with every serving of reports (asking
        // librdkafka takes its lock): a send after one fails as fatal anyway, and is reported so.
        func noticeFatal() {
            if fatal == nil, let f = producer.fatalError {
                fatal = f
                stop()  // no more reading; what was read is reported below
            }
        }
        while var chunk = queue.take(idle: { producer.serveReports() }) {
            // Fast-path records point into the chunk's bytes instead of being copied; the bytes
            // stay pinned until every one of them has its delivery report. With no free slot,
            // records are copied as before.
            // The slot holds one count per item plus the producer's own, taken at once (not a lock
            // per record); what was not enqueued from it is given back after the chunk.
            let holds = chunk.items.count + 1
            let slot = pinned.pin(chunk.bytes, holds: holds)
            var enqueued = 0
            noticeFatal()
            var read = 0
            chunk.bytes.withUnsafeBufferPointer { all in
                for item in chunk.items {
                    if case .report(let line) = item {
                        report(line)
                        continue
                    }
                    read += 1
                    sinceServed += 1
                    if sinceServed == 64 {
                        sinceServed = 0
                        // Counted in batches (an atomic add per line was a cost of its own),
                        // before the reports that may count the same lines published.
                        tally.read.add(read, ordering: .relaxed)
                        read = 0
                        producer.serveReports()
                        noticeFatal()
                    }
                    let tag = item.tag
                    let outcome: Outcome
                    if let fatal {
                        outcome = .notSent(fatal.description)
                    } else {
                        switch item {
                        case .fast(let r, let fields, _):
                            outcome = sendFast(UnsafeBufferPointer(rebasing: all[r]), fields, tag: tag, pinnedIn: slot)
                            if case .sent = outcome, slot != nil { enqueued += 1 }
                        case .event(let key, let value, let headers, _):
                            outcome = send(key: key, value: value, headers: headers, tag: tag)
                        case .rejected(let why, _): outcome = .rejected(why)
                        case .report: continue
                        }
                    }
                    if case .sent = outcome { continue }
                    let (file, line) = Tag.decode(tag)
                    let name = sources[file] == "-" ? "stdin" : sources[file]
                    switch outcome {
                    case .sent: break
                    case .rejected(let why):
                        tally.rejected.add(1, ordering: .relaxed)
                        report("\(name):\(line): rejected: \(why)")
                    case .notSent(let why):
                        tally.failed.add(1, ordering: .relaxed)
                        report("\(name):\(line): not sent: \(why)")
                    case .fatal(let error):
                        // librdkafka's own fatal error, when it has one, says more than `_FATAL`.
                        fatal = producer.fatalError ?? error
                        stop()
                        tally.failed.add(1, ordering: .relaxed)
                        report("\(name):\(line): not sent: \(error)")
                    }
                }
            }
            tally.read.add(read, ordering: .relaxed)
            // Drop this reference first, so the reader gets the buffer back unshared (no copy).
            if let slot {
                chunk.bytes = []
                pinned.release(slot, count: holds - enqueued)
            } else {
                let bytes = chunk.bytes
                chunk.bytes = []
                queue.recycle(consume bytes)
            }
        }
        outlet.close(timeout: flushTimeout)
        var summary = progress
        // Every line read is published, rejected or failed. Should librdkafka still owe reports
        // after the purge (close waits 10 s for them), those lines count as failed, not as nothing.
        let unreported = summary.read - summary.published - summary.rejected - summary.failed
        if unreported > 0 {
            summary.failed += unreported
            report("\(unreported) lines not acknowledged: librdkafka gave no delivery report for them after the purge")
        }
        summary.interrupted = shouldStop && fatal == nil
        let cannotRead = unreadable.names.withLock { $0 }
        summary.fatal = (fatal ?? producer.fatalError)?.description
            ?? (cannotRead.isEmpty ? nil : "cannot read \(cannotRead.joined(separator: ", "))")
        return summary
    }

    /// The reading side: splits lines (blank ones skipped) and hands them over in jobs that
    /// own their bytes; `check` validates them on the worker threads.
    private func read(into queue: ChunkQueue, unreadable: Unreadable) {
        for (index, source) in sources.enumerated() {
            let name = source == "-" ? "stdin" : source
            let fd = source == "-" ? STDIN_FILENO : open(source, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                unreadable.names.withLock { $0.append(name) }
                queue.submit(
                    Job(bytes: [], lines: [], reports: ["\(name): cannot open: \(String(cString: strerror(errno)))"]))
                continue
            }
            defer { if source != "-" { close(fd) } }
            var reader = LineReader(fd: fd, buffer: queue.buffer(), maxLineBytes: maxLineBytes)
            var lineNumber = 0
            var lines: [Job.Line] = []
            lines.reserveCapacity(2048)
            while true {
                while let next = reader.nextInBuffer() {
                    lineNumber += 1
                    let tag = Tag.encode(file: index, line: lineNumber)
                    guard case .line(let r) = next else {
                        lines.append(Job.Line(range: 0..<0, tag: tag, tooLong: true))
                        continue
                    }
                    let blank = reader.buffer.withUnsafeBufferPointer { all in
                        all[r].allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                    }
                    if !blank { lines.append(Job.Line(range: r, tag: tag)) }
                }
                if reader.atEnd || shouldStop { break }
                if !lines.isEmpty {
                    queue.submit(Job(bytes: reader.takeBuffer(replacement: queue.buffer()), lines: lines, reports: []))
                    lines.removeAll(keepingCapacity: true)
                }
                reader.fill(shouldStop: { self.shouldStop })
            }
            var reports: [String] = []
            if let error = reader.error {
                unreadable.names.withLock { $0.append(name) }
                reports.append("\(name):\(lineNumber + 1): read failed: \(error)")
            }
            if !lines.isEmpty || !reports.isEmpty {
                queue.submit(Job(bytes: reader.takeBuffer(replacement: []), lines: lines, reports: reports))
            }
            if shouldStop { break }
        }
    }

    /// The checking side (one per worker thread): each line through the fast path, else the
    /// canonical validator.
    private func check(_ job: Job, scanner: inout EventScanner?) -> Chunk {
        var items: [Chunk.Item] = []
        items.reserveCapacity(job.lines.count + job.reports.count)
        job.bytes.withUnsafeBufferPointer { all in
            for line in job.lines {
                if line.tooLong {
                    items.append(.rejected("longer than \(maxLineBytes) bytes (the line limit)", line.tag))
                    continue
                }
                items.append(Self.check(all, line.range, tag: line.tag, scanner: &scanner, validate: validate))
            }
        }
        for r in job.reports { items.append(.report(r)) }
        return Chunk(bytes: job.bytes, items: items)
    }

    enum Outcome {
        case sent
        case rejected(String)
        case notSent(String)
        case fatal(KafkaError)
    }

    /// `pinnedIn`: the slot holding `line`'s bytes, which then are not copied (see `PinnedBuffers`).
    private func sendFast(
        _ line: UnsafeBufferPointer<UInt8>, _ f: EventScanner.Fields, tag: UInt64, pinnedIn slot: Int?
    ) -> Outcome {
        do throws(KafkaError) {
            let sent = try outlet.send(
                scanned: line, f, tag: slot.map { Tag.pinned(tag, slot: $0) } ?? tag, copy: slot == nil,
                shouldStop: { self.shouldStop })
            return outcome(sent)
        } catch {
            return error.isFatal ? .fatal(error) : .notSent(error.description)
        }
    }

    private func outcome(_ sent: Sent) -> Outcome {
        switch sent {
        case .enqueued: return .sent
        case .blockedPII: return .rejected(Self.holdsPII)
        case .stopped: return .notSent("stopped while the producer queue was full")
        }
    }

    static let holdsPII = "holds an email-shaped value (PII is never published)"

    /// One line's verdict. The PII guard first, here on the checking threads: a line holding an
    /// email-shaped string never reaches Kafka, is rejected for that before any parse or schema
    /// error, and the rejection names the line, never the value. (The outlet's scanned path
    /// relies on this; its other path guards again.) Then the scanner (the fused contract check,
    /// then the tape), and what it is not sure of through the canonical validator.
    static func check(
        _ all: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, tag: UInt64, scanner: inout EventScanner?,
        validate: (JSON) -> [String]
    ) -> Chunk.Item {
        let bytes = UnsafeBufferPointer(rebasing: all[range])
        if PIIGuard.containsEmailAddress(bytes) { return .rejected(Self.holdsPII, tag) }
        if let fields = scanner?.scan(bytes) { return .fast(range, fields, tag) }
        return prepare(Array(bytes), tag: tag, validate: validate)
    }

    /// The canonical path for a line the fast path was not sure about: parse, validate, build.
    private static func prepare(_ line: [UInt8], tag: UInt64, validate: (JSON) -> [String]) -> Chunk.Item {
        let event: JSON
        do { event = try JSON.parse(line) } catch { return .rejected("not JSON (\(error))", tag) }
        let problems = validate(event)
        if !problems.isEmpty { return .rejected(problems.prefix(3).joined(separator: "; "), tag) }
        guard let hem = event["data"]?["hem"]?.stringValue ?? event["subject"]?.stringValue else {
            return .rejected("no data.hem or subject to key by", tag)
        }
        let headers = EventHeaders(
            id: event["id"]?.stringValue, type: event["type"]?.stringValue,
            specversion: event["specversion"]?.stringValue)
        return .event(Array(hem.utf8), line, headers, tag)
    }

    private func send(key: [UInt8], value: [UInt8], headers: EventHeaders, tag: UInt64) -> Outcome {
        do throws(KafkaError) {
            return outcome(
                try outlet.send(
                    key: key, value: value, headers: headers, tag: tag, copy: true, shouldStop: { self.shouldStop }))
        } catch {
            return error.isFatal ? .fatal(error) : .notSent(error.description)
        }
    }
}

/// Checked lines handed from the reading thread to the producing one; `bytes` holds the lines.
struct Chunk: @unchecked Sendable {
    // @unchecked: EventHeaders and the rest are Sendable; EventScanner.Fields holds only ranges.
    enum Item {
        case fast(Range<Int>, EventScanner.Fields, UInt64)
        /// Key, value and headers of a line the canonical validator passed.
        case event([UInt8], [UInt8], EventHeaders, UInt64)
        case rejected(String, UInt64)
        case report(String)

        var tag: UInt64 {
            switch self {
            case .fast(_, _, let t), .event(_, _, _, let t), .rejected(_, let t): return t
            case .report: return 0
            }
        }
    }
    var bytes: [UInt8]
    var items: [Item]
}

/// Lines read but not yet checked: ranges into `bytes`, with their tags.
struct Job: Sendable {
    struct Line: Sendable {
        var range: Range<Int>
        var tag: UInt64
        /// Over the line limit: skipped unread, rejected by number.
        var tooLong = false
    }
    var sequence = 0
    var bytes: [UInt8]
    var lines: [Line]
    var reports: [String]
}

/// The hand-over between the reading thread, the checking workers and the producing thread:
/// jobs go out in reading order, come back checked in any order, and are taken in reading
/// order again. Bounded (the reader waits when `capacity` jobs are outstanding), with a pool
/// of spare buffers.
final class ChunkQueue: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var jobsHead = 0
    private var done: [Int: Chunk] = [:]
    private var submitted = 0
    private var taken = 0
    private var jobsClosed = false
    private let workers: Int
    private var workersDone = 0
    private var spare: [[UInt8]] = []
    private let capacity: Int

    init(capacity: Int, workers: Int) {
        self.capacity = capacity
        self.workers = workers
    }

    /// Reader: queue a job, waiting while `capacity` jobs are not yet taken by the producer.
    func submit(_ job: Job) {
        condition.lock()
        while submitted - taken >= capacity { condition.wait() }
        var job = job
        job.sequence = submitted
        submitted += 1
        jobs.append(job)
        condition.broadcast()
        condition.unlock()
    }

    /// Reader: nothing more to read.
    func closeJobs() {
        condition.lock()
        jobsClosed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Worker: the next job to check, or nil once the reader is done and the jobs are out.
    func nextJob() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while jobsHead == jobs.count && !jobsClosed { condition.wait() }
        if jobsHead == jobs.count { return nil }
        let job = jobs[jobsHead]
        jobs[jobsHead] = Job(bytes: [], lines: [], reports: [])  // no lingering reference to its buffer
        jobsHead += 1
        if jobsHead == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            jobsHead = 0
        }
        return job
    }

    /// Worker: the checked chunk of job `sequence`.
    func finish(_ sequence: Int, _ chunk: Chunk) {
        condition.lock()
        done[sequence] = chunk
        condition.broadcast()
        condition.unlock()
    }

    func workerDone() {
        condition.lock()
        workersDone += 1
        condition.broadcast()
        condition.unlock()
    }

    /// Producer: the next chunk in reading order, or nil once everything is checked and taken.
    /// While waiting, calls `idle` every 50 ms (outside the lock).
    func take(idle: () -> Void) -> Chunk? {
        condition.lock()
        defer { condition.unlock() }
        while done[taken] == nil {
            let finished = jobsClosed && workersDone == workers && jobsHead == jobs.count
            if finished { return nil }
            if !condition.wait(until: Date(timeIntervalSinceNow: 0.05)) {
                condition.unlock()
                idle()
                condition.lock()
            }
        }
        let chunk = done.removeValue(forKey: taken)!
        taken += 1
        condition.broadcast()
        return chunk
    }

    /// Buffers kept for reuse. Records hold their chunk's buffer until their delivery reports,
    /// so many buffers come back at once when a batch is acknowledged; keeping only a few made
    /// the reader allocate (and fault in) a fresh megabyte for most chunks.
    static let spareLimit = 32

    /// Takes the caller's reference (`consuming`): a buffer still shared when the reader takes
    /// it back would be copied whole on its first write.
    func recycle(_ buffer: consuming [UInt8]) {
        guard buffer.count >= LineReader.blockSize else { return }
        condition.lock()
        if spare.count < Self.spareLimit { spare.append(consume buffer) }
        condition.unlock()
    }

    func buffer() -> [UInt8] {
        condition.lock()
        defer { condition.unlock() }
        return spare.popLast() ?? LineReader.block()
    }
}

final class Unreadable: Sendable {
    let names = Mutex<[String]>([])
}

final class Tally: Sendable {
    let read = Atomic<Int>(0)
    let published = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
}

/// A message's tag: the source index in the top 16 bits, then 8 bits for the `PinnedBuffers`
/// slot plus one (0: the value was copied), the line number in the low 40, so a delivery report
/// names its input line (and frees its bytes) without a lookup table.
enum Tag {
    static func encode(file: Int, line: Int) -> UInt64 { UInt64(file) << 48 | UInt64(line) }
    static func decode(_ tag: UInt64) -> (file: Int, line: Int) { (Int(tag >> 48), Int(tag & (1 << 40 - 1))) }
    static func pinned(_ tag: UInt64, slot: Int) -> UInt64 { tag | UInt64(slot + 1) << 40 }
    static func slot(_ tag: UInt64) -> Int? {
        let s = Int(tag >> 40 & 0xFF)
        return s == 0 ? nil : s - 1
    }
}

/// Chunk buffers that records point into (produced without RD_KAFKA_MSG_F_COPY): a slot holds
/// a buffer and counts the records that may still point into it plus the producer's own hold
/// (taken for every item of the chunk at once, the unused ones given back after it); at zero the
/// buffer goes back to the reader's pool. Saves librdkafka a large allocation and a copy per
/// record. A bounded number of slots: when none is free, records are copied instead.
final class PinnedBuffers: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    static let slots = 255
    private let lock = NSLock()
    private var buffers: [[UInt8]?] = Array(repeating: nil, count: PinnedBuffers.slots)
    private var counts = [Int](repeating: 0, count: PinnedBuffers.slots)
    private var free = Array((0..<PinnedBuffers.slots).reversed())
    private var _recycler: (@Sendable (consuming [UInt8]) -> Void)?

    /// Where released buffers go (the reader's pool).
    var recycler: (@Sendable (consuming [UInt8]) -> Void)? {
        get { lock.withLock { _recycler } }
        set { lock.withLock { _recycler = newValue } }
    }

    /// A slot holding `bytes` with `holds` counts (the caller's, and one per record that may
    /// point into it), or nil when none is free.
    func pin(_ bytes: [UInt8], holds: Int) -> Int? {
        lock.withLock {
            guard let slot = free.popLast() else { return nil }
            buffers[slot] = bytes
            counts[slot] = holds
            return slot
        }
    }

    /// Gives back `count` holds; the last one sends the buffer to the recycler.
    func release(_ slot: Int, count: Int = 1) {
        var bytes: [UInt8]?
        let recycle = lock.withLock { () -> (@Sendable (consuming [UInt8]) -> Void)? in
            counts[slot] -= count
            guard counts[slot] == 0 else { return nil }
            bytes = buffers[slot].take()
            free.append(slot)
            return _recycler
        }
        // Handed on without a second reference, so the reader gets it back unshared.
        if let recycle, let last = bytes.take() { recycle(consume last) }
    }
}

/// Lines from a file descriptor, read in large blocks. Waits for input with `poll` in short
/// slices so a stop request is noticed even while stdin is idle. A line longer than
/// `maxLineBytes` is skipped as it streams past (never held whole) and returned as `.tooLong`,
/// so one runaway line costs a bounded buffer, not memory without limit.
public struct LineReader {
    /// The default cap on one line: librdkafka's default message.max.bytes (a line over it
    /// could not be produced anyway).
    public static let defaultMaxLineBytes = 1_000_000
    static let blockSize = 1 << 20

    /// What `nextInBuffer` found.
    public enum Line: Equatable {
        /// A whole line: its bytes are `buffer[range]` (no newline).
        case line(Range<Int>)
        /// A line over the cap, skipped.
        case tooLong
    }

    let fd: Int32
    public let maxLineBytes: Int
    public private(set) var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    /// Inside a line over the cap: its bytes are dropped until its newline.
    private var skipping = false
    public private(set) var error: String?

    public init(fd: Int32, buffer: [UInt8] = [], maxLineBytes: Int = LineReader.defaultMaxLineBytes) {
        self.fd = fd
        self.maxLineBytes = maxLineBytes
        self.buffer = buffer.count >= Self.blockSize ? buffer : Self.block()
    }

    /// A buffer of `count` bytes, not zeroed first: only bytes `read` or copied in are ever
    /// looked at (zeroing a megabyte per chunk showed in the reading thread's profile).
    static func block(_ count: Int = blockSize) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// True when everything has been read and returned.
    public var atEnd: Bool { eof && start >= end && !skipping }

    /// The next complete line in the buffer (or, at end of input, the last unterminated one);
    /// nil when more input is needed (`fill`).
    public mutating func nextInBuffer() -> Line? {
        let found: Int? = start < end ? buffer.withUnsafeBytes { b in
            memchr(b.baseAddress! + start, 0x0A, end - start).map { $0 - UnsafeMutableRawPointer(mutating: b.baseAddress!) }
        } : nil
        if skipping {
            if let nl = found {
                start = nl + 1
                skipping = false
                return .tooLong
            }
            start = end
            if eof {
                skipping = false
                return .tooLong
            }
            return nil
        }
        if let nl = found {
            defer { start = nl + 1 }
            return nl - start > maxLineBytes ? .tooLong : .line(start..<nl)
        }
        if end - start > maxLineBytes {
            // Over the cap before its end is even in sight: drop what is here, skip the rest.
            skipping = true
            start = end
            return nextInBuffer()
        }
        guard eof, start < end else { return nil }
        defer { start = end }
        return .line(start..<end)
    }

    /// Hands over the current buffer (ranges returned so far stay valid in it) and carries the
    /// unfinished line over into `replacement`, taken over without a second reference (a
    /// borrowed one made the first write below copy the whole megabyte).
    mutating func takeBuffer(replacement: consuming [UInt8]) -> [UInt8] {
        var next = consume replacement
        if next.count < Self.blockSize { next = Self.block() }
        let tail = end - start
        if next.count < tail { next = Self.block(tail * 2) }
        if tail > 0 {
            next.withUnsafeMutableBytes { dst in
                buffer.withUnsafeBytes { src in _ = memcpy(dst.baseAddress!, src.baseAddress! + start, tail) }
            }
        }
        let old = buffer
        buffer = next
        start = 0
        end = tail
        return old
    }

    /// Reads more input (waiting in slices of 200 ms, checking `shouldStop`).
    public mutating func fill(shouldStop: () -> Bool = { false }) {
        if start > 0 {
            buffer.withUnsafeMutableBufferPointer { b in
                _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start)
            }
            end -= start
            start = 0
        }
        // Grows only while the unfinished line is within the cap (past it, it is skipped).
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        while !shouldStop() {
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
            return
        }
    }
}
