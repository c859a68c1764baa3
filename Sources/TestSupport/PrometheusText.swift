import Foundation

/// HTTP through curl, a client independent of the server's own stack.
public enum HTTP {
    public struct Reply {
        public var status: Int
        public var contentType: String
        public var body: String
    }

    public static func request(_ method: String, port: Int, path: String) throws -> Reply {
        let bodyFile = try TemporaryFile(name: "body")
        let result = try ChildProcess.run(
            "curl",
            [
                "-sS", "--max-time", "10", "-X", method, "-o", bodyFile.path,
                "-w", "%{http_code}\n%{content_type}", "http://127.0.0.1:\(port)\(path)",
            ],
            timeout: 20)
        guard result.exitCode == 0 else { throw TestSupportError("curl \(method) \(path): \(result.stderr)") }
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return Reply(
            status: Int(lines[0]) ?? -1,
            contentType: lines.count > 1 ? String(lines[1]) : "",
            body: try String(contentsOf: bodyFile.url, encoding: .utf8))
    }
}

/// The exposition text as Prometheus's reference parser reads it: a parse error fails the test.
public enum PrometheusText {
    public struct Sample: Decodable, Sendable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    static let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        samples = [
            {"name": s.name, "labels": s.labels, "value": s.value}
            for family in text_string_to_metric_families(sys.stdin.read())
            for s in family.samples
        ]
        print(json.dumps(samples))
        """

    public static func parse(_ text: String) throws -> [Sample] {
        let result = try ChildProcess.run("python3", ["-c", script], stdin: text, timeout: 60)
        guard result.exitCode == 0 else {
            throw TestSupportError("prometheus_client could not parse /metrics: \(result.stderr)\n\(text)")
        }
        return try JSONDecoder().decode([Sample].self, from: Data(result.stdout.utf8))
    }
}

extension [PrometheusText.Sample] {
    public func all(_ name: String) -> [PrometheusText.Sample] { filter { $0.name == name } }

    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        first { $0.name == name && $0.labels == labels }?.value
    }
}

