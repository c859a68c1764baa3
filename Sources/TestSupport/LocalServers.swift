import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Helpers for tests that talk to real local servers and run the built `hemstream` binary.
public enum LocalPorts {
    /// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
    public static func free() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket() failed")
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0
            }
        }
        precondition(bound, "bind() to 127.0.0.1:0 failed")
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// True when something accepts TCP connections on 127.0.0.1:port.
    public static func isListening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// A `moto_server` process on a free loopback port, stopped by PID when `stop()` is called
/// or the object goes away. Each test that needs isolation starts its own; moto keeps state
/// per process. Started through tools/moto-server, which hands moto one request at a time
/// (concurrent puts into a new partition can lose an acknowledged write in moto).
public final class MotoServer: @unchecked Sendable {
    public let port: Int
    public var endpoint: String { "http://127.0.0.1:\(port)" }
    private let process: Process

    /// Starts moto_server. `extraEnvironment` lets a test turn on moto's signature checking
    /// (`INITIAL_NO_AUTH_ACTION_COUNT`).
    public init(extraEnvironment: [String: String] = [:]) throws {
        port = LocalPorts.free()
        process = Process()
        process.executableURL = Self.launcher
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extraEnvironment { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while !LocalPorts.isListening(port) {
            if !process.isRunning { throw TestSupportError("moto_server exited before listening on \(port)") }
            if Date() > deadline {
                stop()
                throw TestSupportError("moto_server did not listen on \(port) within 30 s")
            }
            usleep(50_000)
        }
    }

    /// tools/moto-server of this checkout.
    static let launcher = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/moto-server")

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    /// Environment for the hemstream binary (or an AWS client) aimed at this server with
    /// dummy credentials.
    public func awsEnvironment(region: String = "us-east-1") -> [String: String] {
        [
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": region,
        ]
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What a finished child process left behind.
public struct ProcessResult: Sendable {
    public var exitCode: Int32
    public var stdout: String
    public var stderr: String
    /// Lines of stdout, without empty ones.
    public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
}

public enum Hemstream {
    /// The `hemstream` binary that SwiftPM built next to the test bundle, or `HEMSTREAM_BIN`.
    public static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["HEMSTREAM_BIN"] { return path }
        var dir = Bundle.main.bundleURL
        if dir.pathExtension == "xctest" { dir.deleteLastPathComponent() }
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("hemstream").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        // Fall back to the executable that ran the tests' directory.
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return argv0.appendingPathComponent("hemstream").path
    }

    /// Runs `hemstream` with the given arguments; the environment starts from this process's,
    /// minus AWS variables, plus `environment`.
    public static func run(
        _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
        currentDirectory: String? = nil, timeout: TimeInterval = 300
    ) throws -> ProcessResult {
        try ChildProcess.run(
            binaryPath, arguments, environment: environment, stdin: stdin,
            currentDirectory: currentDirectory, timeout: timeout)
    }
}

public enum ChildProcess {
    /// Runs a program to completion, capturing stdout and stderr. Variables starting with
    /// `AWS_` are removed from the inherited environment so a developer's own AWS settings
    /// never leak into a test.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        stdin: String? = nil, currentDirectory: String? = nil, timeout: TimeInterval = 300
    ) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
        process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
        env["HOME"] = env["HOME"] ?? "/root"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let outFile = try TemporaryFile()
        let errFile = try TemporaryFile()
        process.standardOutput = try FileHandle(forWritingTo: outFile.url)
        process.standardError = try FileHandle(forWritingTo: errFile.url)
        let inPipe = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
        try process.run()
        if let stdin {
            inPipe.fileHandleForWriting.write(Data(stdin.utf8))
            try? inPipe.fileHandleForWriting.close()
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw TestSupportError("\(executable) \(arguments.joined(separator: " ")) timed out after \(timeout) s")
            }
            usleep(10_000)
        }
        return ProcessResult(
            exitCode: process.terminationStatus,
            stdout: (try? String(contentsOf: outFile.url, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errFile.url, encoding: .utf8)) ?? "")
    }
}

extension ChildProcess {
    /// Runs a program to completion (stdout discarded) and returns its exit code, its stderr and
    /// its peak resident set size in bytes: a measure of that process alone, whatever ran in
    /// this one before. A Python parent forks it (a real fork) and reports `wait4`'s usage; a
    /// child started here directly (posix_spawn, CLONE_VM) would inherit this process's
    /// high-water mark at exec.
    public static func peakRSS(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> (exitCode: Int32, stderr: String, peakRSS: Int) {
        let parent = """
            import os, sys
            pid = os.fork()
            if pid == 0:
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                os.execv(sys.argv[1], sys.argv[1:])
            _, status, usage = os.wait4(pid, 0)
            print(usage.ru_maxrss)
            sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
            """
        let run = try ChildProcess.run("python3", ["-c", parent, executable] + arguments, environment: environment)
        guard let kilobytes = run.stdoutLines.last.flatMap({ Int($0) }) else {
            throw TestSupportError("no peak RSS from \(executable): \(run.stderr)")
        }
        return (run.exitCode, run.stderr, kilobytes * 1024)
    }
}

/// A file in a fresh temporary directory, removed with the object.
public final class TemporaryFile: @unchecked Sendable {
    public let directory: URL
    public let url: URL
    public var path: String { url.path }

    public init(name: String = "file", contents: Data = Data()) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hemstream-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        url = directory.appendingPathComponent(name)
        try contents.write(to: url)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// A fresh temporary directory, removed with the object.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL
    public var path: String { url.path }

    public init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("hemstream-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(at: url) }
}

extension MotoServer {
    /// The moto_server that tools/test started (HEMSTREAM_MOTO_ENDPOINT), or one started for
    /// this test process. Tests sharing it use table names of their own.
    public static func sharedEndpoint() throws -> String {
        if let endpoint = ProcessInfo.processInfo.environment["HEMSTREAM_MOTO_ENDPOINT"] { return endpoint }
        return try SharedMoto.server.get().endpoint
    }

    /// Environment for hemstream aimed at the shared server.
    public static func sharedEnvironment(region: String = "us-east-1") throws -> [String: String] {
        [
            "AWS_ENDPOINT_URL": try sharedEndpoint(),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": region,
        ]
    }
}

private enum SharedMoto {
    static let server = Result { try MotoServer() }
}
