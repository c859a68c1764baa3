import AWSWire
import ArgumentParser
import Foundation
import Logging

/// `--region`: where the table lives. Shared by every command that talks to AWS.
struct AWSOptions: ParsableArguments {
    @Option(help: "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region).")
    var region: String?

    func client(retryPolicy: RetryPolicy = .standard) throws -> AWSClient {
        AWSClient(configuration: try AWSConfiguration.resolve(region: region), retryPolicy: retryPolicy)
    }
}

/// `--table`: every command that touches the table takes it.
struct TableNameOption: ParsableArguments {
    @Option(help: "The DynamoDB table.")
    var table = "vector_emails_operational"
}

/// Writes progress and step lines to stderr, which stays free of data.
enum Console {
    static func line(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}

/// Exit codes shared by every mode.
enum Exit {
    /// Some rows or lines were rejected, the rest done.
    static let partial = ExitCode(2)
    /// `table verify`: the table differs from schemas/table.json (or is missing).
    static let differs = ExitCode(3)
    /// `stream --on-gap halt`: records were trimmed before they were read.
    static let gapHalt = ExitCode(4)
}
