import ArgumentParser
import Foundation
import JSON
import Logging

/// `--log-level` and `--log-format`: swift-log bootstrapped once per process, text or one
/// JSON object per line on stderr. Call sites log no PII; metadata holds keys, shards, codes.
enum LogSetup {
    static func bootstrap(level: Logger.Level, json: Bool) {
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
