import AWSWire
import ArgumentParser
import Export
import Foundation
import JSON
import Loader

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Stream export files (gzip or plain CSV, local or s3://) into the table.",
        discussion: """
            Every valid row is written with BatchWriteItem (25 per call, several calls in flight); a HEM \
            whose vup_id changed is moved (Delete old + Put new in one TransactWriteItems); a HEM on \
            several rows ends as one item, the last row's. With --previous only what changed between \
            the two exports is written, and vanished hems are deleted. With --reconcile the table itself \
            is the previous state (parallel Scan, external sort, merge-join): what a nightly job should \
            run, since it also repairs a table that drifted. Exports may be many parts (a glob or an S3 \
            prefix), each sorted or not. Throttling slows the load down; a write throttled without \
            progress for --max-throttle-seconds fails it.

            Prints a JSON summary on stdout. Exit 0: everything written; 2: some rows rejected, the \
            rest written; 1: a fatal error (one line naming the source and line); 5: stopped by \
            SIGTERM/SIGINT after finishing the calls in flight (the checkpoint is saved: run the same \
            command again to resume).

            Examples:
              hemstream load s3://exports/2026-11-25/ --rejects rejects.jsonl
              hemstream load day2.csv.gz --previous day1.csv.gz --max-wcu 4000
              hemstream load --reconcile s3://exports/2026-11-26/day_ --checkpoint /var/tmp/rec-1126.ckpt
              hemstream load 'exports/*.gz' --checkpoint /var/tmp/load-1125.ckpt
            """)

    @OptionGroup var aws: AWSOptions
    @OptionGroup var name: TableNameOption
    @OptionGroup var log: LogOptions

    @Argument(help: "Export sources: files, globs, s3://bucket/key or s3://bucket/prefix/.")
    var sources: [String]

    @Option(help: "The previous export (a file, glob or s3:// prefix of parts): write only what changed since it.")
    var previous: String?

    @Flag(help: "The table is the previous state: Scan it, write only what differs from the export, delete the rest.")
    var reconcile = false

    @Flag(
        help:
            "--previous/--reconcile: trust every part to be sorted by hem (streamed, nothing spilled; a part out of order stops the load)."
    )
    var assumeSorted = false

    @Flag(
        help:
            "--previous/--reconcile: go on when the export has no rows at all (every hem of the table or the previous export is then deleted)."
    )
    var allowEmptyExport = false

    @Option(help: "Directory for the external sort's temporary runs (default: $TMPDIR or /tmp).")
    var tmpDir: String?

    @Option(help: "MB each external sort buffers before it writes a run to --tmp-dir.")
    var sortBufferMB = ExternalSorter.defaultMemoryLimit / 1_048_576

    @Option(help: "--reconcile: parallel Scan segments.")
    var scanSegments = 8

    @Option(name: .customLong("max-rcu"), help: "--reconcile: cap on read capacity units per second for the Scan.")
    var maxRCU: Int?

    @Option(help: "Calls in flight at most (the loader halves this while DynamoDB throttles).")
    var concurrency = 8

    @Option(name: .customLong("max-wcu"), help: "Cap on write capacity units per second.")
    var maxWCU: Int?

    @Flag(help: "Read and validate, report what would be written, write nothing.")
    var dryRun = false

    @Option(help: "Write rejected rows here as JSON lines (source, line, reason, hem, field).")
    var rejects: String?

    @Option(help: "Record progress here; the same command run again resumes near where it stopped.")
    var checkpoint: String?

    @Option(help: "Seconds between checkpoint writes.")
    var checkpointInterval = 5.0

    @Option(help: "Seconds a write may stay throttled without any progress before the load fails.")
    var maxThrottleSeconds = 600.0

    @Option(help: "Publish ItemsProcessed / ItemsFailed per file: 'cloudwatch'.")
    var metrics: String?

    @Option(help: "CloudWatch namespace for --metrics.")
    var metricsNamespace = "Hemstream/Loader"

    func validate() throws {
        if sources.isEmpty { throw ValidationError("give at least one export source") }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if let maxWCU, maxWCU < 1 { throw ValidationError("--max-wcu must be at least 1") }
        if let metrics, metrics != "cloudwatch" { throw ValidationError("--metrics takes 'cloudwatch'") }
        if checkpointInterval <= 0 { throw ValidationError("--checkpoint-interval must be positive") }
        if reconcile && previous != nil { throw ValidationError("--reconcile and --previous exclude each other") }
        if scanSegments < 1 || scanSegments > 1_000_000 {
            throw ValidationError("--scan-segments must be 1 to 1000000")
        }
        if let maxRCU, maxRCU < 1 { throw ValidationError("--max-rcu must be at least 1") }
        if sortBufferMB < 1 { throw ValidationError("--sort-buffer-mb must be at least 1") }
        if maxThrottleSeconds <= 0 { throw ValidationError("--max-throttle-seconds must be positive") }
    }

    func run() async throws {
        log.bootstrap()
        do {
            try await load()
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            Console.line(
                "hemstream load: " + String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
            )
            throw ExitCode.failure
        }
    }

    func load() async throws {
        // Reads (S3) use the standard retries; writes go through a client that does not retry,
        // because the loader's TableWriter retries throttling itself (with backoff and AIMD).
        // Kubernetes sends SIGTERM before SIGKILL: stop reading, let the calls in flight finish,
        // save the checkpoint and print the summary.
        let stop = StopRequest()
        let signals = SignalWatcher { signal in
            if !stop.isRequested {
                Console.line("hemstream load: \(signal): stopping after the calls in flight; the checkpoint is saved")
            }
            stop.request()
        }
        defer { signals.cancel() }
        let readClient: AWSClient? = dryRun ? try? aws.client() : try aws.client()
        let writeClient: AWSClient? = dryRun ? nil : try aws.client(retryPolicy: RetryPolicy(maxAttempts: 1))
        let locations = try await ExportSources.expand(sources, client: readClient)
        var previousLocations: [(location: ExportLocation, size: Int64?)]?
        if let previous { previousLocations = try await ExportSources.expand([previous], client: readClient) }
        let options = LoadOptions(
            table: name.table, concurrency: concurrency, maxWCU: maxWCU, dryRun: dryRun,
            checkpointInterval: checkpointInterval, maxThrottleSeconds: maxThrottleSeconds, assumeSorted: assumeSorted,
            tmpDir: tmpDir, sortMemory: sortBufferMB * 1_048_576, scanSegments: scanSegments, maxRCU: maxRCU)
        let rejectsFile = try rejects.map { try RejectsFile(path: $0) }
        let checkpointFile = try checkpoint.map { try CheckpointFile(path: $0) }
        let progress: (@Sendable (LoadProgress) -> Void)? = Console.stderrIsTerminal ? LoadProgressLine.show : nil
        let loader = Loader(
            client: writeClient, options: options, rejects: rejectsFile, checkpoint: checkpointFile, progress: progress,
            stop: stop)

        var summaries: [SourceSummary] = []
        func finished(_ summary: SourceSummary) async {
            if progress != nil { LoadProgressLine.clear() }
            for warning in summary.warnings { Console.line("warning: \(summary.source): \(warning)") }
            summaries.append(summary)
            if metrics == "cloudwatch", !dryRun, let readClient {
                await publishMetrics(summary, client: readClient)
            }
        }
        // The parts of one export are one source to a merge-join; its size is theirs together.
        let partsName = sources.joined(separator: " ")
        let partsSize = locations.reduce(Int64(0) as Int64?) { total, part in
            total.flatMap { t in part.size.map { t + $0 } }
        }
        // An export without a single row (a wrong prefix, a failed UNLOAD of empty parts) would
        // make a merge-join delete everything: refuse it unless asked for.
        if previous != nil || reconcile, !allowEmptyExport,
            try await !Self.hasRows(locations.map(\.location), client: readClient)
        {
            throw ValidationError(
                "the export (\(partsName)) has no rows: --\(reconcile ? "reconcile" : "previous") would delete every "
                    + "item; check the source, or pass --allow-empty-export to empty the table")
        }
        if let previous, let previousLocations {
            await finished(
                try await loader.load(
                    locations.map(\.location), name: partsName, size: partsSize,
                    previous: previousLocations.map(\.location), previousName: previous, client: readClient))
        } else if reconcile {
            // The Scan's calls retry through the loader (backoff and jitter), as writes do.
            let scanClient = try aws.client(retryPolicy: RetryPolicy(maxAttempts: 1))
            await finished(
                try await loader.reconcile(
                    locations.map(\.location), name: partsName, size: partsSize, client: readClient,
                    scanClient: scanClient))
        } else {
            for (location, size) in locations where !stop.isRequested {
                await finished(try await loader.load(location, size: size, client: readClient))
            }
            // After a stop the held-back rows wait for the rerun (it reads every source again).
            if !stop.isRequested, let repeated = try await loader.loadRepeats(client: readClient) {
                await finished(repeated)
            }
        }
        try rejectsFile?.flush()

        var totals = SourceSummary(source: "*")
        for summary in summaries {
            totals.rowsRead += summary.rowsRead
            totals.stats.add(summary.stats)
            totals.skippedByCheckpoint += summary.skippedByCheckpoint
            totals.bytesRead += summary.bytesRead
            if let scanned = summary.scanned { totals.scanned = (totals.scanned ?? 0) + scanned }
            if let repaired = summary.repaired { totals.repaired = (totals.repaired ?? 0) + repaired }
            if let repeated = summary.repeatedHems { totals.repeatedHems = (totals.repeatedHems ?? 0) + repeated }
            if let unchanged = summary.unchanged { totals.unchanged = (totals.unchanged ?? 0) + unchanged }
            for (reason, count) in summary.rejected { totals.rejected[reason, default: 0] += count }
        }
        var totalsJSON = totals.json.objectValue ?? [:]
        totalsJSON["source"] = nil
        let output: JSON = [
            "table": .string(name.table),
            "dry_run": .bool(dryRun),
            "stopped": .bool(stop.isRequested),
            "sources": .array(summaries.map(\.json)),
            "totals": .object(totalsJSON),
        ]
        FileHandle.standardOutput.write(Data((output.serialized() + "\n").utf8))
        if stop.isRequested { throw Exit.stopped }
        if totals.rejectedTotal > 0 { throw Exit.partial }
    }

    /// Whether any of the sources has a data row (valid or not); reads each at most to its first.
    static func hasRows(_ locations: [ExportLocation], client: AWSClient?) async throws -> Bool {
        for location in locations {
            let reader = try await ExportReader(location: location, client: client)
            if let first = try await reader.nextBatch(maxRecords: 1), !first.isEmpty { return true }
        }
        return false
    }

    func publishMetrics(_ summary: SourceSummary, client: AWSClient) async {
        let dimension = [("File", summary.source)]
        let processed = summary.stats.puts + summary.stats.deletes + summary.stats.moves
        do {
            try await client.cloudWatchPutMetricData(
                namespace: metricsNamespace,
                metrics: [
                    MetricDatum(name: "ItemsProcessed", value: Double(processed), unit: "Count", dimensions: dimension),
                    MetricDatum(
                        name: "ItemsFailed", value: Double(summary.rejectedTotal), unit: "Count",
                        dimensions: dimension),
                ])
        } catch {
            Console.line("warning: metrics for \(summary.source) not published: \(error)")
        }
    }
}

/// The one-line progress display on a terminal: rows, rows/s, bytes of total, ETA.
enum LoadProgressLine {
    @Sendable static func show(_ p: LoadProgress) {
        let rate = p.elapsed > 0 ? Double(p.rows) / p.elapsed : 0
        var text = "\r\(p.source): \(p.rows) rows, \(Int(rate)) rows/s, \(megabytes(p.bytesRead))"
        if let total = p.totalBytes, total > 0 {
            text += " of \(megabytes(total))"
            if p.bytesRead > 0 {
                let remaining = p.elapsed * Double(total - p.bytesRead) / Double(p.bytesRead)
                text += ", ETA \(Int(remaining.rounded())) s"
            }
        }
        FileHandle.standardError.write(Data((text + "\u{1B}[K").utf8))
    }

    static func clear() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    static func megabytes(_ bytes: Int64) -> String {
        String(format: "%.1f MB", Double(bytes) / 1_048_576)
    }
}
