import AWSWire
import Export
import Foundation
import JSON
import Schemas

/// How a load runs: table, parallelism, pacing, and what to do besides writing.
public struct LoadOptions: Sendable {
    public var table: String
    public var concurrency: Int
    public var maxWCU: Int?
    public var dryRun: Bool
    /// Export records read per step (one checkpoint chunk).
    public var chunkSize: Int
    /// Seconds between checkpoint writes.
    public var checkpointInterval: Double
    /// Seconds a write may stay throttled without progress before the load fails.
    public var maxThrottleSeconds: Double
    /// Parts of `--previous`/`--reconcile` exports are trusted to be sorted by hem: k-way merged as
    /// they stream, nothing spilled; a part out of order stops the load.
    public var assumeSorted: Bool
    /// Where the external sort spills its runs (nil: the system's temporary directory).
    public var tmpDir: String?
    /// Bytes each external sort buffers before it spills a run.
    public var sortMemory: Int
    /// `--reconcile`: parallel Scan segments, and the read capacity per second they may use.
    public var scanSegments: Int
    public var maxRCU: Int?

    public init(
        table: String, concurrency: Int = 8, maxWCU: Int? = nil, dryRun: Bool = false, chunkSize: Int = 4096,
        checkpointInterval: Double = 5, maxThrottleSeconds: Double = 600, assumeSorted: Bool = false,
        tmpDir: String? = nil, sortMemory: Int = ExternalSorter.defaultMemoryLimit, scanSegments: Int = 8,
        maxRCU: Int? = nil
    ) {
        self.table = table
        self.concurrency = concurrency
        self.maxWCU = maxWCU
        self.dryRun = dryRun
        self.chunkSize = chunkSize
        self.checkpointInterval = checkpointInterval
        self.maxThrottleSeconds = maxThrottleSeconds
        self.assumeSorted = assumeSorted
        self.tmpDir = tmpDir
        self.sortMemory = sortMemory
        self.scanSegments = scanSegments
        self.maxRCU = maxRCU
    }
}

/// Progress of the current source, for the terminal.
public struct LoadProgress: Sendable {
    public var source: String
    public var rows: Int
    public var bytesRead: Int64
    public var totalBytes: Int64?
    public var elapsed: Double
}

/// A load that stopped: the source, the line (when one is known) and the reason, in one line.
public struct LoadError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var message: String
    public init(source: String, line: Int?, message: String) {
        self.source = source
        self.line = line
        self.message = message
    }
    /// `SOURCE:LINE: message` (or `SOURCE: message`), the form ExportError prints too.
    public var description: String { ExportError(source: source, line: line, message: message).description }
}

/// Streams export sources into the table. A full load puts every row, and turns a row whose
/// HEM still has its `UNRESOLVED#xx` item into a move (BatchGetItem on the sentinel key, then
/// one TransactWriteItems); a hem seen again later in the same load is held back and settled
/// at the end (`loadRepeats`), so it ends as one item, the last row's. An incremental load
/// (`previous`) and a reconcile (the table as the previous state) write only the merge-join's
/// changes. Rows are read a chunk at a time; many calls stay in flight; the checkpoint
/// records the chunk below which every call has been acknowledged.
public final class Loader {
    public let options: LoadOptions
    let writer: TableWriter?
    let rejects: RejectsFile?
    let checkpoint: CheckpointFile?
    let progress: (@Sendable (LoadProgress) -> Void)?
    /// Set by SIGTERM/SIGINT: read no further, finish the calls in flight, save the checkpoint.
    public let stop: StopRequest
    /// Full load: a fingerprint of every hem put so far in this load, and the rows of hems
    /// seen before (held back until every source is written; see `loadRepeats`).
    private var seenHems = Set<UInt64>()
    private var repeats: [ExportRow] = []
    private var fullLoadSources: [ExportLocation] = []

    /// `client` may be nil only for a dry run. It should not retry by itself (TableWriter does).
    public init(
        client: AWSClient?, options: LoadOptions, rejects: RejectsFile? = nil, checkpoint: CheckpointFile? = nil,
        progress: (@Sendable (LoadProgress) -> Void)? = nil, stop: StopRequest = StopRequest()
    ) {
        self.options = options
        self.stop = stop
        self.rejects = rejects
        self.checkpoint = checkpoint
        self.progress = progress
        if let client, !options.dryRun {
            writer = TableWriter(
                client: client, table: options.table, concurrency: AdaptiveConcurrency(maximum: options.concurrency),
                bucket: options.maxWCU.map { WriteCapacityBucket(unitsPerSecond: $0) },
                maxThrottleSeconds: options.maxThrottleSeconds)
        } else {
            writer = nil
        }
    }

    /// What one step of reading produced. Rows go straight into the arrays they are sent
    /// from: lookups are sent as slices of `lookups`, without copying a row.
    struct Chunk {
        var rejections: [RowRejection] = []
        var writes: [WriteOperation] = []
        /// Full-load rows with a real VUP: check their sentinel item first.
        var lookups: [ExportRow] = []
        var mark: SourceProgress
        var skipped = 0
    }

    enum Job: Sendable {
        case write([WriteOperation])
        case moves([(from: ItemKey, to: ExportRow)])
        case lookup(ArraySlice<ExportRow>)

        var firstLine: Int? {
            switch self {
            case .write(let ops): return ops.first?.line
            case .moves(let moves): return moves.first?.to.line
            case .lookup(let rows): return rows.first?.line
            }
        }
    }

    enum Outcome: Sendable {
        case done(chunk: Int, stats: WriteStats)
        case lookedUp(chunk: Int, rows: ArraySlice<ExportRow>, found: Set<ItemKey>, stats: WriteStats)
    }

    struct JobFailure: Error {
        var line: Int?
        var error: any Error
    }

    // MARK: Sources

    /// A full load of one source.
    public func load(_ location: ExportLocation, size: Int64?, client: AWSClient?) async throws -> SourceSummary {
        let name = location.description
        var summary = SourceSummary(source: name)
        let reader: ExportReader
        do {
            reader = try await ExportReader(location: location, client: client)
        } catch let error as ExportError {
            throw LoadError(source: error.source, line: error.line, message: error.message)
        }
        let resume = checkpoint?.progress(for: name, size: size)
        var resumeLine = 0
        if case .line(let line) = resume { resumeLine = line }
        if resume == .done { resumeLine = Int.max }
        let dryRun = options.dryRun
        fullLoadSources.append(location)
        try await run(key: name, size: size, summary: &summary) {
            guard let records = try await reader.nextBatch(maxRecords: self.options.chunkSize) else { return nil }
            var chunk = Chunk(mark: .line(0))
            chunk.lookups.reserveCapacity(records.count)
            var last = 0
            for record in records {
                switch record {
                case .rejected(let rejection):
                    chunk.rejections.append(rejection)
                    last = max(last, rejection.line)
                case .row(let row):
                    last = max(last, row.line)
                    if !self.seenHems.insert(Self.fingerprint(row.hem)).inserted {
                        self.repeats.append(row)
                    } else if row.line <= resumeLine {
                        chunk.skipped += 1
                    } else if dryRun || Sentinel.isSentinel(row.vupID) {
                        chunk.writes.append(.put(row))
                    } else {
                        chunk.lookups.append(row)
                    }
                }
            }
            chunk.mark = .line(last)
            return chunk
        } finish: { summary in
            summary.rowsRead = reader.recordsRead
            summary.bytesRead = reader.bytesRead
            summary.warnings = reader.warnings
        } progressOf: {
            (reader.recordsRead, reader.bytesRead, reader.totalBytes)
        }
        return summary
    }

    /// An incremental load: only what changed from `previous` to `location`.
    public func load(
        _ location: ExportLocation, size: Int64?, previous: ExportLocation, client: AWSClient?
    ) async throws -> SourceSummary {
        try await load(
            [location], name: location.description, size: size, previous: [previous],
            previousName: previous.description, client: client)
    }

    /// An incremental load of a multi-part export against a multi-part previous export: each side
    /// is read in hem order (`hemOrdered`), and only the merge-join's changes are written.
    public func load(
        _ locations: [ExportLocation], name: String, size: Int64?, previous: [ExportLocation], previousName: String,
        client: AWSClient?
    ) async throws -> SourceSummary {
        var summary = SourceSummary(source: name, previous: previousName)
        let old = try await hemOrdered(previous, client: client)
        let current = try await hemOrdered(locations, client: client)
        let diff = ExportDiff(previous: old, current: current)
        try await apply(diff, key: name + " since " + previousName, size: size, current: current, summary: &summary)
        summary.warnings = old.warnings + current.warnings
        summary.previousRejected = diff.previousRejected
        return summary
    }

    /// The parts in hem order: merged as they stream with `assumeSorted`, else through the
    /// external sort. Readers of the sort are opened one after the other.
    func hemOrdered(_ locations: [ExportLocation], client: AWSClient?) async throws -> HemOrderedInput {
        try await Self.hemOrdered(locations, client: client, options: options).input
    }

    /// The export's parts in hem order (merged as they stream with `--assume-sorted`, else
    /// sorted first). Static, and its result handed over in a box, so that `--reconcile` can
    /// read and sort the export on a task of its own while the Scan runs.
    static func hemOrdered(_ locations: [ExportLocation], client: AWSClient?, options: LoadOptions) async throws
        -> HandedOver<HemOrderedInput>
    {
        do {
            if options.assumeSorted {
                var readers: [ExportReader] = []
                for location in locations { readers.append(try await ExportReader(location: location, client: client)) }
                return HandedOver(.merging(readers))
            }
            return HandedOver(
                try await .sorting(
                    locations, open: { try await ExportReader(location: $0, client: client) },
                    directory: options.tmpDir, memoryLimit: options.sortMemory))
        } catch let error as ExportError {
            throw LoadError(source: error.source, line: error.line, message: error.message)
        }
    }

    /// Writes a merge-join's changes, checkpointed by hem.
    func apply(
        _ diff: ExportDiff, key: String, size: Int64?, current: HemOrderedInput, summary: inout SourceSummary
    ) async throws {
        let resume = checkpoint?.progress(for: key, size: size)
        var resumeHem: String? = nil
        if case .hem(let hem) = resume { resumeHem = hem }
        let skipAll = resume == .done
        let report = options.dryRun
        try await run(key: key, size: size, summary: &summary) {
            guard let changes = try await diff.nextBatch(maxChanges: self.options.chunkSize) else { return nil }
            var chunk = Chunk(mark: .hem(""))
            var last = ""
            for change in changes {
                let operation: WriteOperation
                switch change {
                case .rejected(let rejection):
                    chunk.rejections.append(rejection)
                    continue
                case .added(let row), .changed(_, let row):
                    operation = .put(row)
                case .moved(let old, let new):
                    operation = .move(from: ItemKey(vupID: old.vupID, hem: old.hem), to: new)
                case .removed(let old):
                    operation = .delete(ItemKey(vupID: old.vupID, hem: old.hem), line: old.line)
                }
                let hem = operation.key.hem
                last = max(last, hem)
                if skipAll || (resumeHem.map { hem <= $0 } ?? false) {
                    chunk.skipped += 1
                } else {
                    chunk.writes.append(operation)
                    if report { Self.printChange(operation) }
                }
            }
            chunk.mark = .hem(last)
            return chunk
        } finish: { summary in
            summary.rowsRead = current.recordsRead
            summary.bytesRead = current.bytesRead
            summary.unchanged = diff.unchanged
        } progressOf: {
            (current.recordsRead, current.bytesRead, current.totalBytes)
        }
    }

    /// `--dry-run` of a merge-join: one JSON line per write it would make (keys only, never the email).
    static func printChange(_ operation: WriteOperation) {
        var w = JSONWriter(capacity: 200)
        w.beginObject()
        switch operation {
        case .put(let row):
            w.key("put")
            ItemEncoding.writeKey(ItemKey(vupID: row.vupID, hem: row.hem), to: &w)
        case .delete(let key, _):
            w.key("delete")
            ItemEncoding.writeKey(key, to: &w)
        case .move(let from, let row):
            w.key("move")
            ItemEncoding.writeKey(from, to: &w)
            w.key("to")
            ItemEncoding.writeKey(ItemKey(vupID: row.vupID, hem: row.hem), to: &w)
        }
        w.endObject()
        FileHandle.standardOutput.write(Data(w.bytes + [0x0A]))
    }

    // MARK: Repeated hems of a full load

    /// A hem's 64-bit fingerprint (FNV-1a): the full load remembers hems by it. A collision only
    /// holds a row back for `loadRepeats`, which settles it exactly.
    static func fingerprint(_ hem: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in hem.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// After every source of a full load: the rows held back because their hem came earlier in
    /// the load. Each such hem ends as its last row's item. Only the first row of a hem was
    /// written (or was already written, below a checkpoint), so the sources are read again for
    /// the first row's vup_id, and the last row moves the hem from there when it differs. Nil
    /// when no hem repeated (the usual case: nothing is read again).
    public func loadRepeats(client: AWSClient?) async throws -> SourceSummary? {
        guard !repeats.isEmpty else { return nil }
        var summary = SourceSummary(source: "repeated hems")
        var lastRow: [String: ExportRow] = [:]
        for row in repeats { lastRow[row.hem] = row }
        var firstVup: [String: String] = [:]
        do {
            for location in fullLoadSources {
                let reader = try await ExportReader(location: location, client: client)
                while let batch = try await reader.nextBatch() {
                    for case .row(let row) in batch where lastRow[row.hem] != nil && firstVup[row.hem] == nil {
                        firstVup[row.hem] = row.vupID
                    }
                }
            }
        } catch let error as ExportError {
            throw LoadError(source: error.source, line: error.line, message: error.message)
        }
        var operations: [WriteOperation] = []
        for hem in lastRow.keys.sorted() {
            guard let row = lastRow[hem] else { continue }
            if let from = firstVup[hem], from != row.vupID {
                operations.append(.move(from: ItemKey(vupID: from, hem: hem), to: row))
            } else {
                operations.append(.put(row))
            }
        }
        summary.repeatedHems = lastRow.count
        let done = checkpoint?.progress(for: summary.source, size: nil) == .done
        var pending: [WriteOperation]? = operations
        try await run(key: summary.source, size: nil, summary: &summary) {
            guard let writes = pending else { return nil }
            pending = nil
            var chunk = Chunk(mark: .line(0))
            if done { chunk.skipped = writes.count } else { chunk.writes = writes }
            return chunk
        } finish: { _ in
        } progressOf: {
            (0, 0, nil)
        }
        repeats = []
        return summary
    }

    // MARK: Pipeline

    /// Reads chunks with `next`, turns them into calls, keeps up to the adaptive limit of calls
    /// in flight, and moves the checkpoint past each chunk whose calls have all come back.
    func run(
        key: String, size: Int64?, summary: inout SourceSummary,
        next: () async throws -> Chunk?, finish: (inout SourceSummary) -> Void,
        progressOf: () -> (rows: Int, bytes: Int64, total: Int64?)
    ) async throws {
        let started = DispatchTime.now().uptimeNanoseconds
        var lastCheckpoint = started
        var lastProgress: UInt64 = 0
        let source = summary.source
        let writer = self.writer
        do {
            try await withThrowingTaskGroup(of: Outcome.self) { group in
                var inFlight = 0
                var queue: [(chunk: Int, job: Job)] = []
                var queueHead = 0
                var pending: [Int: Int] = [:]
                var marks: [Int: SourceProgress] = [:]
                var nextToAcknowledge = 0
                var chunkNumber = 0
                var unsaved = false

                func enqueue(_ chunk: Int, _ job: Job) {
                    queue.append((chunk, job))
                    pending[chunk, default: 0] += 1
                }

                func enqueueWrites<Operations: Sequence<WriteOperation>>(_ chunk: Int, _ operations: Operations) {
                    var builder = BatchBuilder()
                    var moves: [(from: ItemKey, to: ExportRow)] = []
                    var movesBytes = 0
                    for operation in operations {
                        if case .move(let from, let row) = operation {
                            // A transaction takes 100 actions and 4 MB at most: 25 moves, ~3.5 MB.
                            if moves.count == 25 || movesBytes + operation.requestSize > 3_500_000 {
                                enqueue(chunk, .moves(moves))
                                moves.removeAll()
                                movesBytes = 0
                            }
                            moves.append((from, row))
                            movesBytes += operation.requestSize
                        } else if let full = builder.add(operation) {
                            enqueue(chunk, .write(full))
                        }
                    }
                    if !builder.isEmpty { enqueue(chunk, .write(builder.take())) }
                    if !moves.isEmpty { enqueue(chunk, .moves(moves)) }
                }

                func acknowledge() throws {
                    while let mark = marks[nextToAcknowledge], pending[nextToAcknowledge, default: 0] == 0 {
                        marks[nextToAcknowledge] = nil
                        pending[nextToAcknowledge] = nil
                        nextToAcknowledge += 1
                        if let checkpoint {
                            checkpoint.record(mark, for: key, size: size)
                            unsaved = true
                        }
                    }
                    let now = DispatchTime.now().uptimeNanoseconds
                    if let checkpoint, unsaved, Double(now - lastCheckpoint) / 1e9 >= options.checkpointInterval {
                        try checkpoint.save()
                        lastCheckpoint = now
                        unsaved = false
                    }
                }

                func handle(_ outcome: Outcome) throws {
                    inFlight -= 1
                    switch outcome {
                    case .done(let chunk, let stats):
                        summary.stats.add(stats)
                        pending[chunk, default: 0] -= 1
                    case .lookedUp(let chunk, let rows, let found, let stats):
                        summary.stats.add(stats)
                        if found.isEmpty {
                            enqueueWrites(chunk, rows.lazy.map { WriteOperation.put($0) })
                        } else {
                            enqueueWrites(
                                chunk,
                                rows.lazy.map { row in
                                    let sentinel = ItemKey(vupID: Sentinel.vupID(forHem: row.hem), hem: row.hem)
                                    return found.contains(sentinel) ? .move(from: sentinel, to: row) : .put(row)
                                })
                        }
                        pending[chunk, default: 0] -= 1
                    }
                    try acknowledge()
                }

                /// Sends queued calls up to the concurrency limit. After a stop request nothing
                /// more is sent: the queued calls' chunks stay unacknowledged, so a rerun redoes them.
                func dispatch() async throws {
                    while queueHead < queue.count && !stop.isRequested {
                        guard let writer else { fatalError("dispatch without a writer") }
                        if inFlight >= writer.concurrency.limit {
                            if let outcome = try await group.next() { try handle(outcome) }
                            continue
                        }
                        let (chunk, job) = queue[queueHead]
                        queueHead += 1
                        inFlight += 1
                        group.addTask { try await Self.perform(job, chunk: chunk, writer: writer) }
                    }
                    queue.removeAll(keepingCapacity: true)
                    queueHead = 0
                }

                while !stop.isRequested, let chunk = try await next() {
                    let number = chunkNumber
                    chunkNumber += 1
                    summary.skippedByCheckpoint += chunk.skipped
                    for rejection in chunk.rejections {
                        summary.rejected[rejection.reason, default: 0] += 1
                        try rejects?.write(rejection)
                    }
                    // BatchGetItem takes 100 keys at most.
                    var start = 0
                    while start < chunk.lookups.count {
                        let end = min(chunk.lookups.count, start + 100)
                        enqueue(number, .lookup(chunk.lookups[start..<end]))
                        start = end
                    }
                    let writes = chunk.writes
                    if writer == nil {
                        // Dry run: count what would be written.
                        for operation in writes {
                            switch operation {
                            case .put: summary.stats.puts += 1
                            case .delete: summary.stats.deletes += 1
                            case .move: summary.stats.moves += 1
                            }
                        }
                    } else {
                        enqueueWrites(number, writes)
                    }
                    marks[number] = chunk.mark
                    try acknowledge()
                    if writer != nil { try await dispatch() }
                    if let progress {
                        let now = DispatchTime.now().uptimeNanoseconds
                        if now - lastProgress > 250_000_000 {
                            lastProgress = now
                            let p = progressOf()
                            progress(
                                LoadProgress(
                                    source: source, rows: p.rows, bytesRead: p.bytes, totalBytes: p.total,
                                    elapsed: Double(now - started) / 1e9))
                        }
                    }
                }
                while inFlight > 0 {
                    if let outcome = try await group.next() { try handle(outcome) }
                    if queueHead < queue.count { try await dispatch() }
                }
                try acknowledge()
            }
        } catch {
            // What was acknowledged before the failure stays recorded, so a rerun resumes there.
            try? checkpoint?.save()
            switch error {
            case let failure as JobFailure:
                throw LoadError(source: source, line: failure.line, message: String(describing: failure.error))
            case let error as ExportError:
                throw LoadError(source: error.source, line: error.line, message: error.message)
            default:
                throw error
            }
        }
        finish(&summary)
        if stop.isRequested {
            // Everything read was acknowledged above; the source is not done, so a rerun resumes.
            summary.stopped = true
            try checkpoint?.save()
        } else if let checkpoint {
            checkpoint.record(.done, for: key, size: size)
            try checkpoint.save()
        }
        try rejects?.flush()
    }

    /// The sentinel key of each row's HEM, each once: BatchGetItem rejects a list that names a
    /// key twice. An export is sorted by HEM, so a strictly ascending run proves there is no
    /// repeat without hashing; anything else is deduplicated through a set.
    static func sentinelKeys(_ rows: ArraySlice<ExportRow>) -> [ItemKey] {
        var keys: [ItemKey] = []
        keys.reserveCapacity(rows.count)
        var ascending = true
        var previous: String? = nil
        for row in rows {
            if let previous, !(previous < row.hem) { ascending = false }
            previous = row.hem
            keys.append(ItemKey(vupID: Sentinel.vupID(forHem: row.hem), hem: row.hem))
        }
        if ascending { return keys }
        var seen = Set<String>()
        return keys.filter { seen.insert($0.hem).inserted }
    }

    static func perform(_ job: Job, chunk: Int, writer: TableWriter) async throws -> Outcome {
        do {
            switch job {
            case .write(let operations):
                return .done(chunk: chunk, stats: try await writer.write(operations))
            case .moves(let moves):
                return .done(chunk: chunk, stats: try await writer.move(moves))
            case .lookup(let rows):
                let (found, stats) = try await writer.existing(sentinelKeys(rows))
                return .lookedUp(chunk: chunk, rows: rows, found: found, stats: stats)
            }
        } catch {
            throw JobFailure(line: job.firstLine, error: error)
        }
    }
}
