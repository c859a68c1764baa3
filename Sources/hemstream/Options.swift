import AWSWire
import ArgumentParser
import Foundation

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

/// `--pii-key-file`: the HMAC key for PII change hashes, from a file (a mounted Secret), else
/// from HEMSTREAM_PII_KEY; none means PII changes carry no hash.
struct PIIKeyOption: ParsableArguments {
    @Option(help: "File holding the HMAC key for PII hashes (else env HEMSTREAM_PII_KEY).") var piiKeyFile: String?

    /// The key, or a one-line reason it cannot be read.
    func key() -> Result<[UInt8]?, PIIKeyError> {
        guard let file = piiKeyFile else {
            return .success(ProcessInfo.processInfo.environment["HEMSTREAM_PII_KEY"].map { Array($0.utf8) })
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            return .failure(PIIKeyError(description: "cannot read --pii-key-file \(file)"))
        }
        return .success(Array(data))
    }
}

struct PIIKeyError: Error, CustomStringConvertible {
    var description: String
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
    /// `load`: SIGTERM/SIGINT stopped it cleanly; the checkpoint is saved, a rerun resumes.
    static let stopped = ExitCode(5)
}
