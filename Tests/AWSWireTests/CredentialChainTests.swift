@testable import AWSWire
import Foundation
import JSON
import TestSupport
import XCTest

/// The credential chain's precedence, as the AWS SDKs define it: environment, shared profile,
/// container credentials, EC2 instance metadata (IMDSv2). Container and IMDS sources are real
/// HTTP servers on loopback that answer the way ECS and EC2 do.
final class CredentialChainTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    /// Writes ~/.aws/credentials and ~/.aws/config stand-ins and points the environment at them.
    private func profileEnvironment(credentials: String, config: String = "", _ extra: [String: String] = [:])
        throws -> [String: String]
    {
        let credentialsFile = directory.file("credentials")
        let configFile = directory.file("config")
        try credentials.write(to: credentialsFile, atomically: true, encoding: .utf8)
        try config.write(to: configFile, atomically: true, encoding: .utf8)
        var env = isolatedEnvironment(extra)
        env["AWS_SHARED_CREDENTIALS_FILE"] = credentialsFile.path
        env["AWS_CONFIG_FILE"] = configFile.path
        return env
    }

    private static let profiles = """
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = default-secret

        [analytics]
        aws_access_key_id = AKIDANALYTICS
        aws_secret_access_key = analytics-secret
        aws_session_token = analytics-token
        """

    private static let config = """
        [default]
        region = eu-west-1

        [profile analytics]
        region = ap-southeast-2
        """

    private static func credentialDocument(_ id: String, expiresIn seconds: TimeInterval = 3600) -> String {
        let expiry = ISO8601DateFormatter().string(from: Date().addingTimeInterval(seconds))
        return #"{"Code":"Success","AccessKeyId":"\#(id)","SecretAccessKey":"\#(id)-secret","Token":"\#(id)-token","Expiration":"\#(expiry)"}"#
    }

    func testChain_whenEnvironmentAndProfileBothSet_environmentWinsWithSessionToken() async throws {
        let env = try profileEnvironment(credentials: Self.profiles, config: Self.config, [
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token",
        ])
        let configuration = try AWSConfiguration.resolve(environment: env)
        let credentials = try await configuration.credentials.credentials()
        XCTAssertEqual(credentials, AWSCredentials(accessKeyID: "AKIDENV", secretAccessKey: "env-secret", sessionToken: "env-token"))
        let source = await configuration.credentials.currentSourceName()
        XCTAssertEqual(source, "environment")
        XCTAssertEqual(configuration.region, "eu-west-1", "region still comes from the default profile")
    }

    func testChain_whenOnlyAccessKeyInEnvironment_skipsToProfile() async throws {
        let env = try profileEnvironment(credentials: Self.profiles, config: Self.config, ["AWS_ACCESS_KEY_ID": "AKIDENV"])
        let credentials = try await AWSConfiguration.resolve(environment: env).credentials.credentials()
        XCTAssertEqual(credentials.accessKeyID, "AKIDDEFAULT")
    }

    func testChain_whenAWSProfileNamesAProfile_usesItsKeysTokenAndRegion() async throws {
        let env = try profileEnvironment(credentials: Self.profiles, config: Self.config, ["AWS_PROFILE": "analytics"])
        let configuration = try AWSConfiguration.resolve(environment: env)
        let credentials = try await configuration.credentials.credentials()
        XCTAssertEqual(credentials, AWSCredentials(accessKeyID: "AKIDANALYTICS", secretAccessKey: "analytics-secret", sessionToken: "analytics-token"))
        XCTAssertEqual(configuration.region, "ap-southeast-2")
        let source = await configuration.credentials.currentSourceName()
        XCTAssertEqual(source, "profile 'analytics'")
    }

    func testChain_whenAWSProfileIsMissing_failsNamingTheProfileAndFiles() throws {
        let env = try profileEnvironment(credentials: Self.profiles, config: Self.config, ["AWS_PROFILE": "nosuch"])
        XCTAssertThrowsError(try AWSConfiguration.resolve(environment: env)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("'nosuch'"), text)
            XCTAssertTrue(text.contains(self.directory.file("credentials").path), text)
        }
    }

    func testRegion_precedence_flagThenAWSRegionThenDefaultRegionThenProfile() throws {
        let base = try profileEnvironment(credentials: Self.profiles, config: Self.config)
        var env = base
        env["AWS_REGION"] = "us-west-2"
        env["AWS_DEFAULT_REGION"] = "eu-central-1"
        XCTAssertEqual(try AWSConfiguration.resolve(region: "sa-east-1", environment: env).region, "sa-east-1")
        XCTAssertEqual(try AWSConfiguration.resolve(environment: env).region, "us-west-2")
        env["AWS_REGION"] = nil
        XCTAssertEqual(try AWSConfiguration.resolve(environment: env).region, "eu-central-1")
        XCTAssertEqual(try AWSConfiguration.resolve(environment: base).region, "eu-west-1")
    }

    func testEndpoints_perServiceVariableBeatsGlobalOverride() throws {
        let env = isolatedEnvironment([
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1111/",
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": "http://127.0.0.1:2222",
        ])
        let configuration = try AWSConfiguration.resolve(environment: env)
        XCTAssertEqual(configuration.endpoint(for: .dynamoDB), "http://127.0.0.1:1111")
        XCTAssertEqual(configuration.endpoint(for: .dynamoDBStreams), "http://127.0.0.1:2222")
        XCTAssertEqual(configuration.endpoint(for: .s3), "http://127.0.0.1:1111")
        let plain = try AWSConfiguration.resolve(environment: isolatedEnvironment(["AWS_REGION": "eu-west-1"]))
        XCTAssertEqual(plain.endpoint(for: .dynamoDB), "https://dynamodb.eu-west-1.amazonaws.com")
    }

    func testChain_whenContainerFullURIOnLoopback_fetchesWithAuthorizationTokenFromFile() async throws {
        let server = try ScriptedHTTPServer(responses: [.json(200, Self.credentialDocument("ASIACONTAINER"))])
        defer { server.stop() }
        let tokenFile = directory.file("token")
        try "secret-container-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let env = isolatedEnvironment([
            "AWS_REGION": "us-east-1",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/v2/credentials/abc",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile.path,
        ])
        let chain = try AWSConfiguration.resolve(environment: env).credentials
        let credentials = try await chain.credentials()
        XCTAssertEqual(credentials.accessKeyID, "ASIACONTAINER")
        XCTAssertEqual(credentials.sessionToken, "ASIACONTAINER-token")
        XCTAssertNotNil(credentials.expiration)
        XCTAssertEqual(server.requests.first?.path, "/v2/credentials/abc")
        XCTAssertEqual(server.requests.first?.header("Authorization"), "secret-container-token")
        let again = try await chain.credentials()
        XCTAssertEqual(again, credentials)
        XCTAssertEqual(server.requestCount, 1, "credentials valid for an hour are cached, not fetched again")
    }

    func testChain_whenContainerCredentialsExpireSoon_refreshesOnNextUse() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .json(200, Self.credentialDocument("ASIAFIRST", expiresIn: 60)),
            .json(200, Self.credentialDocument("ASIASECOND")),
        ])
        defer { server.stop() }
        let env = isolatedEnvironment(["AWS_REGION": "us-east-1", "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/creds"])
        let chain = try AWSConfiguration.resolve(environment: env).credentials
        let first = try await chain.credentials()
        let second = try await chain.credentials()
        XCTAssertEqual(first.accessKeyID, "ASIAFIRST")
        XCTAssertEqual(second.accessKeyID, "ASIASECOND", "within five minutes of expiry the chain refreshes")
    }

    func testChain_whenContainerFullURIIsPlainHTTPElsewhere_refusesIt() async throws {
        let env = isolatedEnvironment([
            "AWS_REGION": "us-east-1", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://203.0.113.9/creds",
        ])
        let chain = try AWSConfiguration.resolve(environment: env).credentials
        XCTAssertFalse(chain.sourceNames.contains("container credentials"))
        do {
            _ = try await chain.credentials()
            XCTFail("expected no credentials")
        } catch {
            XCTAssertTrue(String(describing: error).contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "\(error)")
        }
    }

    func testChain_whenProfileAndContainerBothAvailable_profileWins() async throws {
        let server = try ScriptedHTTPServer(responses: [.json(200, Self.credentialDocument("ASIACONTAINER"))])
        defer { server.stop() }
        let env = try profileEnvironment(credentials: Self.profiles, config: Self.config, [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/creds",
        ])
        let chain = try AWSConfiguration.resolve(environment: env).credentials
        XCTAssertEqual(chain.sourceNames, ["profile 'default'", "container credentials"])
        let credentials = try await chain.credentials()
        XCTAssertEqual(credentials.accessKeyID, "AKIDDEFAULT")
        XCTAssertEqual(server.requestCount, 0)
    }

    func testChain_whenOnlyInstanceMetadata_usesIMDSv2TokenThenRoleThenCredentials() async throws {
        let server = try ScriptedHTTPServer { request, _ in
            switch (request.method, request.path) {
            case ("PUT", "/latest/api/token"):
                return request.header("X-aws-ec2-metadata-token-ttl-seconds") == nil
                    ? .text(400, "ttl missing") : .text(200, "imds-session-token")
            case ("GET", "/latest/meta-data/iam/security-credentials/"):
                return request.header("X-aws-ec2-metadata-token") == "imds-session-token"
                    ? .text(200, "hemstream-role\n") : .text(401, "")
            case ("GET", "/latest/meta-data/iam/security-credentials/hemstream-role"):
                return request.header("X-aws-ec2-metadata-token") == "imds-session-token"
                    ? .json(200, Self.credentialDocument("ASIAINSTANCE")) : .text(401, "")
            default:
                return .text(404, "not found")
            }
        }
        defer { server.stop() }
        var env = isolatedEnvironment(["AWS_REGION": "us-east-1", "AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint + "/"])
        env["AWS_EC2_METADATA_DISABLED"] = nil
        let chain = try AWSConfiguration.resolve(environment: env).credentials
        XCTAssertEqual(chain.sourceNames, ["EC2 instance metadata"])
        let credentials = try await chain.credentials()
        XCTAssertEqual(credentials.accessKeyID, "ASIAINSTANCE")
        XCTAssertEqual(credentials.sessionToken, "ASIAINSTANCE-token")
        XCTAssertEqual(server.requests.map(\.method), ["PUT", "GET", "GET"])
    }

    func testChain_whenNothingConfigured_failsWithOneLineNamingWhatToSet() async throws {
        let chain = try AWSConfiguration.resolve(environment: isolatedEnvironment(["AWS_REGION": "us-east-1"])).credentials
        XCTAssertEqual(chain.sourceNames, [])
        do {
            _ = try await chain.credentials()
            XCTFail("expected no credentials")
        } catch {
            let text = String(describing: error)
            XCTAssertTrue(text.contains("AWS_ACCESS_KEY_ID"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }
}

/// IRSA on EKS: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN → STS AssumeRoleWithWebIdentity.
final class WebIdentityTests: XCTestCase {
    static func stsAnswer(_ id: String, expiresIn seconds: TimeInterval) -> String {
        let expiry = ISO8601DateFormatter().string(from: Date().addingTimeInterval(seconds))
        return """
            <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
              <AssumeRoleWithWebIdentityResult><Credentials>
                <AccessKeyId>\(id)</AccessKeyId><SecretAccessKey>\(id)-secret</SecretAccessKey>
                <SessionToken>\(id)-token</SessionToken><Expiration>\(expiry)</Expiration>
              </Credentials></AssumeRoleWithWebIdentityResult>
            </AssumeRoleWithWebIdentityResponse>
            """
    }

    func environment(sts: String, tokenFile: String) -> [String: String] {
        [
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_STS": sts, "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile,
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/hemstream-stream", "AWS_ROLE_SESSION_NAME": "pod-a",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        ]
    }

    func testWebIdentity_assumesTheRoleWithTheTokenFromTheFile_andRefreshesBeforeExpiry_rereadingTheToken() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .xml(200, Self.stsAnswer("ASIAFIRST", expiresIn: 60)), .xml(200, Self.stsAnswer("ASIASECOND", expiresIn: 3600)),
        ])
        defer { server.stop() }
        let token = try TemporaryFile(name: "token", contents: Data("eyJ.first.token\n".utf8))
        let chain = try AWSConfiguration.resolve(environment: environment(sts: server.endpoint, tokenFile: token.path)).credentials
        let first = try await chain.credentials()
        XCTAssertEqual(first.accessKeyID, "ASIAFIRST")
        XCTAssertEqual(first.sessionToken, "ASIAFIRST-token")
        let sourceName = await chain.currentSourceName()
        XCTAssertEqual(sourceName, "web identity")
        let form = server.requests[0].bodyText
        XCTAssertEqual(server.requests[0].method, "POST")
        for field in [
            "Action=AssumeRoleWithWebIdentity", "Version=2011-06-15", "RoleSessionName=pod-a",
            "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fhemstream-stream", "WebIdentityToken=eyJ.first.token",
        ] {
            XCTAssertTrue(form.split(separator: "&").contains(Substring(field)), "\(field) in \(form)")
        }
        XCTAssertNil(server.requests[0].header("Authorization"), "the token is the proof: the call is not signed")

        // Within five minutes of expiry the role is assumed again, with the token as it is now.
        try Data("eyJ.rotated.token".utf8).write(to: token.url)
        let second = try await chain.credentials()
        XCTAssertEqual(second.accessKeyID, "ASIASECOND")
        XCTAssertTrue(server.requests[1].bodyText.contains("WebIdentityToken=eyJ.rotated.token"))
        XCTAssertEqual(server.requestCount, 2)
    }

    func testWebIdentity_refusedBySTS_namesTheCodeNotTheToken() async throws {
        let server = try ScriptedHTTPServer(responses: [
            .xml(403, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>token eyJ.secret.x is bad</Message></Error></ErrorResponse>")
        ])
        defer { server.stop() }
        let token = try TemporaryFile(name: "token", contents: Data("eyJ.secret.x".utf8))
        let chain = try AWSConfiguration.resolve(environment: environment(sts: server.endpoint, tokenFile: token.path)).credentials
        do {
            _ = try await chain.credentials()
            XCTFail("credentials without a valid token")
        } catch let error as AWSError {
            XCTAssertEqual(error.kind, .credentials)
            XCTAssertTrue(error.message.contains("web identity") && error.message.contains("InvalidIdentityToken"), error.message)
            XCTAssertFalse(error.description.contains("eyJ.secret.x"), "the token never appears in an error")
        }
    }

    func testWebIdentity_againstMotoSTS_givesTemporaryCredentialsThatSignCalls() async throws {
        let moto = try MotoServer.sharedEndpoint()
        let token = try TemporaryFile(name: "token", contents: Data("eyJ.moto.token".utf8))
        var env = environment(sts: moto, tokenFile: token.path)
        env["AWS_ENDPOINT_URL_DYNAMODB"] = moto
        let configuration = try AWSConfiguration.resolve(environment: env)
        let credentials = try await configuration.credentials.credentials()
        XCTAssertFalse(credentials.accessKeyID.isEmpty)
        XCTAssertNotNil(credentials.sessionToken)
        XCTAssertGreaterThan(credentials.expiration ?? .distantPast, Date())
        // The credentials sign a real call.
        let tables = try await AWSClient(configuration: configuration).dynamoDB("ListTables", [:])
        XCTAssertNotNil(tables["TableNames"]?.arrayValue)
    }
}

final class RegionNameTests: XCTestCase {
    func testRegion_anyWellFormedName_isAccepted_soNewRegionsNeedNoRelease() throws {
        for region in ["us-east-1", "us-gov-west-1", "cn-northwest-1", "ap-southeast-7", "mx-central-1", "zz-newplace-9"] {
            let c = try AWSConfiguration.resolve(environment: ["AWS_REGION": region, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"])
            XCTAssertEqual(c.region, region)
            XCTAssertEqual(c.endpoint(for: .dynamoDB), "https://dynamodb.\(region).amazonaws.com" + (region.hasPrefix("cn-") ? ".cn" : ""))
        }
    }

    func testRegion_malformedName_isAConfigurationErrorNamingIt() {
        for region in ["useast1", "US-EAST-1", "us-east", "us-east-one", "u-east-1", "us--1", "us-east-1/x"] {
            XCTAssertThrowsError(
                try AWSConfiguration.resolve(environment: ["AWS_REGION": region, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"])
            ) { error in
                let e = error as? AWSError
                XCTAssertEqual(e?.kind, .configuration, region)
                XCTAssertTrue(e?.message.contains("malformed AWS region '\(region)'") == true, "\(error)")
            }
        }
    }
}
