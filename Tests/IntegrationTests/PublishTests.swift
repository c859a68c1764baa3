import Foundation
import JSON
import TestSupport
import XCTest

/// `hemstream publish` and `hemstream kafka-mock` as users run them: separate processes, Kafka
/// over TCP, read back with kcat.
final class PublishTests: XCTestCase {
    func ndjson(_ count: Int, keys: Int = 17) throws -> (TemporaryFile, [(line: String, hem: String, id: String)]) {
        let events = (0..<count).map { EventFixtures.event($0, key: $0 % keys) }
        let file = try TemporaryFile(name: "events.ndjson", contents: Data(events.map { $0.line + "\n" }.joined().utf8))
        return (file, events)
    }

    func summary(_ text: String) throws -> JSON {
        try JSON.parse(text.split(separator: "\n").last.map(String.init) ?? "")
    }

    func testPublish_endToEnd_kcatReadsEveryEventWithKeyAndHeaders() throws {
        let mock = try KafkaMockProcess(["--brokers", "3", "--topic", "hem-changes:3"])
        let (file, events) = try ndjson(300)
        let r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "hem-changes", file.path])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertEqual(
            try summary(r.stdout),
            ["read": 300, "published": 300, "rejected": 0, "failed": 0, "interrupted": false])

        let lines = try mock.consume("hem-changes")
        XCTAssertEqual(lines.count, 300)
        let byID = Dictionary(uniqueKeysWithValues: events.map { ($0.id, $0) })
        var seen = Set<String>()
        for line in lines {
            let parts = line.split(separator: "\t", maxSplits: 2).map(String.init)
            XCTAssertEqual(parts.count, 3, line)
            let headers = Dictionary(
                uniqueKeysWithValues: parts[1].split(separator: ",").map {
                    let kv = $0.split(separator: "=", maxSplits: 1)
                    return (String(kv[0]), String(kv.count > 1 ? kv[1] : ""))
                })
            let id = try XCTUnwrap(headers["ce_id"])
            let sent = try XCTUnwrap(byID[id])
            XCTAssertEqual(parts[0], sent.hem, "keyed by hem")
            XCTAssertEqual(parts[2], sent.line, "value is the event as read")
            XCTAssertEqual(headers["content-type"], "application/cloudevents+json")
            XCTAssertEqual(headers["ce_type"], try JSON.parse(sent.line)["type"]?.stringValue)
            seen.insert(id)
        }
        XCTAssertEqual(seen.count, 300)
    }

    func testPublish_whenSIGTERMWhileReadingStdin_flushesWhatWasReadAndSaysSo() throws {
        let mock = try KafkaMockProcess(["--topic", "t:2"])
        let child = try BackgroundProcess(
            Hemstream.binaryPath, ["publish", "--brokers", mock.brokers, "--topic", "t", "--flush-timeout", "30"])
        let lines = (0..<120).map { EventFixtures.event($0, key: $0 % 5).line + "\n" }.joined()
        child.stdin.fileHandleForWriting.write(Data(lines.utf8))
        // stdin stays open: the publisher is mid-run, waiting for more input. Wait until what it
        // read has reached the broker, then ask it to stop.
        var arrived = 0
        for _ in 0..<600 where arrived < 120 {
            arrived = try mock.consume("t", format: "x\n").count
            if arrived < 120 { usleep(100_000) }
        }
        XCTAssertEqual(arrived, 120)
        child.signal(SIGTERM)
        let status = child.wait()
        XCTAssertEqual(status, 2, child.stderr)
        XCTAssertEqual(
            try summary(child.remainingOutput()),
            ["read": 120, "published": 120, "rejected": 0, "failed": 0, "interrupted": true])
        XCTAssertTrue(child.stderr.contains("SIGTERM: stopped reading"), child.stderr)
        XCTAssertEqual(try mock.consume("t", format: "x\n").count, 120, "nothing more, nothing lost")
    }

    func testPublish_whenSIGTERMWhileBrokerIsStalled_reportsEveryUnacknowledgedLine() throws {
        let mock = try KafkaMockProcess(["--topic", "t:1"])
        let (file, _) = try ndjson(40)
        let child = try BackgroundProcess(
            Hemstream.binaryPath, ["publish", "--brokers", mock.brokers, "--topic", "t", "--flush-timeout", "1", "-"])
        let lines = try String(contentsOf: file.url, encoding: .utf8).split(separator: "\n").map { $0 + "\n" }
        // One line through, so the publisher is connected; then freeze the broker process and
        // feed the rest: none of it can be acknowledged.
        child.stdin.fileHandleForWriting.write(Data(lines[0].utf8))
        var arrived = 0
        for _ in 0..<600 where arrived == 0 {
            arrived = try mock.consume("t", format: "x\n").count
            if arrived == 0 { usleep(100_000) }
        }
        XCTAssertEqual(arrived, 1)
        mock.child.signal(SIGSTOP)
        defer { mock.child.signal(SIGCONT) }
        child.stdin.fileHandleForWriting.write(Data(lines.dropFirst().joined().utf8))
        try waitUntil("the publisher has read every line", timeout: 30) { child.stdinUnread == 0 }
        child.signal(SIGTERM)
        let status = child.wait()
        mock.child.signal(SIGCONT)
        XCTAssertEqual(status, 2, child.stderr)
        let s = try summary(child.remainingOutput())
        XCTAssertEqual(s["interrupted"], true)
        let read = try XCTUnwrap(s["read"]?.intValue)
        let failed = try XCTUnwrap(s["failed"]?.intValue)
        XCTAssertEqual(read, (s["published"]?.intValue ?? -1) + failed, "every line read is acknowledged or failed")
        XCTAssertEqual(read, 40)
        XCTAssertGreaterThan(failed, 0)
        let reported = child.stderr.split(separator: "\n").filter { $0.hasPrefix("stdin:") && $0.contains("not acknowledged") }
        XCTAssertEqual(reported.count, failed, child.stderr)
    }

    func testPublish_badInput_givesClearErrorsAndNeverCrashes() throws {
        let mock = try KafkaMockProcess(["--topic", "t:1"])
        let (file, _) = try ndjson(3)

        let unknownBroker = "127.0.0.1:\(LocalPorts.free())"
        var r = try Hemstream.run(
            ["publish", "--brokers", unknownBroker, "--topic", "t", "--metadata-timeout", "2", file.path])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertTrue(r.stderr.hasPrefix("hemstream publish: cannot reach Kafka brokers \(unknownBroker) within 2 s"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "missing-topic", file.path])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertTrue(r.stderr.contains("topic 'missing-topic' does not exist on brokers"), r.stderr)
        XCTAssertTrue(r.stdout.isEmpty)

        let props = try TemporaryFile(name: "client.properties", contents: Data("acks=all\n# comment\nlinger.ms 5\n".utf8))
        r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "t", "--kafka-config", props.path, file.path])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertEqual(r.stderr, "hemstream publish: \(props.path):3: expected key=value\n")

        r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "t", "-X", "no.such.key=1", file.path])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertTrue(r.stderr.contains("no.such.key"), r.stderr)

        let email = "pat.doe@example.invalid"
        let schemaFailing = EventFixtures.event(7, key: 7).line.replacingOccurrences(of: "\"hem.", with: "\"hem.x")
            .replacingOccurrences(of: "\"specversion\":\"1.0\"", with: "\"specversion\":\"1.0\",\"email\":\"\(email)\"")
        let input = [EventFixtures.event(1, key: 1).line, "{not json", schemaFailing, EventFixtures.event(2, key: 2).line]
        r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "t"], stdin: input.joined(separator: "\n"))
        XCTAssertEqual(r.exitCode, 2, r.stderr)
        XCTAssertEqual(try summary(r.stdout), ["read": 4, "published": 2, "rejected": 2, "failed": 0, "interrupted": false])
        XCTAssertTrue(r.stderr.contains("stdin:2: rejected: not JSON"), r.stderr)
        XCTAssertTrue(r.stderr.contains("stdin:3: rejected: "), r.stderr)
        XCTAssertFalse(r.stderr.contains(email) || r.stdout.contains(email), "no email in any output")
        XCTAssertEqual(try mock.consume("t", format: "x\n").count, 2)
    }

    /// A schema-valid event that carries an address (in a public change's before/after) is
    /// rejected by the PII guard, by line, without the value; the others are published.
    func testPublish_eventCarryingAnAddress_isRejectedByLine_andNeverReachesKafka() throws {
        let mock = try KafkaMockProcess(["--topic", "t:1"])
        let address = "kim.roe@example.invalid"
        // Schema-valid: one more public change, whose `after` is an address.
        var event = try JSON.parse(EventFixtures.event(3, key: 3).line)
        if case .object(var root) = event, case .object(var data) = root["data"]!, case .array(var changes) = data["changes"]! {
            changes.append(["field": "source", "op": "modified", "class": "public", "before": "crm", "after": .string(address)])
            data["changes"] = .array(changes)
            root["data"] = .object(data)
            event = .object(root)
        }
        let input = [EventFixtures.event(1, key: 1).line, event.serialized(), EventFixtures.event(2, key: 2).line]
        let r = try Hemstream.run(["publish", "--brokers", mock.brokers, "--topic", "t"], stdin: input.joined(separator: "\n"))
        XCTAssertEqual(r.exitCode, 2, r.stderr)
        XCTAssertEqual(try summary(r.stdout), ["read": 3, "published": 2, "rejected": 1, "failed": 0, "interrupted": false])
        XCTAssertTrue(r.stderr.contains("stdin:2: rejected: holds an email-shaped value"), r.stderr)
        XCTAssertFalse(r.stderr.contains(address) || r.stdout.contains(address), "the address is never echoed")
        let published = try mock.consume("t", format: "%s\n")
        XCTAssertEqual(published.count, 2)
        XCTAssertFalse(published.joined().contains("@"), "nothing email-shaped reached Kafka")
    }

    func testKafkaMock_printsBootstrapFirstServesTopicsAndStopsOnSIGTERM() throws {
        let mock = try KafkaMockProcess(["--brokers", "3", "--topic", "a:4", "--topic", "b"])
        XCTAssertEqual(mock.brokers.split(separator: ",").count, 3, mock.brokers)
        let r = try ChildProcess.run("kcat", ["-L", "-b", mock.brokers, "-J"], timeout: 60)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let md = try JSON.parse(r.stdout)
        let topics = Dictionary(
            uniqueKeysWithValues: (md["topics"]?.arrayValue ?? []).map {
                ($0["topic"]?.stringValue ?? "", $0["partitions"]?.arrayValue?.count ?? 0)
            })
        XCTAssertEqual(topics["a"], 4)
        XCTAssertEqual(topics["b"], 1)
        XCTAssertEqual(md["brokers"]?.arrayValue?.count, 3)
        mock.child.signal(SIGTERM)
        XCTAssertEqual(mock.child.wait(upTo: 30), 0, mock.child.stderr)
    }

    func testKafkaMock_whenTopicSpecIsBad_failsWithUsage() throws {
        let r = try Hemstream.run(["kafka-mock", "--topic", "x:zero"])
        XCTAssertEqual(r.exitCode, 64, "a usage error (EX_USAGE)")
        XCTAssertTrue(r.stderr.contains("--topic x:zero: expected name[:partitions]"), r.stderr)
    }
}
