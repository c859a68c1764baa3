import ArgumentParser
import Foundation
import JSON
import Logging

/// `--log-level` and `--log-format`, taken by every command: swift-log bootstrapped once per
/// process, before anything logs, text or one JSON object per line on stderr (stdout carries
/// only a command's data). Call sites log no PII; metadata holds keys, shards, codes.
struct LogOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info
    @Option(help: "Log format: text or json (one object per line on stderr).") var logFormat = "text"

    func validate() throws {
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format: text or json") }
    }

    /// Call first in a command's `run()`: swift-log allows one bootstrap per process.
    func bootstrap() {
        let level = logLevel
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// One JSON object per log line on stderr: time, level, logger, message and metadata.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: JSON] = [
            "time": .string(Date().formatted(.iso8601)), "level": .string(event.level.rawValue),
            "logger": .string(label), "message": .string("\(event.message)"),
        ]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { fields[k] = .string("\(v)") }
        FileHandle.standardError.write(Data(JSON.object(fields).serializedBytes() + [10]))
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
