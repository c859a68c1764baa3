import Foundation

/// The AWS services this tool calls.
public enum AWSService: String, Sendable, CaseIterable {
    case dynamoDB, dynamoDBStreams, s3, cloudWatch, iam, sts

    /// Name used in messages: "DynamoDB CreateTable failed: ...".
    public var displayName: String {
        switch self {
        case .dynamoDB: return "DynamoDB"
        case .dynamoDBStreams: return "DynamoDB Streams"
        case .s3: return "S3"
        case .cloudWatch: return "CloudWatch"
        case .iam: return "IAM"
        case .sts: return "STS"
        }
    }

    /// The service name in the SigV4 credential scope.
    public var signingName: String {
        switch self {
        case .dynamoDB, .dynamoDBStreams: return "dynamodb"
        case .s3: return "s3"
        case .cloudWatch: return "monitoring"
        case .iam: return "iam"
        case .sts: return "sts"
        }
    }

    /// Suffix of the service's own endpoint variable, AWS_ENDPOINT_URL_<suffix>.
    var endpointVariable: String {
        switch self {
        case .dynamoDB: return "AWS_ENDPOINT_URL_DYNAMODB"
        case .dynamoDBStreams: return "AWS_ENDPOINT_URL_DYNAMODB_STREAMS"
        case .s3: return "AWS_ENDPOINT_URL_S3"
        case .cloudWatch: return "AWS_ENDPOINT_URL_CLOUDWATCH"
        case .iam: return "AWS_ENDPOINT_URL_IAM"
        case .sts: return "AWS_ENDPOINT_URL_STS"
        }
    }

    func defaultEndpoint(region: String) -> String {
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        switch self {
        case .dynamoDB: return "https://dynamodb.\(region).\(suffix)"
        case .dynamoDBStreams: return "https://streams.dynamodb.\(region).\(suffix)"
        case .s3: return "https://s3.\(region).\(suffix)"
        case .cloudWatch: return "https://monitoring.\(region).\(suffix)"
        case .iam:
            if region.hasPrefix("cn-") { return "https://iam.cn-north-1.amazonaws.com.cn" }
            if region.hasPrefix("us-gov-") { return "https://iam.us-gov.amazonaws.com" }
            return "https://iam.amazonaws.com"
        case .sts: return "https://sts.\(region).\(suffix)"
        }
    }
}

/// Region, endpoints and credentials for talking to AWS, resolved the way the AWS SDKs do
/// from flags, the environment and the shared config files.
public struct AWSConfiguration: Sendable {
    public var region: String
    /// Endpoint overrides by service (from AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>).
    public var endpointOverrides: [AWSService: String]
    public var credentials: CredentialChain
    /// Seconds to wait for a TCP/TLS connection.
    public var connectTimeout: Double
    /// Seconds a whole request (not a streamed download) may take.
    public var requestTimeout: Double

    public init(
        region: String, endpointOverrides: [AWSService: String] = [:], credentials: CredentialChain,
        connectTimeout: Double = 5, requestTimeout: Double = 60
    ) {
        self.region = region
        self.endpointOverrides = endpointOverrides
        self.credentials = credentials
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
    }

    /// Resolves region, endpoints and the credential chain. Region: `region` (a flag),
    /// AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`. Throws
    /// `AWSError(kind: .configuration)` for a missing or unknown region or a missing profile.
    public static func resolve(
        region: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AWSConfiguration {
        let files = try ProfileFiles.load(environment: environment)
        var overrides: [AWSService: String] = [:]
        if environment["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]?.lowercased() != "true" {
            let global = nonEmpty(environment["AWS_ENDPOINT_URL"]) ?? files.profileValue("endpoint_url")
            for service in AWSService.allCases {
                if let url = nonEmpty(environment[service.endpointVariable]) ?? global {
                    overrides[service] = try validatedEndpoint(url, variable: service.endpointVariable)
                }
            }
        }
        let chosen =
            nonEmpty(region) ?? nonEmpty(environment["AWS_REGION"]) ?? nonEmpty(environment["AWS_DEFAULT_REGION"])
            ?? files.profileValue("region")
        guard let chosen else {
            throw AWSError.configuration(
                "no AWS region configured: pass --region, set AWS_REGION, or set region in profile '\(files.profile)'")
        }
        if !isWellFormedRegion(chosen) && overrides.isEmpty {
            throw AWSError.configuration(
                "malformed AWS region '\(chosen)': expected a name such as us-east-1, or set AWS_ENDPOINT_URL for a local endpoint")
        }
        let chain = CredentialChain(
            environment: environment, files: files,
            stsEndpoint: overrides[.sts] ?? AWSService.sts.defaultEndpoint(region: chosen))
        var configuration = AWSConfiguration(region: chosen, endpointOverrides: overrides, credentials: chain)
        if let t = environment["HEMSTREAM_AWS_CONNECT_TIMEOUT"].flatMap(Double.init) { configuration.connectTimeout = t }
        if let t = environment["HEMSTREAM_AWS_REQUEST_TIMEOUT"].flatMap(Double.init) { configuration.requestTimeout = t }
        return configuration
    }

    /// Base URL for a service, without a trailing slash.
    public func endpoint(for service: AWSService) -> String {
        endpointOverrides[service] ?? service.defaultEndpoint(region: region)
    }

    /// True when the service is reached through an override (so S3 uses path-style URLs).
    public func hasEndpointOverride(for service: AWSService) -> Bool {
        endpointOverrides[service] != nil
    }

    /// Region for the credential scope (IAM is global and signs for its home region).
    func signingRegion(for service: AWSService) -> String {
        if service == .iam && endpointOverrides[.iam] == nil {
            if region.hasPrefix("cn-") { return "cn-north-1" }
            if region.hasPrefix("us-gov-") { return "us-gov-west-1" }
            return "us-east-1"
        }
        return region
    }

    static func validatedEndpoint(_ url: String, variable: String) throws -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8 else {
            throw AWSError.configuration("\(variable) must be an http:// or https:// URL, got '\(url)'")
        }
        return url
    }

    /// A region name as AWS forms them (`us-east-1`, `us-gov-west-1`, `ap-southeast-7`): two
    /// letters, one or more lowercase words, a number. Any such name is accepted, so regions AWS
    /// adds later work without a new release; an endpoint override lifts the check.
    public static func isWellFormedRegion(_ name: String) -> Bool {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, let first = parts.first, let last = parts.last else { return false }
        func letters(_ s: Substring) -> Bool { !s.isEmpty && s.allSatisfy { $0 >= "a" && $0 <= "z" } }
        return first.count == 2 && letters(first) && parts.dropFirst().dropLast().allSatisfy(letters)
            && !last.isEmpty && last.count <= 2 && last.allSatisfy { $0 >= "0" && $0 <= "9" }
    }
}

func nonEmpty(_ value: String?) -> String? {
    guard let value, !value.isEmpty else { return nil }
    return value
}
