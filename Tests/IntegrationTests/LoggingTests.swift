import Foundation
import JSON
import TestSupport
import XCTest

/// `--log-level` and `--log-format`, which every command takes: swift-log is bootstrapped
/// from them, and log lines go to stderr only.
final class LoggingTests: XCTestCase {
    /// `table verify` against a server that fails once (the AWS client logs its retry at debug)
    /// and then says the table does not exist (exit 3).
    func verify(_ logFlags: [String]) throws -> ProcessResult {
        let server = try ScriptedHTTPServer(responses: [
            .text(500, "oops"), .awsJSONError(400, "ResourceNotFoundException", "Requested resource not found"),
        ])
        let env = [
            "AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "us-east-1",
        ]
        let result = try Hemstream.run(["table", "verify", "--table", "t"] + logFlags, environment: env)
        XCTAssertEqual(result.exitCode, 3, result.stderr)
        XCTAssertFalse(result.stdout.contains("retrying"), "logs never go to stdout: \(result.stdout)")
        return result
    }

    func testLogLevel_debugShowsTheRetry_infoDoesNot() throws {
        XCTAssertTrue(try verify(["--log-level", "debug"]).stderr.contains("retrying AWS call"))
        XCTAssertFalse(try verify([]).stderr.contains("retrying AWS call"), "info is the default")
    }

    func testLogFormatJSON_oneObjectPerLineOnStderr() throws {
        let stderr = try verify(["--log-level", "debug", "--log-format", "json"]).stderr
        let line = try XCTUnwrap(stderr.split(separator: "\n").first { $0.contains("retrying AWS call") })
        let object = try JSON.parse(String(line))
        XCTAssertEqual(object["level"], "debug")
        XCTAssertEqual(object["message"], "retrying AWS call")
        XCTAssertEqual(object["operation"], "DescribeTable")
    }

    func testEveryCommand_takesTheLogFlags() throws {
        let commands = [
            ["load"], ["publish"], ["stream"], ["query"], ["table", "create"], ["table", "verify"],
            ["table", "restore"], ["events", "explain"], ["kafka-mock"],
        ]
        for command in commands {
            let help = try Hemstream.run(command + ["--help"])
            XCTAssertTrue(help.stdout.contains("--log-level"), "\(command): \(help.stdout)")
            XCTAssertTrue(help.stdout.contains("--log-format"), "\(command)")
        }
    }
}
