import AWSWire
import Foundation
import JSON
import TestSupport

/// Environment isolated from the developer's own AWS setup: no profile files, no IMDS.
func isolatedEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var env: [String: String] = [
        "HOME": "/nonexistent-hemstream-home",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent-hemstream/credentials",
        "AWS_CONFIG_FILE": "/nonexistent-hemstream/config",
        "AWS_EC2_METADATA_DISABLED": "true",
    ]
    for (k, v) in extra { env[k] = v }
    return env
}

/// A client aimed at `endpoint` with dummy static credentials.
func makeClient(
    endpoint: String, retryPolicy: RetryPolicy = .fastForTests, region: String = "us-east-1",
    accessKey: String = "testing", secretKey: String = "testing", extra: [String: String] = [:]
) throws -> AWSClient {
    var env = isolatedEnvironment([
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey,
        "AWS_REGION": region,
    ])
    for (k, v) in extra { env[k] = v }
    var configuration = try AWSConfiguration.resolve(environment: env)
    configuration.connectTimeout = 2
    configuration.requestTimeout = 30
    return AWSClient(configuration: configuration, retryPolicy: retryPolicy)
}

extension RetryPolicy {
    /// Standard attempts and quota, but millisecond backoff so tests run fast.
    static var fastForTests: RetryPolicy {
        var policy = RetryPolicy.standard
        policy.baseDelay = 0.001
        policy.throttlingBaseDelay = 0.002
        policy.maxDelay = 0.01
        return policy
    }
}

func uniqueName(_ prefix: String) -> String {
    prefix + "-" + UUID().uuidString.lowercased().prefix(8)
}

