import Foundation
import JSON
import Logging
import Synchronization

/// Signed, retried calls to DynamoDB, DynamoDB Streams, S3, CloudWatch (and IAM/STS query
/// calls) over libcurl. Safe to share: many calls may be in flight at once.
public final class AWSClient: Sendable {
    public let configuration: AWSConfiguration
    public let retryPolicy: RetryPolicy
    let logger: Logger
    let quota: RetryQuota
    private let counters = Mutex(AWSClientMetrics())
    let pool: CurlThreadPool
    let dynamoDBSigner: JSONRequestSigner
    let streamsSigner: JSONRequestSigner

    public init(
        configuration: AWSConfiguration, retryPolicy: RetryPolicy = .standard,
        logger: Logger = Logger(label: "hemstream.aws")
    ) {
        self.configuration = configuration
        self.retryPolicy = retryPolicy
        self.logger = logger
        self.quota = RetryQuota(capacity: retryPolicy.quotaCapacity)
        self.pool = CurlThreadPool.shared
        self.dynamoDBSigner = JSONRequestSigner(
            endpoint: configuration.endpoint(for: .dynamoDB), region: configuration.signingRegion(for: .dynamoDB),
            service: AWSService.dynamoDB.signingName)
        self.streamsSigner = JSONRequestSigner(
            endpoint: configuration.endpoint(for: .dynamoDBStreams),
            region: configuration.signingRegion(for: .dynamoDBStreams), service: AWSService.dynamoDBStreams.signingName)
    }

    /// Counters since the client was made: HTTP attempts, retries, throttled answers.
    public var metrics: AWSClientMetrics { counters.withLock { $0 } }

    /// Tokens left in the retry quota.
    public var retryQuotaAvailable: Int { quota.available }

    // MARK: DynamoDB and Streams (JSON 1.0 protocol)

    /// DynamoDB JSON 1.0 protocol (X-Amz-Target: DynamoDB_20120810.<operation>).
    public func dynamoDB(_ operation: String, _ body: JSON) async throws -> JSON {
        let bytes = try await dynamoDBRaw(operation, body: body.serializedBytes())
        return try parseJSONResponse(bytes, service: .dynamoDB, operation: operation)
    }

    /// Hot path: body already serialized; returns the raw response bytes.
    public func dynamoDBRaw(_ operation: String, body: [UInt8]) async throws -> [UInt8] {
        try await jsonCall(.dynamoDB, target: "DynamoDB_20120810." + operation, operation: operation, body: body)
    }

    /// DynamoDB Streams (X-Amz-Target: DynamoDBStreams_20120810.<operation>).
    public func dynamoDBStreams(_ operation: String, _ body: JSON) async throws -> JSON {
        let bytes = try await dynamoDBStreamsRaw(operation, body: body.serializedBytes())
        return try parseJSONResponse(bytes, service: .dynamoDBStreams, operation: operation)
    }

    public func dynamoDBStreamsRaw(_ operation: String, body: [UInt8]) async throws -> [UInt8] {
        try await jsonCall(
            .dynamoDBStreams, target: "DynamoDBStreams_20120810." + operation, operation: operation, body: body)
    }

    /// Signed on bytes by the service's JSONRequestSigner (the loader's hot path).
    func jsonCall(_ service: AWSService, target: String, operation: String, body: [UInt8]) async throws -> [UInt8] {
        let signer = service == .dynamoDBStreams ? streamsSigner : dynamoDBSigner
        return try await withRetries(service: service, operation: operation) { attempt in
            let credentials = try await self.credentials(service: service, operation: operation)
            let block = signer.headerBlock(
                target: target, contentType: "application/x-amz-json-1.0", body: body, credentials: credentials,
                now: AmzDate.now())
            let request = HTTPRequest(
                method: "POST", url: signer.url, headers: [], body: body,
                connectTimeout: self.configuration.connectTimeout, timeout: self.configuration.requestTimeout,
                headerBlock: block)
            return try await self.perform(request, service: service, operation: operation).body
        }
    }

    func parseJSONResponse(_ bytes: [UInt8], service: AWSService, operation: String) throws -> JSON {
        if bytes.isEmpty { return .object([:]) }
        do {
            return try JSON.parse(bytes)
        } catch {
            throw AWSError(
                kind: .malformedResponse, service: service, operation: operation,
                message: "response is not JSON (\(error.description))")
        }
    }

    // MARK: Query protocol (IAM, STS, CloudWatch)

    /// A query-protocol call (form-encoded POST with Action and Version); returns the XML answer.
    public func query(
        _ service: AWSService, action: String, version: String, parameters: [(String, String)] = []
    ) async throws -> String {
        let pairs = [("Action", action), ("Version", version)] + parameters
        let form = pairs.map { SigV4Signer.uriEncode($0.0, keepSlash: false) + "=" + SigV4Signer.uriEncode($0.1, keepSlash: false) }
            .joined(separator: "&")
        let call = Call(
            service: service, operation: action, method: "POST", path: "/", query: [],
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], body: Array(form.utf8))
        let response = try await send(call)
        return String(decoding: response.body, as: UTF8.self)
    }

    // MARK: Request machinery

    struct Call: Sendable {
        var service: AWSService
        var operation: String
        var method: String
        /// Decoded path below the endpoint, starting with "/".
        var path: String
        var query: [(String, String)]
        var headers: [(String, String)]
        var body: [UInt8]
        /// S3 virtual-hosted bucket; nil for path-style or other services.
        var virtualHostBucket: String? = nil
        /// Whole-request timeout; nil uses the configuration's.
        var timeout: Double? = nil
    }

    /// Builds the signed curl request for one attempt.
    func prepare(_ call: Call, credentials: AWSCredentials, payloadHash: String, date: Date) -> HTTPRequest {
        let endpoint = EndpointParts(configuration.endpoint(for: call.service))
        var authority = endpoint.authority
        if let bucket = call.virtualHostBucket { authority = bucket + "." + authority }
        let fullPath = endpoint.basePath + call.path
        var headers = call.headers
        headers.append(("Host", authority))
        if call.service == .s3 { headers.append(("x-amz-content-sha256", payloadHash)) }
        let signer = SigV4Signer(
            credentials: credentials, region: configuration.signingRegion(for: call.service),
            service: call.service.signingName)
        let signature = signer.sign(
            method: call.method, path: fullPath, query: call.query, headers: headers, payloadHash: payloadHash, date: date)
        var url = endpoint.scheme + "://" + authority + SigV4Signer.canonicalPath(fullPath)
        let query = SigV4Signer.canonicalQuery(call.query)
        if !query.isEmpty { url += "?" + query }
        return HTTPRequest(
            method: call.method, url: url, headers: signature.headers, body: call.body,
            connectTimeout: configuration.connectTimeout, timeout: call.timeout ?? configuration.requestTimeout)
    }

    /// Sends a call with signing, retries and error decoding; returns a 2xx response.
    func send(_ call: Call) async throws -> HTTPResponse {
        let payloadHash = call.body.isEmpty ? emptyPayloadHash : sha256Hex(call.body)
        return try await withRetries(call) { attempt in
            let credentials = try await self.credentialsFor(call)
            let request = self.prepare(call, credentials: credentials, payloadHash: payloadHash, date: Date())
            return try await self.perform(request, service: call.service, operation: call.operation)
        }
    }

    /// One attempt: the response when it is 2xx, else the decoded error.
    func perform(_ request: HTTPRequest, service: AWSService, operation: String) async throws -> HTTPResponse {
        let response: HTTPResponse
        switch await pool.perform(request) {
        case .success(let r): response = r
        case .failure(let error): throw error.awsError(service: service, operation: operation)
        }
        if (200..<300).contains(response.status) { return response }
        throw ErrorDecoder.decode(
            status: response.status, headers: response.headers, body: response.body, service: service,
            operation: operation)
    }

    func credentialsFor(_ call: Call) async throws -> AWSCredentials {
        try await credentials(service: call.service, operation: call.operation)
    }

    func credentials(service: AWSService, operation: String) async throws -> AWSCredentials {
        do {
            return try await configuration.credentials.credentials()
        } catch var error as AWSError {
            error.service = service
            error.operation = operation
            throw error
        }
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, runs out of
    /// attempts, or the retry quota is empty.
    func withRetries<T: Sendable>(_ call: Call, _ attempt: @Sendable (Int) async throws -> T) async throws -> T {
        try await withRetries(service: call.service, operation: call.operation, attempt)
    }

    func withRetries<T: Sendable>(
        service: AWSService, operation: String, _ attempt: @Sendable (Int) async throws -> T
    ) async throws -> T {
        var number = 1
        var costTaken = 0
        while true {
            counters.withLock { $0.requests += 1 }
            var failure: AWSError
            do {
                let value = try await attempt(number)
                quota.release(costTaken > 0 ? costTaken : 1)
                return value
            } catch let error as AWSError {
                failure = error
            }
            failure.attempts = number
            if failure.isThrottling { counters.withLock { $0.throttled += 1 } }
            guard failure.isRetryable, number < retryPolicy.maxAttempts else { throw failure }
            let cost = failure.isTimeout ? retryPolicy.timeoutRetryCost : retryPolicy.retryCost
            guard quota.acquire(cost) else {
                logger.debug(
                    "retry quota exhausted; not retrying",
                    metadata: ["service": "\(service.displayName)", "operation": "\(operation)"])
                throw failure
            }
            costTaken += cost
            counters.withLock { $0.retries += 1 }
            let delay = retryPolicy.delay(retry: number, throttled: failure.isThrottling)
            logger.debug(
                "retrying AWS call",
                metadata: [
                    "service": "\(service.displayName)", "operation": "\(operation)",
                    "error": "\(failure.code ?? failure.kindName)", "attempt": "\(number)",
                    "delay_ms": "\(Int(delay * 1000))",
                ])
            if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000)) }
            number += 1
        }
    }
}

extension AWSError {
    var kindName: String {
        switch kind {
        case .service: return "service"
        case .transport: return "transport"
        case .credentials: return "credentials"
        case .configuration: return "configuration"
        case .malformedResponse: return "malformedResponse"
        }
    }
}

/// "https://host:port/base" split into scheme, authority and base path (no trailing slash).
struct EndpointParts {
    var scheme: String
    var authority: String
    var basePath: String

    init(_ url: String) {
        if let range = url.range(of: "://") {
            scheme = String(url[..<range.lowerBound])
            let rest = url[range.upperBound...]
            if let slash = rest.firstIndex(of: "/") {
                authority = String(rest[..<slash])
                var base = String(rest[slash...])
                while base.hasSuffix("/") { base.removeLast() }
                basePath = base
            } else {
                authority = String(rest)
                basePath = ""
            }
        } else {
            scheme = "https"
            authority = url
            basePath = ""
        }
    }
}
