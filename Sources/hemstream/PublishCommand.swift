import ArgumentParser
import Dispatch
import Events
import Foundation
import JSON
import Kafka
import Publish
import Synchronization

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish change events (NDJSON) to Kafka, keyed by hem: replays, backfills, re-drives.",
        discussion: """
            Reads FILEs (or stdin, or `-`) line by line. Each line must be a change event valid against \
            schemas/events/change-event.v1.json; an invalid line is rejected with its file and line on \
            stderr and the rest continue. Every line read is either acknowledged by the broker or \
            reported failed by file and line. The summary {read, published, rejected, failed, \
            interrupted} is printed as JSON on stdout.

            Producer defaults: enable.idempotence=true, acks=all, compression lz4, message.timeout.ms \
            from --message-timeout. Any librdkafka property can be given with --kafka-config FILE \
            (key=value lines, # comments) and -X key=value (later wins; SASL/SSL pass straight through).

            Headers: content-type=application/cloudevents+json, ce_specversion, ce_id, ce_type.

            SIGTERM/SIGINT: stop reading, flush within --flush-timeout, report what was not acknowledged.
            Exit codes: 0 all published; 2 some lines rejected or failed, or interrupted; 1 fatal error.

            Examples:
              hemstream publish --brokers kafka-1:9092,kafka-2:9092 --topic hem-changes events.ndjson
              zcat events.ndjson.gz | hemstream publish --brokers mock --topic hem-changes
              hemstream publish --brokers b:9093 --topic t --kafka-config client.properties -X linger.ms=20 f.ndjson
            """)

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var log: LogOptions
    @Option(help: "The topic to publish to.") var topic: String
    @Option(help: "Seconds a message may take to be acknowledged (librdkafka message.timeout.ms).")
    var messageTimeout: Double = 120
    @Option(help: "Seconds to flush at the end or on SIGTERM before what is left is reported failed.")
    var flushTimeout: Double = 30
    @Argument(help: "NDJSON files of change events; none or `-` reads stdin.") var files: [String] = []

    func validate() throws {
        if topic.isEmpty { throw ValidationError("--topic must not be empty") }
        if flushTimeout < 0 || messageTimeout <= 0 {
            throw ValidationError("timeouts must be positive")
        }
    }

    func run() async throws {
        log.bootstrap()
        let fail = { (message: String) -> ExitCode in
            Console.line("hemstream publish: \(message)")
            return ExitCode.failure
        }
        let config: KafkaConfiguration
        let mock: KafkaMockCluster?
        do {
            (config, mock) = try kafka.configuration(messageTimeoutMs: Int(messageTimeout * 1000), topics: [topic])
        } catch { throw fail("\(error)") }
        for f in files where f != "-" && !FileManager.default.isReadableFile(atPath: f) {
            throw fail("\(f): cannot read")
        }

        let schema: ChangeEventSchema
        do { schema = try ChangeEventSchema.load() } catch { throw fail("cannot load the event schema: \(error)") }
        // The compiled copy passes the common case fast; anything it is not sure about goes to
        // the canonical validator, which decides and words the rejection.
        let compiled = CompiledSchema(schema.root)
        // Signals are watched before the brokers are: a SIGTERM while waiting for them ends the
        // wait with a summary, instead of killing the process or waiting out the timeout.
        let stop = PublishStop()
        let signals = SignalWatcher { signal in
            if let publisher = stop.request(signal) {
                Console.line("hemstream publish: \(signal): stopped reading; flushing (up to \(flushTimeout) s)")
                publisher.stop()
            }
        }
        defer { signals.cancel() }
        let publisher: NDJSONPublisher
        do {
            publisher = try NDJSONPublisher(
                topic: topic, configuration: config, sources: files, createTopic: kafka.createTopic,
                metadataTimeout: .seconds(kafka.metadataTimeout), logLevel: kafka.verbose ? 7 : -1,
                shouldStop: { stop.signal != nil },
                validate: { compiled.certainlyValid($0) ? [] : schema.validate($0) }, fastPath: compiled, report: { Console.line($0) })
        } catch {
            if error.isStopped, let signal = stop.signal {
                Console.line("hemstream publish: \(signal): \(error.message); nothing was read")
                FileHandle.standardOutput.write(Data((NDJSONPublisher.Summary(interrupted: true).json + "\n").utf8))
                throw Exit.partial
            }
            throw fail(error.description)
        }
        if let signal = stop.attach(publisher) {
            Console.line("hemstream publish: \(signal): stopped before reading")
            publisher.stop()
        }
        let progress = Console.stderrIsTerminal ? ProgressLine(publisher) : nil
        let bound = Duration.seconds(flushTimeout)
        let summary = await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: publisher.run(flushTimeout: bound)) }
            thread.name = "publish"
            thread.start()
        }
        progress?.stop()
        withExtendedLifetime(mock) {}

        FileHandle.standardOutput.write(Data((summary.json + "\n").utf8))
        if let fatal = summary.fatal { throw fail(fatal) }
        if summary.rejected > 0 || summary.failed > 0 || summary.interrupted { throw Exit.partial }
    }
}

/// The first signal, and the publisher it must stop once there is one.
final class PublishStop: Sendable {
    private let state = Mutex<(signal: String?, publisher: NDJSONPublisher?)>((nil, nil))

    /// The signal that asked to stop, if any.
    var signal: String? { state.withLock { $0.signal } }

    /// Records `signal`; returns the publisher to stop, when it exists already.
    func request(_ signal: String) -> NDJSONPublisher? {
        state.withLock { s in
            if s.signal == nil { s.signal = signal }
            return s.publisher
        }
    }

    /// From now on signals stop `publisher`; returns the signal that came before, if one did.
    func attach(_ publisher: NDJSONPublisher) -> String? {
        state.withLock { s in
            s.publisher = publisher
            return s.signal
        }
    }
}

/// Turns SIGTERM and SIGINT into a callback (once per signal) instead of ending the process.
final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    init(_ handler: @escaping @Sendable (String) -> Void) {
        sources = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")].map { number, name in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(name) }
            source.resume()
            return source
        }
    }

    func cancel() { for s in sources { s.cancel() } }
}

/// A progress line on stderr, rewritten every second; only when stderr is a terminal.
final class ProgressLine {
    private let timer: any DispatchSourceTimer

    init(_ publisher: NDJSONPublisher) {
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler {
            let p = publisher.progress
            FileHandle.standardError.write(
                Data("\r\u{1B}[Kread \(p.read)  published \(p.published)  rejected \(p.rejected)  failed \(p.failed)".utf8))
        }
        timer.resume()
    }

    func stop() {
        timer.cancel()
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
