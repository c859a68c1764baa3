import Crypto
import Foundation
import JSON
import Synchronization

/// The hot path of JSON 1.0 calls (DynamoDB, Streams): a POST to one fixed endpoint path with
/// no query, signed with SigV4 on bytes. The canonical request, the string to sign and the curl
/// header lines are each built in one byte buffer; the signing key is cached per
/// day/region/service and the X-Amz-Date text per second. Gives the same signature as
/// `SigV4Signer.sign` for the same headers (a test compares them).
final class JSONRequestSigner: Sendable {
    let url: String
    let host: String
    let path: String
    let region: String
    let service: String
    private let hostBytes: [UInt8]
    private let pathBytes: [UInt8]
    private let keyCache = Mutex<SigningKeyCache>(SigningKeyCache())

    init(endpoint: String, region: String, service: String) {
        let parts = EndpointParts(endpoint)
        let fullPath = parts.basePath + "/"
        self.host = parts.authority
        self.path = fullPath
        self.url = parts.scheme + "://" + parts.authority + SigV4Signer.canonicalPath(fullPath)
        self.region = region
        self.service = service
        self.hostBytes = Array(parts.authority.utf8)
        self.pathBytes = Array(SigV4Signer.canonicalPath(fullPath).utf8)
    }

    /// The NUL-terminated curl header lines of a signed request: Content-Type, Host,
    /// X-Amz-Date, X-Amz-Security-Token (when the credentials carry one), X-Amz-Target,
    /// Authorization.
    func headerBlock(
        target: String, contentType: String, body: [UInt8], credentials: AWSCredentials, now: AmzDate
    ) -> [UInt8] {
        // Canonical request; header names sorted: content-type, host, x-amz-date,
        // [x-amz-security-token,] x-amz-target.
        var creq = [UInt8]()
        creq.reserveCapacity(400 + (credentials.sessionToken?.utf8.count ?? 0))
        creq.append(contentsOf: "POST\n".utf8)
        creq.append(contentsOf: pathBytes)
        creq.append(contentsOf: "\n\ncontent-type:".utf8)
        appendTrimmed(contentType, to: &creq)
        creq.append(contentsOf: "\nhost:".utf8)
        creq.append(contentsOf: hostBytes)
        creq.append(contentsOf: "\nx-amz-date:".utf8)
        creq.append(contentsOf: now.text)
        if let token = credentials.sessionToken {
            creq.append(contentsOf: "\nx-amz-security-token:".utf8)
            appendTrimmed(token, to: &creq)
        }
        creq.append(contentsOf: "\nx-amz-target:".utf8)
        appendTrimmed(target, to: &creq)
        let signedHeaders =
            credentials.sessionToken == nil
            ? "content-type;host;x-amz-date;x-amz-target"
            : "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        creq.append(contentsOf: "\n\n".utf8)
        creq.append(contentsOf: signedHeaders.utf8)
        creq.append(0x0A)
        let bodyHashStart = creq.count
        creq.append(contentsOf: repeatElement(0, count: 64))
        body.withUnsafeBytes { appendHex(SHA256.hash(data: $0), into: &creq, at: bodyHashStart) }

        // String to sign.
        var sts = [UInt8]()
        sts.reserveCapacity(200)
        sts.append(contentsOf: "AWS4-HMAC-SHA256\n".utf8)
        sts.append(contentsOf: now.text)
        sts.append(0x0A)
        let scopeStart = sts.count
        sts.append(contentsOf: now.text[0..<8])
        sts.append(0x2F)
        sts.append(contentsOf: region.utf8)
        sts.append(0x2F)
        sts.append(contentsOf: service.utf8)
        sts.append(contentsOf: "/aws4_request".utf8)
        let scopeEnd = sts.count
        sts.append(0x0A)
        let hashStart = sts.count
        sts.append(contentsOf: repeatElement(0, count: 64))
        creq.withUnsafeBytes { appendHex(SHA256.hash(data: $0), into: &sts, at: hashStart) }

        let key = signingKey(secret: credentials.secretAccessKey, day: now.day)
        let mac = sts.withUnsafeBytes { key.authenticationCode(for: $0) }

        // Header lines for curl.
        var block = [UInt8]()
        block.reserveCapacity(500 + (credentials.sessionToken?.utf8.count ?? 0))
        block.append(contentsOf: "Content-Type: ".utf8)
        block.append(contentsOf: contentType.utf8)
        block.append(0)
        block.append(contentsOf: "Host: ".utf8)
        block.append(contentsOf: hostBytes)
        block.append(0)
        block.append(contentsOf: "X-Amz-Date: ".utf8)
        block.append(contentsOf: now.text)
        block.append(0)
        if let token = credentials.sessionToken {
            block.append(contentsOf: "X-Amz-Security-Token: ".utf8)
            block.append(contentsOf: token.utf8)
            block.append(0)
        }
        block.append(contentsOf: "X-Amz-Target: ".utf8)
        block.append(contentsOf: target.utf8)
        block.append(0)
        block.append(contentsOf: "Authorization: AWS4-HMAC-SHA256 Credential=".utf8)
        block.append(contentsOf: credentials.accessKeyID.utf8)
        block.append(0x2F)
        block.append(contentsOf: sts[scopeStart..<scopeEnd])
        block.append(contentsOf: ", SignedHeaders=".utf8)
        block.append(contentsOf: signedHeaders.utf8)
        block.append(contentsOf: ", Signature=".utf8)
        let signatureStart = block.count
        block.append(contentsOf: repeatElement(0, count: 64))
        appendHex(mac, into: &block, at: signatureStart)
        block.append(0)
        return block
    }

    private func signingKey(secret: String, day: ArraySlice<UInt8>) -> CachedKey {
        if let key = keyCache.withLock({ $0.lookup(secret: secret, day: day) }) { return key }
        let key = SigV4Signer.signingKey(
            secret: secret, day: String(decoding: day, as: UTF8.self), region: region, service: service)
        let entry = CachedKey(key: key)
        let dayBytes = Array(day)
        keyCache.withLock { $0.store(secret: secret, day: dayBytes, key: entry) }
        return entry
    }
}

/// The last few signing keys (a key depends on the secret and the day; region and service
/// are fixed per signer). Unchecked: SymmetricKey is an immutable value that swift-crypto does
/// not mark Sendable.
struct SigningKeyCache: @unchecked Sendable {
    private var entries: [(secret: String, day: [UInt8], key: CachedKey)] = []

    func lookup(secret: String, day: ArraySlice<UInt8>) -> CachedKey? {
        for entry in entries where entry.day.elementsEqual(day) && entry.secret == secret { return entry.key }
        return nil
    }

    mutating func store(secret: String, day: [UInt8], key: CachedKey) {
        if entries.count >= 4 { entries.removeFirst() }
        entries.append((secret, day, key))
    }
}

/// A derived signing key as HMAC-SHA256 states with the padded key already absorbed
/// (RFC 2104), so a signature costs the message's hashing only. Never changed after it is
/// made; each use works on copies.
struct CachedKey: @unchecked Sendable {
    let inner: SHA256
    let outer: SHA256

    init(key: SymmetricKey) {
        // The derived key is a 32-byte HMAC output: shorter than the block, so it is padded.
        var block = [UInt8](repeating: 0, count: 64)
        key.withUnsafeBytes { bytes in
            for (i, byte) in bytes.enumerated() { block[i] = byte }
        }
        var inner = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(data: block.map { $0 ^ 0x5c })
        self.inner = inner
        self.outer = outer
    }

    func authenticationCode(for message: UnsafeRawBufferPointer) -> SHA256.Digest {
        var inner = self.inner
        inner.update(bufferPointer: message)
        let innerDigest = inner.finalize()
        var outer = self.outer
        innerDigest.withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }
}

/// "20150830T123600Z" as bytes, made once per second.
struct AmzDate: Sendable {
    let second: Int
    let text: [UInt8]
    var day: ArraySlice<UInt8> { text[0..<8] }

    init(second: Int) {
        self.second = second
        self.text = Array(SigV4Signer.amzDate(Date(timeIntervalSince1970: Double(second))).utf8)
    }

    private static let last = Mutex<AmzDate?>(nil)

    /// The current second's date, from a one-entry cache.
    static func now() -> AmzDate {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = Int(spec.tv_sec)
        if let cached = last.withLock({ $0 }), cached.second == second { return cached }
        let fresh = AmzDate(second: second)
        last.withLock { $0 = fresh }
        return fresh
    }
}

/// Writes the lowercase hex of `digest` over `out[at..<at + 2 * count]`.
private func appendHex(_ digest: some ContiguousBytes, into out: inout [UInt8], at: Int) {
    digest.withUnsafeBytes { raw in
        out.withUnsafeMutableBufferPointer { buffer in
            precondition(at >= 0 && at + 2 * raw.count <= buffer.count, "the hex must fit where it is written")
            Hex.write(raw, to: buffer.baseAddress! + at)
        }
    }
}

/// The value as SigV4 canonicalises it: outer spaces removed, inner runs of spaces as one.
private func appendTrimmed(_ value: String, to out: inout [UInt8]) {
    var pendingSpace = false
    var wrote = false
    for byte in value.utf8 {
        if byte == 0x20 || byte == 0x09 {
            pendingSpace = wrote
        } else {
            if pendingSpace { out.append(0x20) }
            pendingSpace = false
            wrote = true
            out.append(byte)
        }
    }
}
