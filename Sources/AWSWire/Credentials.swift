import Foundation
import Synchronization
import JSON

/// An access key pair, with a session token and expiry for temporary credentials.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public var expiration: Date?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }
}

/// The SDKs' default credential chain, in their order: environment variables, web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: EKS IRSA, through STS
/// AssumeRoleWithWebIdentity), the shared profile, container credentials (ECS/EKS Pod
/// Identity), EC2 instance metadata (IMDSv2). The first
/// source that yields credentials is kept; temporary credentials are refreshed five
/// minutes before they expire.
public final class CredentialChain: Sendable {
    enum Source: Sendable {
        case fixed(AWSCredentials, String)
        case container(url: String, token: String?, tokenFile: String?)
        case webIdentity(roleARN: String, tokenFile: String, sessionName: String, stsEndpoint: String)
        case instanceMetadata(endpoint: String)

        var name: String {
            switch self {
            case .fixed(_, let name): return name
            case .container: return "container credentials"
            case .webIdentity: return "web identity"
            case .instanceMetadata: return "EC2 instance metadata"
            }
        }
    }

    let sources: [Source]
    /// Why a source was skipped (configuration problems), reported if nothing works.
    let notes: [String]
    private let cache = CredentialCache()
    /// The cache's answer and until when (seconds since 1970) it needs no refresh: read under
    /// a lock, so a call skips the actor hop while the credentials are fresh.
    private let fresh = Mutex<(credentials: AWSCredentials, until: Int)?>(nil)

    /// A chain of one: fixed credentials.
    public init(credentials: AWSCredentials) {
        sources = [.fixed(credentials, "static credentials")]
        notes = []
    }

    init(environment: [String: String], files: ProfileFiles, stsEndpoint: String = "https://sts.amazonaws.com") {
        var sources: [Source] = []
        var notes: [String] = []
        if let id = nonEmpty(environment["AWS_ACCESS_KEY_ID"]), let secret = nonEmpty(environment["AWS_SECRET_ACCESS_KEY"]) {
            sources.append(.fixed(AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty(environment["AWS_SESSION_TOKEN"])), "environment"))
        }
        if let tokenFile = nonEmpty(environment["AWS_WEB_IDENTITY_TOKEN_FILE"]) {
            if let role = nonEmpty(environment["AWS_ROLE_ARN"]) {
                let session = nonEmpty(environment["AWS_ROLE_SESSION_NAME"]) ?? "hemstream-\(Int(Date().timeIntervalSince1970))"
                sources.append(.webIdentity(roleARN: role, tokenFile: tokenFile, sessionName: session, stsEndpoint: stsEndpoint))
            } else {
                notes.append("AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN")
            }
        }
        if let id = files.profileValue("aws_access_key_id"), let secret = files.profileValue("aws_secret_access_key") {
            sources.append(.fixed(AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: files.profileValue("aws_session_token")), "profile '\(files.profile)'"))
        }
        let token = nonEmpty(environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"])
        let tokenFile = nonEmpty(environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
        if let relative = nonEmpty(environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]) {
            let path = relative.hasPrefix("/") ? relative : "/" + relative
            sources.append(.container(url: "http://169.254.170.2" + path, token: token, tokenFile: tokenFile))
        } else if let full = nonEmpty(environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"]) {
            if CredentialChain.allowedContainerURL(full) {
                sources.append(.container(url: full, token: token, tokenFile: tokenFile))
            } else {
                notes.append("AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback/ECS/EKS address")
            }
        }
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true" {
            var endpoint = nonEmpty(environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"]) ?? "http://169.254.169.254"
            while endpoint.hasSuffix("/") { endpoint.removeLast() }
            sources.append(.instanceMetadata(endpoint: endpoint))
        }
        self.sources = sources
        self.notes = notes
    }

    /// Names of the sources in the order they are tried.
    public var sourceNames: [String] { sources.map(\.name) }

    /// Current credentials, fetched on first use and refreshed before they expire.
    public func credentials() async throws -> AWSCredentials {
        let now = time(nil)
        if let known = fresh.withLock({ $0 }), now < known.until { return known.credentials }
        let credentials = try await cache.get { [sources, notes] in
            try await CredentialChain.load(sources: sources, notes: notes)
        }
        let until =
            credentials.expiration.map { Int($0.timeIntervalSince1970 - CredentialCache.refreshMargin) } ?? Int.max
        fresh.withLock { $0 = (credentials, until) }
        return credentials
    }

    /// Which source answered last (for logs), e.g. "environment".
    public func currentSourceName() async -> String? { await cache.sourceName }

    static func load(sources: [Source], notes: [String]) async throws -> (AWSCredentials, String) {
        var failures = notes
        for source in sources {
            do {
                if let credentials = try await fetch(source) { return (credentials, source.name) }
            } catch let error as AWSError {
                failures.append("\(source.name): \(error.message)")
            }
        }
        let detail = failures.isEmpty ? "" : " (" + failures.joined(separator: "; ") + ")"
        throw AWSError.credentials(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or run with a container or instance role\(detail)")
    }

    static func fetch(_ source: Source) async throws -> AWSCredentials? {
        switch source {
        case .fixed(let credentials, _):
            return credentials
        case .container(let url, let token, let tokenFile):
            var headers: [(String, String)] = [("Accept", "application/json")]
            var authorization = token
            if let tokenFile {
                guard let data = FileManager.default.contents(atPath: tokenFile) else {
                    throw AWSError.credentials("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(tokenFile)")
                }
                authorization = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if let authorization { headers.append(("Authorization", authorization)) }
            let response = try await metadataCall("GET", url, headers: headers, what: "container credentials")
            return try parseCredentialDocument(response.body, what: "container credentials at \(endpointOf(url))")
        case .webIdentity(let role, let tokenFile, let session, let endpoint):
            // The token file is read on every fetch: EKS rotates it.
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw AWSError.credentials("cannot read AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let form = [
                ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", role),
                ("RoleSessionName", session), ("WebIdentityToken", token),
            ].map { SigV4Signer.uriEncode($0.0, keepSlash: false) + "=" + SigV4Signer.uriEncode($0.1, keepSlash: false) }
                .joined(separator: "&")
            var base = endpoint
            while base.hasSuffix("/") { base.removeLast() }
            // Unsigned: the token is the proof.
            let response = try await metadataCall(
                "POST", base + "/", headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                body: Array(form.utf8), what: "STS AssumeRoleWithWebIdentity", timeout: 10)
            let xml = String(decoding: response.body, as: UTF8.self)
            guard let id = XMLText.firstValue(of: "AccessKeyId", in: xml),
                let secret = XMLText.firstValue(of: "SecretAccessKey", in: xml)
            else {
                throw AWSError.credentials("STS AssumeRoleWithWebIdentity at \(endpointOf(endpoint)): answer holds no credentials")
            }
            return AWSCredentials(
                accessKeyID: id, secretAccessKey: secret, sessionToken: XMLText.firstValue(of: "SessionToken", in: xml),
                expiration: XMLText.firstValue(of: "Expiration", in: xml).flatMap(parseISO8601))
        case .instanceMetadata(let endpoint):
            // IMDSv2: a session token first, then the role name, then that role's credentials.
            let tokenResponse: HTTPResponse
            do {
                tokenResponse = try await metadataCall(
                    "PUT", endpoint + "/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
                    what: "EC2 metadata token")
            } catch let error as AWSError where error.kind == .transport {
                return nil  // not on EC2
            }
            let token = String(decoding: tokenResponse.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let auth = [("X-aws-ec2-metadata-token", token)]
            let roles = try await metadataCall(
                "GET", endpoint + "/latest/meta-data/iam/security-credentials/", headers: auth, what: "EC2 instance role")
            guard let role = String(decoding: roles.body, as: UTF8.self).split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }), !role.isEmpty else {
                throw AWSError.credentials("EC2 instance has no IAM role")
            }
            let document = try await metadataCall(
                "GET", endpoint + "/latest/meta-data/iam/security-credentials/" + SigV4Signer.uriEncode(role, keepSlash: false),
                headers: auth, what: "EC2 role credentials")
            return try parseCredentialDocument(document.body, what: "EC2 role credentials")
        }
    }

    static func metadataCall(
        _ method: String, _ url: String, headers: [(String, String)], body: [UInt8] = [], what: String, timeout: Double = 5
    ) async throws -> HTTPResponse {
        let request = HTTPRequest(method: method, url: url, headers: headers, body: body, connectTimeout: 1, timeout: timeout)
        let response: HTTPResponse
        switch await CurlThreadPool.shared.perform(request) {
        case .success(let r):
            response = r
        case .failure(let error):
            var e = AWSError(kind: .transport, message: error.summary)
            e.isTimeout = error.isTimeout
            throw e
        }
        guard (200..<300).contains(response.status) else {
            // An AWS error code (e.g. InvalidIdentityToken), never the body's message, which can echo input.
            let code = XMLText.firstValue(of: "Code", in: String(decoding: response.body, as: UTF8.self)).map { " (\($0))" } ?? ""
            throw AWSError(kind: .credentials, message: "\(what) request to \(endpointOf(url)) answered HTTP \(response.status)\(code)", httpStatus: response.status)
        }
        return response
    }

    /// {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} as ECS and IMDS return it.
    static func parseCredentialDocument(_ body: [UInt8], what: String) throws -> AWSCredentials {
        guard let json = try? JSON.parse(body), let id = json["AccessKeyId"]?.stringValue,
            let secret = json["SecretAccessKey"]?.stringValue
        else {
            throw AWSError.credentials("\(what): answer is not a credentials document")
        }
        if let code = json["Code"]?.stringValue, code != "Success" {
            throw AWSError.credentials("\(what): \(code)")
        }
        let expiration = json["Expiration"]?.stringValue.flatMap(parseISO8601)
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: json["Token"]?.stringValue, expiration: expiration)
    }

    static func allowedContainerURL(_ url: String) -> Bool {
        if url.hasPrefix("https://") { return true }
        guard url.hasPrefix("http://") else { return false }
        let host = endpointOf(url).dropFirst("http://".count).split(separator: ":").first.map(String.init) ?? ""
        return host == "localhost" || host.hasPrefix("127.") || host == "[::1]" || host == "169.254.170.2"
            || host == "169.254.170.23" || host == "[fd00:ec2::23]"
    }
}

/// Holds the current credentials and makes sure only one refresh runs at a time.
actor CredentialCache {
    private var current: AWSCredentials?
    private(set) var sourceName: String?
    private var refreshing: Task<(AWSCredentials, String), Error>?
    static let refreshMargin: TimeInterval = 300

    func get(_ load: @escaping @Sendable () async throws -> (AWSCredentials, String)) async throws -> AWSCredentials {
        if let current, !needsRefresh(current) { return current }
        let task: Task<(AWSCredentials, String), Error>
        if let refreshing {
            task = refreshing
        } else {
            task = Task { try await load() }
            refreshing = task
        }
        do {
            let (credentials, name) = try await task.value
            refreshing = nil
            current = credentials
            sourceName = name
            return credentials
        } catch {
            refreshing = nil
            // A failed refresh keeps credentials that have not expired yet.
            if let current, let expiration = current.expiration, expiration > Date() { return current }
            throw error
        }
    }

    private func needsRefresh(_ credentials: AWSCredentials) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return expiration.timeIntervalSinceNow < CredentialCache.refreshMargin
    }
}

/// "2026-11-25T12:34:56Z" (fractional seconds and numeric offsets accepted).
func parseISO8601(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)
}
