import Foundation
import JSON

/// How far one source got: everything at or below the mark is acknowledged by DynamoDB.
/// A full load counts physical lines; an incremental load counts hems (both exports are
/// sorted by hem, and removals have no line in the current export).
public enum SourceProgress: Sendable, Equatable {
    case line(Int)
    case hem(String)
    case done
}

/// `--checkpoint FILE`: per-source progress, rewritten atomically (temporary file + rename) so
/// a kill at any moment leaves the previous or the next version, never a torn one.
public final class CheckpointFile: @unchecked Sendable {  // used from the loader's one task only
    public let path: String
    private var entries: [String: JSON] = [:]

    /// Reads `path` when it exists; a missing file is an empty checkpoint.
    public init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else { return }
        guard let json = try? JSON.parse(Array(data)), let sources = json["sources"]?.objectValue else {
            throw CheckpointError(message: "\(path): not a hemstream checkpoint file")
        }
        entries = sources
    }

    /// The recorded progress of `key`, when the source still has the recorded size.
    public func progress(for key: String, size: Int64?) -> SourceProgress? {
        guard let entry = entries[key] else { return nil }
        if let size, let recorded = entry["size"]?.intValue, Int64(recorded) != size { return nil }
        if entry["done"]?.boolValue == true { return .done }
        if let line = entry["line"]?.intValue { return .line(line) }
        if let hem = entry["hem"]?.stringValue { return .hem(hem) }
        return nil
    }

    public func record(_ progress: SourceProgress, for key: String, size: Int64?) {
        var entry: [String: JSON] = [:]
        if let size { entry["size"] = .int(Int(size)) }
        switch progress {
        case .line(let line): entry["line"] = .int(line)
        case .hem(let hem): entry["hem"] = .string(hem)
        case .done: entry["done"] = true
        }
        entries[key] = .object(entry)
    }

    /// Writes the file durably: the new version is fsynced before it is renamed over the old
    /// one, and the directory after, so a power loss keeps the old or the new checkpoint.
    public func save() throws {
        let json: JSON = ["version": 1, "sources": .object(entries)]
        let temporary = path + ".tmp"
        try Self.writeSynced(json.serializedBytes(), to: temporary, finalPath: path)
        guard rename(temporary, path) == 0 else {
            throw CheckpointError(message: "\(path): cannot replace the checkpoint (\(Self.reason(errno)))")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else {
            throw CheckpointError(message: "\(path): cannot open its directory to sync it (\(Self.reason(errno)))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw CheckpointError(message: "\(path): cannot sync its directory (\(Self.reason(errno)))")
        }
    }

    private static func writeSynced(_ bytes: [UInt8], to temporary: String, finalPath: String) throws {
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError(message: "\(finalPath): cannot write the checkpoint (\(reason(errno)))")
        }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw CheckpointError(message: "\(finalPath): cannot write the checkpoint (\(reason(errno)))")
            }
            written += n
        }
        guard fsync(descriptor) == 0 else {
            throw CheckpointError(message: "\(finalPath): cannot sync the checkpoint (\(reason(errno)))")
        }
    }

    private static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
}

public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
