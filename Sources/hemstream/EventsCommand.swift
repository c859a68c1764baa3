import ArgumentParser
import Events
import Foundation
import JSON
import Publish

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
        @Option(help: "AWS region named in the event source.") var region: String = "us-east-1"
        @Argument(help: "GetRecords response files.") var files: [String]

        func run() async throws {
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
                // Streamed line by line: a shard's dump can be far larger than memory should hold.
                let fd = open(file, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { fail("\(file): cannot read: \(String(cString: strerror(errno)))") }
                defer { close(fd) }
                var reader = LineReader(fd: fd, maxLineBytes: Self.maxLineBytes)
                var n = 0
                while !reader.atEnd {
                    guard let next = reader.nextInBuffer() else {
                        reader.fill()
                        if let error = reader.error { fail("\(file):\(n + 1): read failed: \(error)") }
                        continue
                    }
                    n += 1
                    guard case .line(let range) = next else {
                        fail("\(file):\(n): longer than \(Self.maxLineBytes) bytes (the line limit)")
                    }
                    let line = Array(reader.buffer[range])
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                    let body: JSON
                    do { body = try JSON.parse(line) } catch { fail("\(file):\(n): not JSON (\(error))") }
                    guard let records = body["Records"]?.arrayValue else { fail("\(file):\(n): missing Records") }
                    for (i, r) in records.enumerated() {
                        do { emit(try det.ingest(r, shardID: file, streamARN: "file:" + file)) }
                        catch { fail("\(file):\(n): Records[\(i)]: \(error.description)") }
                    }
                }
            }
            emit(det.flush())
        }

        /// A GetRecords body is at most 1 MB of records; its JSON text stays well under this.
        static let maxLineBytes = 16 << 20

        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data(("hemstream events explain: " + message + "\n").utf8))
            Foundation.exit(1)
        }
    }
}
