import AWSWire
import Crypto
import Events
import Foundation
import JSON
import Logging
import Synchronization

/// Settings of one stream-reader replica.
public struct StreamWorkerOptions: Sendable {
    public var table: String
    public var region: String
    public var streamARN: String?
    public var leaseTable: String
    public var workerID: String
    /// Where a shard without a checkpoint starts in a new deployment.
    public var startAtLatest = false
    /// A lease whose counter has not moved for this long (by this worker's clock) is expired.
    public var leaseDuration: Double = 10
    /// How often the worker checkpoints, and settles idle halves.
    public var tick: Double = 1
    public var discoveryInterval: Double = 60
    public var haltOnGap = false
    /// Events sent and not yet acknowledged before readers wait.
    public var maxInFlight = 50_000
    public var recordsPerCall = 1000

    public init(table: String, region: String, leaseTable: String, workerID: String) {
        self.table = table
        self.region = region
        self.leaseTable = leaseTable
        self.workerID = workerID
    }
}

/// How a worker's run ended.
public enum StreamExit: Sendable, Equatable {
    /// Graceful shutdown: checkpoints written, leases released.
    case stopped
    /// `--on-gap halt`: records were trimmed before they were read.
    case gapHalt(String)
    /// Kafka refused a delivery for good, or AWS could not be reached: nothing checkpointed past it.
    case fatal(String)
}

/// One replica of the stream reader: shares the stream's shards with the other replicas
/// through the lease table, reads each owned shard (parents before children) into the event
/// pipeline, and moves each shard's checkpoint only past what Kafka has acknowledged.
public final class StreamWorker: Sendable {
    struct Owned {
        var counter: Int
        var lastRenew: Date
        var written: String?
        var start: String?
        var parents: [String]
        var task: Task<Void, Never>?
        var reachedEnd = false
        /// Another replica asked for this lease: stop reading, checkpoint, release.
        var handingOff: Date?
        /// Creation time of the last record read, and whether the last page was empty.
        var lastReadTime: Double?
        var caughtUp = false
    }
    struct Observation {
        var counter: Int
        var owner: String?
        var since: Date
    }
    struct State {
        var owned: [String: Owned] = [:]
        var observed: [String: Observation] = [:]
        var leases: [String: Lease] = [:]
        var stopping = false
        var exit: StreamExit?
        var lastTick = Date()
        var scanned = false
        var discoverNow = true
        var streamARN = ""
        var lastDiscovery = Date.distantPast
        var lastScan = Date.distantPast
    }

    public let options: StreamWorkerOptions
    let api: StreamsAPI
    let leases: LeaseTable
    let resolver: MoveResolver
    let pipeline: EventPipeline
    let metrics: StreamMetrics
    let logger: Logger
    let state = Mutex(State())

    public init(
        options: StreamWorkerOptions, client: AWSClient, pipeline: EventPipeline, metrics: StreamMetrics,
        resolverGrace: Double = 2, logger: Logger
    ) {
        self.options = options
        api = StreamsAPI(client: client)
        leases = LeaseTable(client: client, name: options.leaseTable)
        resolver = MoveResolver(
            client: client, table: options.table, grace: resolverGrace, queried: { [metrics] in metrics.indexLookups.increment() })
        self.pipeline = pipeline
        self.metrics = metrics
        self.logger = logger
    }

    /// The loop is turning (for /healthz).
    public var isHealthy: Bool {
        state.withLock { Date().timeIntervalSince($0.lastTick) < max(10, 3 * options.tick + options.leaseDuration) }
    }
    /// Leases scanned at least once: the worker reads or waits for a share (for /readyz).
    public var isReady: Bool { state.withLock { $0.scanned && $0.exit == nil } }
    public var ownedShards: [String] { state.withLock { $0.owned.keys.sorted() } }

    /// Starts a graceful shutdown: stop polling, deliver, checkpoint, release.
    public func stop() { state.withLock { $0.stopping = true } }

    /// Runs until `stop()` (or a fatal condition); returns how it ended.
    public func run(shutdownTimeout: Double = 30) async -> StreamExit {
        do {
            let arn: String
            if let pinned = options.streamARN {
                try await api.checkStream(arn: pinned)
                arn = pinned
            } else {
                arn = try await api.tableStream(table: options.table).streamARN
            }
            state.withLock { $0.streamARN = arn }
            try await leases.ensureExists()
            logger.info("stream reader started", metadata: ["stream": "\(arn)", "worker": "\(options.workerID)", "lease_table": "\(options.leaseTable)"])
        } catch {
            return .fatal("\(error)")
        }
        var failures = 0
        while true {
            if state.withLock({ $0.stopping || $0.exit != nil }) { break }
            if let fatal = pipeline.fatal { setExit(.fatal(fatal)); break }
            do {
                try await tick()
                failures = 0
            } catch {
                failures += 1
                logger.warning("lease/checkpoint round failed; retrying", metadata: ["error": "\(error)", "in_a_row": "\(failures)"])
            }
            try? await Task.sleep(for: .milliseconds(Int(options.tick * 1000)))
        }
        return await shutdown(timeout: shutdownTimeout)
    }

    func setExit(_ e: StreamExit) { state.withLock { if $0.exit == nil { $0.exit = e } } }

    // MARK: The periodic round: settle, checkpoint, renew, balance, discover

    func tick() async throws {
        state.withLock { $0.lastTick = Date() }
        try pipeline.settleIdle(now: Date())
        try await writeCheckpoints()
        updateLag()
        try await renewDue()
        try await finishEndedShards()
        try await finishHandoffs()
        let (scanDue, discoverDue) = state.withLock { s -> (Bool, Bool) in
            let now = Date()
            return (
                now.timeIntervalSince(s.lastScan) >= max(options.tick, options.leaseDuration / 5),
                s.discoverNow || now.timeIntervalSince(s.lastDiscovery) >= options.discoveryInterval
            )
        }
        if discoverDue { try await discover() }
        if scanDue { try await balance() }
        startEligibleReaders()
    }

    /// Iterator age and time left before trim per owned shard, refreshed every round so that
    /// neither goes stale while a reader waits (Kafka away, back-pressure).
    func updateLag() {
        let now = Date().timeIntervalSince1970
        let shards = state.withLock { $0.owned.map { ($0.key, $0.value.lastReadTime, $0.value.caughtUp) } }
        for (shard, lastRead, caughtUp) in shards {
            let age: Double
            if let pending = pipeline.oldestUnsettled(shardID: shard) {
                age = max(0, now - pending)
            } else if caughtUp || lastRead == nil {
                age = 0
            } else {
                age = max(0, now - lastRead!)
            }
            metrics.iteratorAge(shard: shard, seconds: age)
            metrics.timeLeftBeforeTrim(shard: shard, seconds: max(0, 86_400 - age))
        }
    }

    func writeCheckpoints() async throws {
        let shards = state.withLock { Array($0.owned.keys) }
        for shard in shards {
            guard let safe = pipeline.safeCheckpoint(shardID: shard) else { continue }
            try await writeCheckpoint(shard, safe)
        }
    }

    func writeCheckpoint(_ shard: String, _ value: String) async throws {
        guard let o = state.withLock({ $0.owned[shard] }), o.written != value else { return }
        if try await leases.checkpoint(shardID: shard, owner: options.workerID, counter: o.counter, to: value) {
            state.withLock { $0.owned[shard]?.written = value }
            metrics.checkpoints.increment()
        } else {
            lose(shard, why: "checkpoint refused")
        }
    }

    func renewDue() async throws {
        let due = state.withLock { s in
            s.owned.filter { Date().timeIntervalSince($0.value.lastRenew) >= options.leaseDuration / 3 }
                .map { ($0.key, $0.value.counter) }
        }
        for (shard, counter) in due {
            if let next = try await leases.renew(shardID: shard, owner: options.workerID, counter: counter) {
                state.withLock {
                    $0.owned[shard]?.counter = next
                    $0.owned[shard]?.lastRenew = Date()
                }
            } else {
                lose(shard, why: "renewal refused")
            }
        }
    }

    /// A lease this worker no longer holds: stop reading it at once and never checkpoint it again
    /// (its reader and the checkpoint writes only act on shards still in `owned`).
    func lose(_ shard: String, why: String) {
        stopTracking(shard)?.cancel()
        metrics.leasesLost.increment()
        logger.warning("lease lost; stopped reading the shard", metadata: ["shard": "\(shard)", "why": "\(why)"])
    }

    /// Forgets a shard this worker no longer reads (lost, finished, handed over): out of
    /// `owned`, its ledger dropped, its lag series zeroed. Returns its reader task, if any.
    @discardableResult
    func stopTracking(_ shard: String) -> Task<Void, Never>? {
        let task = state.withLock { $0.owned.removeValue(forKey: shard)?.task }
        pipeline.forget(shardID: shard)
        metrics.notReading(shard: shard)
        metrics.leasesHeld.record(Double(ownedShards.count))
        return task
    }

    /// Shards read to their end: once every record is acknowledged, checkpoint SHARD_END, make
    /// the children's leases, and give the lease back.
    func finishEndedShards() async throws {
        let ended = state.withLock { $0.owned.filter { $0.value.reachedEnd }.map(\.key) }
        for shard in ended where pipeline.isSettled(shardID: shard) {
            try await writeCheckpoint(shard, Lease.shardEnd)
            guard let o = state.withLock({ $0.owned[shard] }), o.written == Lease.shardEnd else { continue }
            try await createChildLeases(of: shard)
            _ = try await leases.release(shardID: shard, owner: options.workerID, counter: o.counter)
            state.withLock {
                $0.leases[shard]?.checkpoint = Lease.shardEnd
                $0.leases[shard]?.owner = nil
                $0.lastScan = .distantPast  // look for the children at once
            }
            stopTracking(shard)
            logger.info("shard finished", metadata: ["shard": "\(shard)"])
        }
    }

    func createChildLeases(of parent: String) async throws {
        let arn = state.withLock { $0.streamARN }
        let children: [ShardInfo]
        if let found = try await api.childShards(streamARN: arn, parent: parent) {
            children = found
        } else {
            children = try await api.listShards(streamARN: arn).filter { $0.parentID == parent }
        }
        for c in children {
            try await leases.create(shardID: c.id, parents: c.parentID.map { [$0] } ?? [], checkpoint: nil)
        }
    }

    /// Lists the stream's shards and makes a lease for each new one. In a new deployment
    /// (no leases yet) with `--start latest`, closed shards are marked read and open ones start
    /// at their tip; shards that appear later are always read from their start.
    func discover() async throws {
        let arn = state.withLock { $0.streamARN }
        let shards = try await api.listShards(streamARN: arn)
        let existing = try await leases.all()
        let known = Set(existing.map(\.shardID))
        let fresh = existing.isEmpty
        for s in shards where !known.contains(s.id) {
            var checkpoint: String?
            if fresh && options.startAtLatest { checkpoint = s.isClosed ? Lease.shardEnd : Lease.latest }
            try await leases.create(shardID: s.id, parents: s.parentID.map { [$0] } ?? [], checkpoint: checkpoint)
        }
        // Shards read to their end and since trimmed from the stream (24 h on) need no lease:
        // their children count a missing parent as finished.
        let listed = Set(shards.map(\.id))
        for l in existing where l.isFinished && !listed.contains(l.shardID) {
            if try await leases.deleteFinished(shardID: l.shardID) {
                logger.info("lease of a trimmed shard deleted", metadata: ["shard": "\(l.shardID)"])
            }
        }
        state.withLock {
            $0.discoverNow = false
            $0.lastDiscovery = Date()
        }
    }

    /// Scans the leases, notes which have stopped moving, and takes this worker's fair share:
    /// free or expired leases first, then asks the busiest worker to hand one over (at most one
    /// request per round; the owner checkpoints and releases it, and the next round takes it).
    func balance() async throws {
        let all = try await leases.all()
        let now = Date()
        let me = options.workerID
        let (candidates, victim, target) = state.withLock { s -> ([Lease], Lease?, Int) in
            s.lastScan = now
            s.scanned = true
            var expired = Set<String>()
            for l in all {
                s.leases[l.shardID] = l
                if l.owner == me, l.handoffTo != nil, s.owned[l.shardID] != nil, s.owned[l.shardID]?.handingOff == nil {
                    s.owned[l.shardID]?.handingOff = now
                }
                if let seen = s.observed[l.shardID], seen.counter == l.counter, seen.owner == l.owner {
                    if now.timeIntervalSince(seen.since) > options.leaseDuration { expired.insert(l.shardID) }
                } else {
                    s.observed[l.shardID] = Observation(counter: l.counter, owner: l.owner, since: now)
                }
            }
            let active = all.filter { !$0.isFinished }
            var perOwner: [String: [Lease]] = [:]
            for l in active {
                guard let owner = l.owner, owner != me, !expired.contains(l.shardID) else { continue }
                perOwner[owner, default: []].append(l)
            }
            let workers = perOwner.count + 1
            let target = active.isEmpty ? 0 : (active.count + workers - 1) / workers
            let mine = s.owned.count
            guard mine < target else { return ([], nil, target) }
            let free = active.filter { l in
                s.owned[l.shardID] == nil && (l.owner == nil || (l.owner != me && expired.contains(l.shardID)) || l.owner == me)
            }
            // Parents before children: eligible leases first, then the rest.
            let ordered = free.sorted { a, b in
                let ea = isEligible(a, s.leases), eb = isEligible(b, s.leases)
                return ea != eb ? ea : a.shardID < b.shardID
            }
            var victim: Lease?
            if ordered.count < target - mine,
                let busiest = perOwner.max(by: { $0.value.count < $1.value.count }), busiest.value.count > target
            {
                victim = busiest.value.filter { $0.handoffTo == nil }.sorted { $0.shardID < $1.shardID }.last
            }
            return (Array(ordered.prefix(target - mine)), victim, target)
        }
        _ = target
        if let victim, try await leases.requestHandoff(victim, to: me) {
            logger.info("asked for a lease", metadata: ["shard": "\(victim.shardID)", "from": "\(victim.owner ?? "-")"])
        }
        for l in candidates {
            if let taken = try await leases.take(l, owner: me) {
                state.withLock {
                    $0.owned[l.shardID] = Owned(
                        counter: taken.counter, lastRenew: Date(), written: taken.checkpoint, start: taken.checkpoint,
                        parents: taken.parents)
                    $0.observed[l.shardID] = Observation(counter: taken.counter, owner: me, since: Date())
                    $0.leases[l.shardID] = taken
                }
                metrics.leasesTaken.increment()
                logger.info("lease taken", metadata: ["shard": "\(l.shardID)", "from": "\(l.owner ?? "-")"])
            }
        }
        metrics.leasesHeld.record(Double(ownedShards.count))
    }

    /// A shard may be read once its parents are read to their end, or are gone from the leases.
    func isEligible(_ l: Lease, _ known: [String: Lease]) -> Bool {
        l.parents.allSatisfy { p in known[p].map { $0.isFinished } ?? true }
    }

    func startEligibleReaders() {
        let arn = state.withLock { $0.streamARN }
        let toStart = state.withLock { s -> [(String, String?)] in
            var out: [(String, String?)] = []
            for (shard, o) in s.owned where o.task == nil && !o.reachedEnd && !s.stopping {
                guard o.parents.allSatisfy({ p in s.leases[p].map { $0.isFinished } ?? true }) else { continue }
                out.append((shard, o.start))
            }
            return out
        }
        for (shard, start) in toStart {
            if start == Lease.shardEnd {
                state.withLock { $0.owned[shard]?.reachedEnd = true }
                continue
            }
            let task = Task { await self.read(shard: shard, streamARN: arn, checkpoint: start) }
            state.withLock { $0.owned[shard]?.task = task }
        }
    }

    func reading(_ shard: String) -> Bool {
        state.withLock { s in
            !s.stopping && s.exit == nil && s.owned[shard].map { $0.handingOff == nil } == true
        } && !Task.isCancelled
    }

    /// Leases another replica asked for: once the reader stopped and what it read is
    /// acknowledged (held halves settled at once), checkpoint and release; bounded by 10 s.
    func finishHandoffs() async throws {
        let handing = state.withLock { $0.owned.filter { $0.value.handingOff != nil } }
        for (shard, o) in handing {
            if let task = o.task { await task.value }
            try pipeline.flushDetector(shardID: shard)
            let waited = Date().timeIntervalSince(o.handingOff!)
            guard pipeline.isSettled(shardID: shard) || waited > 10 else { continue }
            if let safe = pipeline.safeCheckpoint(shardID: shard) { try await writeCheckpoint(shard, safe) }
            guard let now = state.withLock({ $0.owned[shard] }) else { continue }
            _ = try await leases.release(shardID: shard, owner: options.workerID, counter: now.counter)
            stopTracking(shard)
            logger.info("lease handed over", metadata: ["shard": "\(shard)"])
        }
    }

    // MARK: Reading one shard

    func read(shard: String, streamARN arn: String, checkpoint: String?) async {
        var lastRead: String? = checkpoint.flatMap { $0 == Lease.latest ? nil : $0 }
        var start: IteratorStart = checkpoint == Lease.latest ? .latest : .trimHorizon
        var iterator: String?
        var idle = 0.0
        var backoff = 0.1
        var gapBefore: String??
        var pageReader = StreamPageReader()
        logger.info("reading shard", metadata: ["shard": "\(shard)", "from": "\(checkpoint ?? "TRIM_HORIZON")"])
        while reading(shard) {
            if pipeline.fatal != nil { return }
            if pipeline.inFlight > options.maxInFlight {
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            do {
                if iterator == nil {
                    iterator = try await api.iterator(
                        streamARN: arn, shard: shard, from: lastRead.map { .afterSequenceNumber($0) } ?? start)
                }
                metrics.getRecordsCalls.increment()
                let page = try await api.records(iterator: iterator!, limit: options.recordsPerCall, reader: &pageReader)
                backoff = 0.1
                if let before = gapBefore {
                    gapBefore = nil
                    try sendGap(shard: shard, arn: arn, before: before, after: page.records.first?.sequenceNumber)
                }
                let departing = await departingHalves(page.records, shard: shard)
                guard reading(shard) else { return }
                try pipeline.process(page.records, shardID: shard, streamARN: arn, departing: departing)
                // What the lag gauges are computed from, every round (updateLag).
                let lastTime = page.records.last?.time
                if page.records.last != nil { lastRead = page.lastSequenceNumber }
                state.withLock {
                    if let lastTime { $0.owned[shard]?.lastReadTime = lastTime }
                    $0.owned[shard]?.caughtUp = page.records.isEmpty
                }
                guard let next = page.nextIterator else {
                    state.withLock { $0.owned[shard]?.reachedEnd = true }
                    logger.info("shard read to its end", metadata: ["shard": "\(shard)"])
                    return
                }
                iterator = next
                // Pacing: again at once after a full page, a short pause after a partial one,
                // backing off to about a second while the shard is idle.
                if !page.records.isEmpty {
                    idle = 0
                    if page.records.count < options.recordsPerCall { try? await Task.sleep(for: .milliseconds(100)) }
                } else {
                    idle = min(1.0, max(0.1, idle * 2))
                    try? await Task.sleep(for: .milliseconds(Int(idle * 1000)))
                }
            } catch let failure as StreamsFailure {
                switch failure {
                case .expiredIterator:
                    metrics.expiredIterators.increment()
                    logger.info("iterator expired; renewing it from the last record read", metadata: ["shard": "\(shard)"])
                    iterator = nil
                case .trimmed:
                    metrics.gaps.increment()
                    let before = lastRead ?? checkpoint
                    logger.error(
                        "records were trimmed before they were read: a gap in the events",
                        metadata: ["shard": "\(shard)", "last_checkpoint": "\(before ?? "none")"])
                    if options.haltOnGap {
                        setExit(.gapHalt("shard \(shard): records trimmed after \(before ?? "the start") before they were read"))
                        return
                    }
                    gapBefore = .some(before)
                    lastRead = nil
                    start = .trimHorizon
                    iterator = nil
                case .notFound:
                    // The shard is gone from the stream (trimmed whole): nothing more to read.
                    metrics.gaps.increment()
                    logger.error("shard is gone from the stream", metadata: ["shard": "\(shard)", "last_read": "\(lastRead ?? "none")"])
                    if options.haltOnGap {
                        setExit(.gapHalt("shard \(shard) is gone from the stream before it was read to its end"))
                        return
                    }
                    try? sendGap(shard: shard, arn: arn, before: lastRead ?? checkpoint, after: nil)
                    state.withLock { $0.owned[shard]?.reachedEnd = true }
                    return
                case .other(let e):
                    if e.isThrottling || e.code == "LimitExceededException" { metrics.getRecordsThrottled.increment() }
                    logger.warning("GetRecords failed; backing off", metadata: ["shard": "\(shard)", "error": "\(e.code ?? e.kindName)"])
                    try? await Task.sleep(for: .milliseconds(Int(Double.random(in: 0.5...1) * backoff * 1000)))
                    backoff = min(5, backoff * 2)
                }
            } catch {
                setExit(.fatal("shard \(shard): \(error)"))
                return
            }
        }
    }

    /// Indexes of the page's REMOVEs that are the departing half of a loader move: those whose
    /// loader INSERT is in the same page or was already seen by the detector, and those a
    /// hem-index lookup finds moved (one lookup per hem per page, made concurrently, at most 16
    /// at a time).
    func departingHalves(_ records: [StreamRecord], shard: String) async -> Set<Int> {
        var arriving = Set<String>()
        // By index: `for r in records` copied each record out (a retain and a release of its
        // every String and buffer).
        for i in records.indices where records[i].eventName == "INSERT" {
            // previous_vup_id first: most INSERTs have none, and then no String is made.
            guard let img = records[i].newImage, let from = img.string(.previousVupID),
                let hem = img.string(.hem, reusing: records[i].keyHem)
            else { continue }
            arriving.insert(hem + "|" + from)
        }
        /// The REMOVEs of one hem left to a lookup: their indexes and vup_ids, the youngest time.
        struct Lookup {
            var hem: String
            var removes: [(index: Int, vup: String)] = []
            var time = 0.0
        }
        var lookups: [Lookup] = []
        var slot: [String: Int] = [:]
        var known = Set<Int>()
        for i in records.indices where records[i].eventName == "REMOVE" {
            let r = records[i]
            // The old image's keys, else (no image) the record's Keys.
            let keys =
                r.oldImage.map { ($0.string(.hem, reusing: r.keyHem), $0.string(.vupID, reusing: r.keyVupID)) }
                ?? (r.keyHem, r.keyVupID)
            guard let hem = keys.0, let vup = keys.1 else { continue }
            if arriving.contains(hem + "|" + vup) || pipeline.knowsDeparture(hem: hem, from: vup) {
                metrics.movesClassified(by: "record")
                known.insert(i)
                continue
            }
            let k = slot[hem] ?? lookups.count
            if k == lookups.count {
                slot[hem] = k
                lookups.append(Lookup(hem: hem))
            }
            lookups[k].removes.append((i, vup))
            lookups[k].time = max(lookups[k].time, r.time ?? 0)
        }
        guard !lookups.isEmpty else { return known }
        return await withTaskGroup(of: [Int].self) { group in
            var found = known
            var next = 0
            func add() {
                let lookup = lookups[next]
                next += 1
                group.addTask {
                    while self.reading(shard) {
                        do {
                            let departed = try await self.resolver.departingVups(
                                hem: lookup.hem, among: Set(lookup.removes.map(\.vup)), recordTime: lookup.time)
                            return lookup.removes.filter { departed.contains($0.vup) }.map(\.index)
                        } catch {
                            self.logger.warning(
                                "hem-index lookup failed; retrying", metadata: ["shard": "\(shard)", "error": "\(error)"])
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                    return []
                }
            }
            while next < min(16, lookups.count) { add() }
            while let indexes = await group.next() {
                for i in indexes {
                    found.insert(i)
                    metrics.movesClassified(by: "index")
                }
                if next < lookups.count { add() }
            }
            return found
        }
    }

    func sendGap(shard: String, arn: String, before: String?, after: String?) throws {
        let idInput = "gap|\(arn)|\(shard)|\(before ?? "")|\(after ?? "")"
        let id = SHA256.hash(data: Array(idInput.utf8)).withUnsafeBytes(Hex.string)
        let event: JSON = [
            "specversion": "1.0", "id": .string(id), "source": .string("aws:dynamodb:\(options.region):\(options.table)"),
            "type": "stream.gap", "subject": .string(shard), "time": .string(ChangeDetector.utcTimestamp(Date().timeIntervalSince1970)),
            "datacontenttype": "application/json",
            "dataschema": "https://schemas.hemstream.dev/events/change-event.v1.json",
            "data": [
                "stream_arn": .string(arn), "shard_id": .string(shard),
                "last_sequence_number_before": before.map(JSON.string) ?? .null,
                "first_sequence_number_after": after.map(JSON.string) ?? .null,
            ],
        ]
        try pipeline.sendGap(event, hem: shard)
    }

    // MARK: Shutdown: stop reading, deliver, checkpoint, release

    func shutdown(timeout: Double) async -> StreamExit {
        let deadline = Date().addingTimeInterval(timeout)
        let exit = state.withLock { s -> StreamExit in
            s.stopping = true
            return s.exit ?? .stopped
        }
        let tasks = state.withLock { $0.owned.values.compactMap(\.task) }
        for t in tasks { await t.value }
        let graceful = exit == .stopped
        if graceful { try? pipeline.flushDetector() }
        _ = await pipeline.sink.flush(timeout: .seconds(max(1, deadline.timeIntervalSinceNow - 2)))
        if pipeline.fatal == nil {
            // Each shard's checkpoint moves to what was acknowledged; then the lease is given back.
            // A failed write is made again until the deadline: a lost one means re-reading.
            while true {
                do {
                    try await writeCheckpoints()
                    try await finishEndedShards()
                    break
                } catch {
                    logger.warning("final checkpoint failed; retrying", metadata: ["error": "\(error)"])
                    if Date() > deadline { break }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        if graceful {
            let owned = state.withLock { $0.owned.map { ($0.key, $0.value.counter) } }
            for (shard, counter) in owned {
                do {
                    _ = try await leases.release(shardID: shard, owner: options.workerID, counter: counter)
                } catch {
                    logger.warning("release failed; the lease expires instead", metadata: ["shard": "\(shard)", "error": "\(error)"])
                }
                stopTracking(shard)
            }
            logger.info("leases released", metadata: ["count": "\(owned.count)"])
        }
        if let fatal = pipeline.fatal, exit == .stopped { return .fatal(fatal) }
        return exit
    }
}

extension AWSError {
    var kindName: String { code ?? "\(kind)" }
}
