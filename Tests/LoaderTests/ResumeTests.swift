import AWSWire
import Export
import Foundation
import JSON
import Synchronization
import TestSupport
import XCTest

@testable import Loader

/// A load that fails part way keeps its checkpoint; the rerun writes only what was not acknowledged.
final class ResumeTests: XCTestCase {
    func client(_ server: ScriptedHTTPServer) throws -> AWSClient {
        let configuration = try AWSConfiguration.resolve(
            region: nil,
            environment: [
                "AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_REGION": "us-east-1",
            ])
        return AWSClient(configuration: configuration, retryPolicy: RetryPolicy(maxAttempts: 1))
    }

    /// A DynamoDB that accepts `accepting` BatchWriteItem calls, then denies access.
    func server(accepting: Int, into received: Recorder) throws -> ScriptedHTTPServer {
        try ScriptedHTTPServer { request, index in
            guard index < accepting else { return .awsJSONError(400, "AccessDeniedException", "not allowed") }
            let body = try! JSON.parse(request.body)
            received.hems.withLock { hems in
                for r in body["RequestItems"]?["t"]?.arrayValue ?? [] {
                    hems.append(r["PutRequest"]!["Item"]!["hem"]!["S"]!.stringValue!)
                }
            }
            return .json(200, "{}")
        }
    }

    func testLoad_failingPartWay_keepsCheckpoint_andRerunWritesOnlyTheRest() async throws {
        let dir = try TemporaryDirectory()
        var csv = "hem,vup_id,updated_at\n"
        var all: [String] = []
        for i in 0..<1000 {
            let hem = String(format: "%032x", i)
            all.append(hem)
            csv += "\(hem),,2026-11-24T06:00:00Z\n"  // unresolved: no sentinel lookups
        }
        let path = dir.file("e.csv").path
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        let checkpointPath = dir.file("ckpt").path
        let options = LoadOptions(table: "t", concurrency: 1, chunkSize: 100, checkpointInterval: 3600)

        let first = Recorder()
        let failing = try server(accepting: 10, into: first)
        let loader = Loader(
            client: try client(failing), options: options, checkpoint: try CheckpointFile(path: checkpointPath))
        do {
            _ = try await loader.load(.file(path: path), size: nil, client: nil)
            XCTFail("the load should fail when access is denied")
        } catch let error as LoadError {
            XCTAssertEqual(error.source, path)
            XCTAssertNotNil(error.line)
            XCTAssertTrue(error.description.contains("AccessDeniedException"), error.description)
        }
        let mark = try CheckpointFile(path: checkpointPath).progress(for: path, size: nil)
        guard case .line(let line) = mark else {
            return XCTFail("a line mark is recorded, got \(String(describing: mark))")
        }
        XCTAssertGreaterThan(line, 1)
        XCTAssertLessThan(line, 1001)

        let second = Recorder()
        let working = try server(accepting: .max, into: second)
        let rerun = Loader(
            client: try client(working), options: options, checkpoint: try CheckpointFile(path: checkpointPath))
        let summary = try await rerun.load(.file(path: path), size: nil, client: nil)
        XCTAssertEqual(summary.skippedByCheckpoint, line - 1, "rows 2...\(line) were acknowledged before")
        let rewritten = second.hems.withLock { $0 }
        XCTAssertEqual(rewritten, Array(all[(line - 1)...]), "the rerun writes exactly the rows past the mark")
        XCTAssertEqual(Set(first.hems.withLock { $0 } + rewritten), Set(all))
        XCTAssertEqual(try CheckpointFile(path: checkpointPath).progress(for: path, size: nil), .done)
    }
}

extension ResumeTests {
    func testIncrementalLoad_failingPartWay_rerunWritesOnlyHemsPastTheMark() async throws {
        let dir = try TemporaryDirectory()
        var day1 = "hem,vup_id,updated_at\n"
        var day2 = "hem,vup_id,updated_at\n"
        var all: [String] = []
        for i in 0..<600 {
            let hem = String(format: "%032x", i)
            all.append(hem)
            day1 += "\(hem),,2026-11-24T06:00:00Z\n"
            day2 += "\(hem),,2026-11-25T06:00:00Z\n"  // every row changed: 600 puts
        }
        try day1.write(toFile: dir.file("day1.csv").path, atomically: true, encoding: .utf8)
        try day2.write(toFile: dir.file("day2.csv").path, atomically: true, encoding: .utf8)
        let current = ExportLocation.file(path: dir.file("day2.csv").path)
        let previous = ExportLocation.file(path: dir.file("day1.csv").path)
        let checkpointPath = dir.file("ckpt").path
        let options = LoadOptions(table: "t", concurrency: 1, chunkSize: 100, checkpointInterval: 3600)

        let first = Recorder()
        let failing = try server(accepting: 10, into: first)
        let loader = Loader(
            client: try client(failing), options: options, checkpoint: try CheckpointFile(path: checkpointPath))
        do {
            _ = try await loader.load(current, size: nil, previous: previous, client: nil)
            XCTFail("the load should fail when access is denied")
        } catch is LoadError {}
        let key = current.description + " since " + previous.description
        let mark = try CheckpointFile(path: checkpointPath).progress(for: key, size: nil)
        guard case .hem(let hem) = mark else {
            return XCTFail("a hem mark is recorded, got \(String(describing: mark))")
        }

        let second = Recorder()
        let working = try server(accepting: .max, into: second)
        let rerun = Loader(
            client: try client(working), options: options, checkpoint: try CheckpointFile(path: checkpointPath))
        let summary = try await rerun.load(current, size: nil, previous: previous, client: nil)
        XCTAssertEqual(
            second.hems.withLock { $0 }, all.filter { $0 > hem }, "the rerun writes exactly the hems past the mark")
        XCTAssertEqual(summary.skippedByCheckpoint, all.filter { $0 <= hem }.count)
        XCTAssertEqual(Set(first.hems.withLock { $0 } + second.hems.withLock { $0 }), Set(all))
    }
}

/// Hems the scripted server accepted, in arrival order.
final class Recorder: Sendable {
    let hems = Mutex<[String]>([])
}
