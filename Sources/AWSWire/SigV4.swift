import Crypto
import Foundation
import JSON

/// AWS Signature Version 4 (header form), written against the published SigV4 test suite.
/// Paths are given decoded and encoded once (S3's rule); every service this tool calls
/// uses "/" or S3 keys, so the double encoding other services use never differs.
public struct SigV4Signer: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// What signing produced, kept so tests can compare each step with the suite.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var authorization: String
        /// Headers to send: the caller's plus X-Amz-Date, X-Amz-Security-Token (when the
        /// credentials carry one) and Authorization.
        public var headers: [(String, String)]
    }

    /// Signs a request. `path` is decoded (e.g. "/my key"); `query` pairs are decoded.
    /// `headers` must include Host. `payloadHash` is the hex SHA-256 of the body.
    public func sign(
        method: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadHash: String, date: Date
    ) -> Signature {
        let amzDate = SigV4Signer.amzDate(date)
        let day = String(amzDate.prefix(8))
        var allHeaders = headers
        if !allHeaders.contains(where: { $0.0.lowercased() == "x-amz-date" }) {
            allHeaders.append(("X-Amz-Date", amzDate))
        }
        if let token = credentials.sessionToken,
            !allHeaders.contains(where: { $0.0.lowercased() == "x-amz-security-token" })
        {
            allHeaders.append(("X-Amz-Security-Token", token))
        }
        let (creq, signedHeaders) = SigV4Signer.canonicalRequest(
            method: method, path: path, query: query, headers: allHeaders, payloadHash: payloadHash)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let sts = SigV4Signer.stringToSign(canonicalRequest: creq, amzDate: amzDate, scope: scope)
        let key = SigV4Signer.signingKey(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(sts.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        allHeaders.append(("Authorization", authorization))
        return Signature(canonicalRequest: creq, stringToSign: sts, authorization: authorization, headers: allHeaders)
    }

    /// The canonical request and the semicolon-joined list of signed header names.
    public static func canonicalRequest(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String
    ) -> (String, String) {
        var grouped: [String: [String]] = [:]
        for (name, value) in headers {
            grouped[name.lowercased(), default: []].append(trimHeaderValue(value))
        }
        let names = grouped.keys.sorted()
        var creq = method + "\n" + canonicalPath(path) + "\n" + canonicalQuery(query) + "\n"
        for name in names {
            creq += name + ":" + grouped[name]!.joined(separator: ",") + "\n"
        }
        let signedHeaders = names.joined(separator: ";")
        creq += "\n" + signedHeaders + "\n" + payloadHash
        return (creq, signedHeaders)
    }

    public static func stringToSign(canonicalRequest: String, amzDate: String, scope: String) -> String {
        "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n" + sha256Hex(Array(canonicalRequest.utf8))
    }

    static func signingKey(secret: String, day: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return key
    }

    /// "/a b/ሴ" -> "/a%20b/%E1%88%B4": every byte outside the unreserved set encoded, "/" kept.
    public static func canonicalPath(_ path: String) -> String {
        if path.isEmpty { return "/" }
        return uriEncode(path, keepSlash: true)
    }

    /// Pairs encoded, then sorted by key and value (byte order of the encoded text).
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(query.count)
        for (key, value) in query {
            pairs.append((uriEncode(key, keepSlash: false), uriEncode(value, keepSlash: false)))
        }
        pairs.sort { (a: (String, String), b: (String, String)) -> Bool in
            a.0 == b.0 ? a.1 < b.1 : a.0 < b.0
        }
        var parts: [String] = []
        for (key, value) in pairs { parts.append(key + "=" + value) }
        return parts.joined(separator: "&")
    }

    /// RFC 3986 encoding with AWS's unreserved set (A-Z a-z 0-9 - _ . ~), uppercase hex.
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        let digits = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            if unreservedBytes[Int(byte)] || (keepSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Leading/trailing spaces removed, runs of spaces collapsed to one.
    static func trimHeaderValue(_ value: String) -> String {
        var out = ""
        var pendingSpace = false
        for ch in value {
            if ch == " " || ch == "\t" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(ch)
            }
        }
        return out
    }

    /// "20150830T123600Z"
    public static func amzDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2) + "Z"
    }
}

/// A-Z a-z 0-9 - _ . ~ : the bytes SigV4 leaves unencoded.
private let unreservedBytes: [Bool] = (0..<256).map { b in
    let c = UInt8(b)
    return (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
        || c == 0x2D || c == 0x5F || c == 0x2E || c == 0x7E
}

let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func sha256Hex(_ bytes: [UInt8]) -> String {
    hex(SHA256.hash(data: bytes))
}

func hex(_ digest: some ContiguousBytes) -> String { digest.withUnsafeBytes(Hex.string) }

