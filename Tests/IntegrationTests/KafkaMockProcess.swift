import Foundation
import TestSupport
import XCTest

/// A child process whose stdout is read line by line while it runs (kafka-mock, or a publish
/// fed through a stdin pipe that the test controls), stopped by PID.
final class BackgroundProcess: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    private let stdout = Pipe()
    private let stderrFile: TemporaryFile
    private var buffered = Data()

    init(_ executable: String, _ arguments: [String]) throws {
        stderrFile = try TemporaryFile(name: "stderr")
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrFile.url)
        try process.run()
    }

    /// The next line of stdout (blocking until it arrives), nil at end of output.
    func readLine() -> String? {
        while true {
            if let nl = buffered.firstIndex(of: 0x0A) {
                let line = String(decoding: buffered[buffered.startIndex..<nl], as: UTF8.self)
                buffered.removeSubrange(buffered.startIndex...nl)
                return line
            }
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { return buffered.isEmpty ? nil : String(decoding: buffered, as: UTF8.self) }
            buffered.append(chunk)
        }
    }

    /// Everything left on stdout, once the process has ended.
    func remainingOutput() -> String {
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: buffered + rest, as: UTF8.self)
    }

    var stderr: String { (try? String(contentsOf: stderrFile.url, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the exit (bounded, so a hang fails the test instead of stalling it).
    @discardableResult
    func wait(upTo seconds: TimeInterval = 120) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGTERM)
            if wait(upTo: 30) == nil { kill(process.processIdentifier, SIGKILL) }
        }
    }

    deinit { stop() }
}

/// `hemstream kafka-mock` running in its own process; its first stdout line is the bootstrap list.
final class KafkaMockProcess {
    let child: BackgroundProcess
    let brokers: String

    init(_ arguments: [String] = []) throws {
        child = try BackgroundProcess(Hemstream.binaryPath, ["kafka-mock"] + arguments)
        guard let line = child.readLine(), !line.isEmpty else {
            throw TestSupportError("kafka-mock printed no bootstrap line: \(child.stderr)")
        }
        brokers = line
    }

    /// The topic's messages as kcat prints them, read in a separate process.
    func consume(_ topic: String, format: String = "%k\t%h\t%s\n") throws -> [String] {
        let r = try ChildProcess.run("kcat", ["-C", "-b", brokers, "-t", topic, "-e", "-q", "-f", format], timeout: 120)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        return r.stdoutLines
    }
}

/// Valid change events: the schema examples with hem and id varied.
enum SampleEvents {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let examples: [(text: String, hem: String, id: String)] = {
        let dir = root.appendingPathComponent("schemas/events/examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.sorted() ?? []
        return names.filter { $0.hasSuffix(".json") }.map { name in
            let text = try! String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            let object = try! JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            let compact = String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            return (compact, object["subject"] as! String, object["id"] as! String)
        }
    }()

    static func hex(_ n: Int, width: Int) -> String {
        let s = String(n, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    static func event(_ i: Int, key: Int) -> (line: String, hem: String, id: String) {
        let e = examples[i % examples.count]
        let hem = "beef" + hex(key, width: 28)
        let id = "1" + hex(i, width: 63)
        return (e.text.replacingOccurrences(of: e.hem, with: hem).replacingOccurrences(of: e.id, with: id), hem, id)
    }
}
