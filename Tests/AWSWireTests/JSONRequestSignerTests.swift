import Foundation
import XCTest

@testable import AWSWire

/// The byte-built hot-path signer must produce exactly what the suite-tested SigV4Signer does.
final class JSONRequestSignerTests: XCTestCase {
    func lines(_ block: [UInt8]) -> [(String, String)] {
        block.split(separator: 0).map { line in
            let text = String(decoding: line, as: UTF8.self)
            let colon = text.firstIndex(of: ":")!
            return (String(text[..<colon]), String(text[text.index(after: colon)...].dropFirst()))
        }
    }

    func check(endpoint: String, credentials: AWSCredentials, body: String, second: Int) {
        let signer = JSONRequestSigner(endpoint: endpoint, region: "eu-west-1", service: "dynamodb")
        let target = "DynamoDB_20120810.BatchWriteItem"
        let now = AmzDate(second: second)
        let block = signer.headerBlock(
            target: target, contentType: "application/x-amz-json-1.0", body: Array(body.utf8),
            credentials: credentials, now: now)
        let reference = SigV4Signer(credentials: credentials, region: "eu-west-1", service: "dynamodb").sign(
            method: "POST", path: signer.path, query: [],
            headers: [
                ("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", target), ("Host", signer.host),
            ],
            payloadHash: sha256Hex(Array(body.utf8)), date: Date(timeIntervalSince1970: Double(second)))
        let got = Dictionary(uniqueKeysWithValues: lines(block).map { ($0.0.lowercased(), $0.1) })
        let want = Dictionary(uniqueKeysWithValues: reference.headers.map { ($0.0.lowercased(), $0.1) })
        XCTAssertEqual(got, want)
        // A second call (cached signing key, same second) signs the same.
        XCTAssertEqual(
            block,
            signer.headerBlock(
                target: target, contentType: "application/x-amz-json-1.0", body: Array(body.utf8),
                credentials: credentials, now: now))
    }

    func testHeaderBlock_matchesSigV4Signer_withAndWithoutSessionToken() {
        let plain = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        let temporary = AWSCredentials(
            accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: "token  with   spaces")
        check(endpoint: "https://dynamodb.eu-west-1.amazonaws.com", credentials: plain, body: #"{"a":1}"#, second: 1_440_938_160)
        check(endpoint: "http://127.0.0.1:8000", credentials: temporary, body: "", second: 1_764_000_000)
        check(endpoint: "http://localhost:4566/base/", credentials: plain, body: "x", second: 1_764_086_399)
        // The next day derives a new key.
        check(endpoint: "http://localhost:4566/base/", credentials: plain, body: "x", second: 1_764_086_400)
    }

    func testAmzDate_isTheSuiteFormat() {
        XCTAssertEqual(String(decoding: AmzDate(second: 1_440_938_160).text, as: UTF8.self), "20150830T123600Z")
        XCTAssertEqual(AmzDate.now().text.count, 16)
    }
}
