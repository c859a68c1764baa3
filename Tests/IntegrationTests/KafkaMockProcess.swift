import Foundation
import TestSupport
import XCTest

/// A child process whose stdout is read line by line while it runs (kafka-mock, or a publish
/// fed through a stdin pipe that the test controls), stopped by PID.
final class BackgroundProcess: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    /// Bytes written to stdin that the child has not read yet (FIONREAD on the pipe).
    var stdinUnread: Int {
        var n: Int32 = 0
        return ioctl(stdin.fileHandleForWriting.fileDescriptor, UInt(FIONREAD), &n) == 0 ? Int(n) : -1
    }
    private let stdout = Pipe()
    private let stderrFile: TemporaryFile
    /// With `stdoutToFile`, stdout goes here instead of the pipe, for polling while it runs.
    private let stdoutFile: TemporaryFile?
    private var buffered = Data()

    /// `standardOutput`, when given, is where stdout goes instead (e.g. /dev/full).
    init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdoutToFile: Bool = false,
        standardOutput: FileHandle? = nil
    ) throws {
        stderrFile = try TemporaryFile(name: "stderr")
        stdoutFile = stdoutToFile ? try TemporaryFile(name: "stdout") : nil
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardInput = stdin
        process.standardOutput = try standardOutput ?? stdoutFile.map { try FileHandle(forWritingTo: $0.url) } ?? stdout
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

    /// What the process wrote to stdout so far (with `stdoutToFile`).
    var stdoutText: String { stdoutFile.flatMap { try? String(contentsOf: $0.url, encoding: .utf8) } ?? "" }

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
