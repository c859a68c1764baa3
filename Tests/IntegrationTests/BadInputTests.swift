import Foundation
import TestSupport
import XCTest

/// Bad configuration and bad answers: each a one-line error, a non-zero exit, no stack trace.
final class BadInputTests: XCTestCase {
    func assertOneLineFailure(_ result: ProcessResult, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.exitCode, 1, result.stderr, file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line: \(result.stderr)", file: file, line: line)
        for word in mentions {
            XCTAssertTrue(result.stderr.contains(word), "'\(word)' in \(result.stderr)", file: file, line: line)
        }
        for trace in ["Fatal error", "Stack dump", "Backtrace", "Current stack trace"] {
            XCTAssertFalse(result.stderr.contains(trace), result.stderr, file: file, line: line)
        }
    }

    func testUnknownRegion_isAOneLineError() throws {
        let result = try Hemstream.run(
            ["table", "verify", "--region", "moon-central-9"],
            environment: ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_EC2_METADATA_DISABLED": "true"])
        assertOneLineFailure(result, mentions: ["moon-central-9"])
    }

    func testUnreachableEndpoint_namesTheEndpoint() throws {
        let port = LocalPorts.free()
        let result = try Hemstream.run(
            ["table", "verify"],
            environment: [
                "AWS_ENDPOINT_URL": "http://127.0.0.1:\(port)", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_REGION": "us-east-1",
            ])
        assertOneLineFailure(result, mentions: ["127.0.0.1:\(port)"])
    }

    func testMissingCredentials_isAOneLineError() throws {
        let home = try TemporaryDirectory()
        let result = try Hemstream.run(
            ["table", "verify"],
            environment: [
                "HOME": home.path, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ENDPOINT_URL": try MotoServer.sharedEndpoint(),
            ])
        assertOneLineFailure(result, mentions: ["credentials"])
    }

    func testMalformedAWSErrorBody_namesTheHTTPStatus() throws {
        let server = try ScriptedHTTPServer(responses: [.text(400, "<html>not an AWS error</html>", contentType: "text/html")])
        let result = try Hemstream.run(
            ["table", "verify"],
            environment: [
                "AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_REGION": "us-east-1",
            ])
        assertOneLineFailure(result, mentions: ["400"])
    }
}
