import ArgumentParser
import Events
import Foundation
import JSON

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Change events: try the detector by hand.",
        subcommands: [Explain.self])

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn GetRecords response bodies into change events (NDJSON on stdout).",
            discussion: """
            Each FILE holds a GetRecords response body ({"Records": [...]}) or several, one per line,
            read in order as one shard. Pending move halves are settled at the end of input.
            Bad input: a one-line error naming file and line, exit 1.
            Example: hemstream events explain --window 30 shard-0001.json
            """)

        @Option(help: "Pairing window in seconds.") var window: Double = 30
        @OptionGroup var pii: PIIKeyOption
        @OptionGroup var log: LogOptions
        @Option(help: "AWS region named in the event source.") var region: String = "us-east-1"
        @Argument(help: "GetRecords response files.") var files: [String]

        func run() async throws {
            log.bootstrap()
            let key: [UInt8]?
            switch pii.key() {
            case .success(let k): key = k
            case .failure(let e): throw ValidationError(e.description)
            }
            var det = ChangeDetector(region: region, table: "vector_emails_operational", fields: try FieldClassification.load(), window: window, piiKey: key)
            func emit(_ events: [ChangeEvent]) {
                for e in events { FileHandle.standardOutput.write(Data(e.encoded() + [10])) }
            }
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { fail("\(file): cannot read") }
                let text = String(decoding: data, as: UTF8.self)
                for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                    let body: JSON
                    do { body = try JSON.parse(String(line)) } catch { fail("\(file):\(n + 1): not JSON (\(error))") }
                    guard let records = body["Records"]?.arrayValue else { fail("\(file):\(n + 1): missing Records") }
                    for (i, r) in records.enumerated() {
                        do { emit(try det.ingest(r, shardID: file, streamARN: "file:" + file)) }
                        catch { fail("\(file):\(n + 1): Records[\(i)]: \(error.description)") }
                    }
                }
            }
            emit(det.flush())
        }

        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data(("hemstream events explain: " + message + "\n").utf8))
            Foundation.exit(1)
        }
    }
}
