import Foundation
import JSON

/// Why an AWS call failed: the AWS error code and message when the service answered, the
/// endpoint when it could not be reached. Prints as one line, never with a request body.
public struct AWSError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The service answered with an error (code and message from its body or headers).
        case service
        /// No usable HTTP answer: connect failure, timeout, reset connection.
        case transport
        /// No credentials could be found, or a credential source failed.
        case credentials
        /// Bad or missing configuration (region, endpoint, profile).
        case configuration
        /// The service answered with something this client cannot read.
        case malformedResponse
    }

    public var kind: Kind
    public var service: AWSService?
    public var operation: String?
    /// AWS error code, e.g. "ResourceNotFoundException".
    public var code: String?
    public var message: String
    public var httpStatus: Int?
    public var isThrottling: Bool
    public var isRetryable: Bool
    /// True for a transport timeout (retries cost more quota).
    public var isTimeout: Bool = false
    /// How many attempts were made before giving up (1 when not retried).
    public var attempts: Int = 1

    public init(
        kind: Kind, service: AWSService? = nil, operation: String? = nil, code: String? = nil,
        message: String, httpStatus: Int? = nil, isThrottling: Bool = false, isRetryable: Bool = false
    ) {
        self.kind = kind
        self.service = service
        self.operation = operation
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.isThrottling = isThrottling
        self.isRetryable = isRetryable
    }

    public var description: String {
        var text = ""
        if let service {
            text += service.displayName + " " + (operation.map { $0 + " " } ?? "") + "failed: "
        } else if let operation {
            text += operation + " failed: "
        }
        switch kind {
        case .service, .malformedResponse:
            if let code { text += code + ": " }
            text += message
            if let httpStatus { text += " (HTTP \(httpStatus))" }
        case .transport, .credentials, .configuration:
            text += message
            if let httpStatus { text += " (HTTP \(httpStatus))" }
        }
        if attempts > 1 { text += " after \(attempts) attempts" }
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    static func configuration(_ message: String) -> AWSError {
        AWSError(kind: .configuration, message: message)
    }

    static func credentials(_ message: String) -> AWSError {
        AWSError(kind: .credentials, message: message)
    }
}

/// Error codes the SDKs' standard retry mode treats as throttling.
let throttlingCodes: Set<String> = [
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "ThrottlingError",
]

/// Error codes that are transient whatever their HTTP status.
let transientCodes: Set<String> = [
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure",
    "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException",
]

enum ErrorDecoder {
    /// Builds the typed error for a non-2xx answer: code from JSON `__type` (after '#'),
    /// the x-amzn-ErrorType header, or an XML <Code>; message from `message`/`Message`.
    static func decode(
        status: Int, headers: HTTPHeaders, body: [UInt8], service: AWSService?, operation: String?
    ) -> AWSError {
        var code: String?
        var message: String?
        if let header = headers["x-amzn-errortype"], !header.isEmpty {
            code = cleanCode(header)
        }
        let firstByte = body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 })
        if firstByte == UInt8(ascii: "{"), let json = try? JSON.parse(body) {
            if let type = json["__type"]?.stringValue ?? json["code"]?.stringValue ?? json["Code"]?.stringValue {
                code = cleanCode(type)
            }
            message = json["message"]?.stringValue ?? json["Message"]?.stringValue
                ?? json["errorMessage"]?.stringValue
        } else if firstByte == UInt8(ascii: "<") {
            let xml = String(decoding: body, as: UTF8.self)
            if let c = XMLText.firstValue(of: "Code", in: xml) {
                code = c
                message = XMLText.firstValue(of: "Message", in: xml)
            }
        }
        let isThrottling = status == 429 || code.map { throttlingCodes.contains($0) } == true
        let isRetryable = isThrottling || status >= 500 || code.map { transientCodes.contains($0) } == true
        if code == nil && message == nil {
            let kind = headers["content-type"].map { ", \($0)" } ?? ""
            let what = body.isEmpty ? "an empty body" : "an unreadable body (\(body.count) bytes\(kind))"
            return AWSError(
                kind: .service, service: service, operation: operation, code: nil,
                message: "HTTP \(status) \(reasonPhrase(status)) with \(what)", httpStatus: status,
                isThrottling: isThrottling, isRetryable: isRetryable)
        }
        return AWSError(
            kind: .service, service: service, operation: operation, code: code ?? "HTTP\(status)",
            message: message ?? reasonPhrase(status), httpStatus: status, isThrottling: isThrottling,
            isRetryable: isRetryable)
    }

    /// "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException" -> "ResourceNotFoundException";
    /// "ValidationException:http://internal.amazon.com/..." -> "ValidationException".
    static func cleanCode(_ raw: String) -> String {
        var code = Substring(raw)
        if let hash = code.lastIndex(of: "#") { code = code[code.index(after: hash)...] }
        if let colon = code.firstIndex(of: ":") { code = code[..<colon] }
        return code.trimmingCharacters(in: .whitespaces)
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 409: return "Conflict"
        case 413: return "Payload Too Large"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "error"
        }
    }
}
