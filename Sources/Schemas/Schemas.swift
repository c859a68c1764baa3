import Foundation

/// The data in schemas/: table definition, event schema, field classification. The binary
/// carries an embedded copy (tools/embed-schemas); `HEMSTREAM_SCHEMAS=DIR` reads a directory
/// instead, for trying a change without a rebuild.
public enum SchemaFiles {
    public struct Missing: Error, CustomStringConvertible {
        public var name: String
        public var description: String { "schema file '\(name)' not found" }
    }

    /// The text of `schemas/<name>`.
    public static func text(_ name: String) throws -> String {
        if let dir = ProcessInfo.processInfo.environment["HEMSTREAM_SCHEMAS"] {
            let url = URL(fileURLWithPath: dir).appendingPathComponent(name)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw Missing(name: url.path) }
            return text
        }
        guard let text = EmbeddedSchemas.files[name] else { throw Missing(name: name) }
        return text
    }
}
