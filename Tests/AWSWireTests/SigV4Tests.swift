import Foundation
import XCTest

@testable import AWSWire

final class SigV4Tests: XCTestCase {
    /// 2015-08-30T12:36:00Z, the suite's signing time.
    let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)

    struct ParsedRequest {
        var method: String
        var path: String
        var query: [(String, String)]
        var headers: [(String, String)]
        var body: [UInt8]
    }

    func parse(_ req: String) -> ParsedRequest {
        var lines = req.components(separatedBy: "\n")
        let requestLine = lines.removeFirst()
        let parts = requestLine.components(separatedBy: " ")
        let method = parts[0]
        let target = parts[1..<(parts.count - 1)].joined(separator: " ")
        var path = target
        var query: [(String, String)] = []
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            for pair in target[target.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query.append((String(kv[0]).removingPercentEncoding!, kv.count > 1 ? String(kv[1]).removingPercentEncoding! : ""))
            }
        }
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        while !lines.isEmpty {
            let line = lines.removeFirst()
            if line.isEmpty {
                body = Array(lines.joined(separator: "\n").utf8)
                break
            }
            let colon = line.firstIndex(of: ":")!
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        return ParsedRequest(method: method, path: path, query: query, headers: headers, body: body)
    }

    func testSigV4_suiteVectors_matchCanonicalRequestStringToSignAndAuthorizationByteForByte() {
        XCTAssertEqual(SigV4Signer.amzDate(suiteDate), "20150830T123600Z")
        let signer = SigV4Signer(
            credentials: AWSCredentials(accessKeyID: sigV4SuiteAccessKey, secretAccessKey: sigV4SuiteSecretKey),
            region: "us-east-1", service: "service")
        XCTAssertGreaterThanOrEqual(sigV4SuiteVectors.count, 9)
        for vector in sigV4SuiteVectors {
            var request = parse(vector.req)
            if vector.tokenAddedAfterSigning {
                request.headers.removeAll { $0.0.lowercased() == "x-amz-security-token" }
            }
            let signature = signer.sign(
                method: request.method, path: request.path, query: request.query, headers: request.headers,
                payloadHash: sha256Hex(request.body), date: suiteDate)
            XCTAssertEqual(signature.canonicalRequest, vector.creq, "\(vector.name): canonical request")
            XCTAssertEqual(signature.stringToSign, vector.sts, "\(vector.name): string to sign")
            XCTAssertEqual(signature.authorization, vector.authz, "\(vector.name): Authorization header")
        }
    }

    func testSigV4_withSessionToken_signsSecurityTokenHeader() {
        let signer = SigV4Signer(
            credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: "tok en"),
            region: "us-east-1", service: "dynamodb")
        let signature = signer.sign(
            method: "POST", path: "/", query: [], headers: [("Host", "example.com")], payloadHash: emptyPayloadHash,
            date: suiteDate)
        XCTAssertTrue(signature.authorization.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"))
        XCTAssertTrue(signature.headers.contains { $0.0 == "X-Amz-Security-Token" && $0.1 == "tok en" })
    }

    func testCanonicalQuery_encodesReservedCharactersAndSortsByEncodedKey() {
        XCTAssertEqual(
            SigV4Signer.canonicalQuery([("prefix", "a b/c+d"), ("list-type", "2"), ("continuation-token", "x=y")]),
            "continuation-token=x%3Dy&list-type=2&prefix=a%20b%2Fc%2Bd")
        XCTAssertEqual(SigV4Signer.canonicalPath("/bucket/dir/ሴ file"), "/bucket/dir/%E1%88%B4%20file")
    }
}
