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
        @OptionGroup var log: LogOptions
        @Option(help: "AWS region named in the event source.") var region: String = "us-east-1"
        @Argument(help: "GetRecords response files.") var files: [String]

        func run() async throws {
            log.bootstrap()
            do { try StandardDescriptors.requireStandardOutput(for: "the events") } catch { fail("\(error)") }
            let key: [UInt8]?
            switch pii.key() {
            case .success(let k): key = k
            case .failure(let e): throw ValidationError(e.description)
            }
            var det = ChangeDetector(region: region, table: "vector_emails_operational", fields: try FieldClassification.load(), window: window, piiKey: key)
            // Events go out in large writes; before an error, what came before it is written.
            var out: [UInt8] = []
            func write() {
                FileHandle.standardOutput.write(Data(out))
                out.removeAll(keepingCapacity: true)
            }
            func emit(_ events: [ChangeEvent]) {
                for e in events {
                    out += e.bytes
                    out.append(10)
                }
                if out.count > 1 << 20 { write() }
            }
            func failing(_ message: String) -> Never {
                write()
                fail(message)
            }
            var pageReader = StreamPageReader()
            for file in files {
                // Streamed line by line: a shard's dump can be far larger than memory should hold.
                let fd = open(file, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { failing("\(file): cannot read: \(String(cString: strerror(errno)))") }
                defer { close(fd) }
                var reader = LineReader(fd: fd, maxLineBytes: Self.maxLineBytes)
                var n = 0
                while !reader.atEnd {
                    guard let next = reader.nextInBuffer() else {
                        // What is ready goes out before a read that may wait (stdin, a pipe).
                        if !out.isEmpty { write() }
                        reader.fill()
                        if let error = reader.error { failing("\(file):\(n + 1): read failed: \(error)") }
                        continue
                    }
                    n += 1
                    guard case .line(let range) = next else {
                        failing("\(file):\(n): longer than \(Self.maxLineBytes) bytes (the line limit)")
                    }
                    let line = reader.buffer[range]
                    if Self.isBlank(line) { continue }
                    // The stream reader's byte-level page reader (a JSON tree only where it must).
                    let page: (records: [StreamRecord]?, nextIterator: String?)
                    do { page = try pageReader.read(Array(line)) } catch { failing("\(file):\(n): not JSON (\(error))") }
                    guard let records = page.records else { failing("\(file):\(n): missing Records") }
                    for (i, r) in records.enumerated() {
                        do { emit(try det.ingestTracked(r, shardID: file, streamARN: "file:" + file).events) }
                        catch { failing("\(file):\(n): Records[\(i)]: \(error.description)") }
                    }
                }
            }
            emit(det.flush())
            write()
        }

        /// A line of spaces and tabs only (or, past ASCII, of what Foundation calls whitespace).
        static func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
            guard let first = line.first(where: { $0 != 0x20 && $0 != 0x09 }) else { return true }
            guard first >= 0x80 else { return false }
            return String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces).isEmpty
        }

        /// A GetRecords body is at most 1 MB of records; its JSON text stays well under this.
        static let maxLineBytes = 16 << 20

        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data(("hemstream events explain: " + message + "\n").utf8))
            Foundation.exit(1)
        }
    }
}
