import Foundation
import JSON
import TestSupport
import XCTest

/// `hemstream publish` at its limits: a runaway line, and a signal before the brokers answer.
final class PublishLimitsTests: XCTestCase {
    func summary(_ text: String) throws -> JSON {
        try JSON.parse(text.split(separator: "\n").last.map(String.init) ?? "")
    }

    /// Lines over the cap are rejected by number without being held whole; the rest go on.
    func testPublish_whenLinesExceedTheCap_rejectsThemByNumberAndPublishesTheRest() throws {
        let mock = try KafkaMockProcess(["--topic", "t:1"])
        // One far past the 1 MiB read block (skipped as it streams), one just over the cap.
        let runaway = String(repeating: "z", count: 3_000_000)
        let justOver = "{\"pad\":\"" + String(repeating: "y", count: 1_000_100) + "\"}"
        let lines = [
            EventFixtures.event(1, key: 1).line, runaway, EventFixtures.event(2, key: 2).line, justOver,
            EventFixtures.event(3, key: 3).line,
        ]
        let file = try TemporaryFile(name: "events.ndjson", contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        let r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "t", file.path])
        XCTAssertEqual(r.exitCode, 2, r.stderr)
        XCTAssertEqual(try summary(r.stdout), ["read": 5, "published": 3, "rejected": 2, "failed": 0, "interrupted": false])
        let rejected = r.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(
            rejected,
            [
                "\(file.path):2: rejected: longer than 1000000 bytes (the line limit)",
                "\(file.path):4: rejected: longer than 1000000 bytes (the line limit)",
            ])
        XCTAssertEqual(try mock.consume("t", format: "x\n").count, 3)
    }

    /// The signal handler is in place before the metadata wait: SIGTERM while the brokers do not
    /// answer ends the wait at once with a summary, instead of killing the process.
    func testPublish_whenSIGTERMDuringMetadataWait_stopsCleanlyWithASummary() throws {
        // A listener that takes the connection and never answers (it waits for an HTTP head that
        // Kafka's binary protocol never sends): a broker that hangs.
        let silent = try ScriptedHTTPServer(responses: [.drop])
        let brokers = "127.0.0.1:\(silent.port)"
        let child = try BackgroundProcess(
            Hemstream.binaryPath, ["publish", "--brokers", brokers, "--topic", "t", "--metadata-timeout", "120", "-"])
        // Waiting for metadata once librdkafka's threads exist (created right before the wait).
        let deadline = Date().addingTimeInterval(60)
        while !Self.hasThread(named: "rdk:main", in: child.process.processIdentifier), Date() < deadline {
            usleep(20_000)
        }
        XCTAssertTrue(Self.hasThread(named: "rdk:main", in: child.process.processIdentifier), "publish never reached the metadata wait")
        let signalled = Date()
        child.signal(SIGTERM)
        let status = child.wait(upTo: 30)
        XCTAssertEqual(status, 2, child.stderr)
        XCTAssertEqual(child.process.terminationReason, .exit, "ended by exiting, not by the signal")
        XCTAssertLessThan(Date().timeIntervalSince(signalled), 10, "the wait ended without waiting out its timeout")
        XCTAssertEqual(
            try summary(child.remainingOutput()),
            ["read": 0, "published": 0, "rejected": 0, "failed": 0, "interrupted": true])
        XCTAssertTrue(child.stderr.contains("SIGTERM: stopped while waiting for Kafka brokers"), child.stderr)
    }

    static func hasThread(named name: String, in pid: Int32) -> Bool {
        let dir = "/proc/\(pid)/task"
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return tasks.contains { task in
            let comm = (try? String(contentsOfFile: "\(dir)/\(task)/comm", encoding: .utf8)) ?? ""
            return comm.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }
    }
}

/// `events explain` reads its files as a stream: events come out while input is still arriving.
final class EventsExplainStreamingTests: XCTestCase {
    func testExplain_emitsEventsBeforeItsInputEnds() throws {
        let child = try BackgroundProcess(Hemstream.binaryPath, ["events", "explain", "/dev/stdin"], stdoutToFile: true)
        child.stdin.fileHandleForWriting.write(Data((EventsExplainTests.shard + "\n").utf8))
        // stdin stays open: a reader that waits for the whole file prints nothing yet.
        let deadline = Date().addingTimeInterval(60)
        while !child.stdoutText.contains("hem.updated"), Date() < deadline { usleep(20_000) }
        XCTAssertTrue(child.stdoutText.contains("hem.updated"), "no event before the end of input: \(child.stderr)")
        XCTAssertTrue(child.process.isRunning, "still reading")
        try child.stdin.fileHandleForWriting.close()
        XCTAssertEqual(child.wait(upTo: 30), 0, child.stderr)
        let types = try child.stdoutText.split(separator: "\n").map { try JSON.parse(String($0))["type"]?.stringValue }
        XCTAssertEqual(types, ["hem.resolved", "hem.updated"])
    }
}
