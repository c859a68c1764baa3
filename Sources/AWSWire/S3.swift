import Dispatch
import Foundation
import Synchronization

/// One entry of an S3 listing.
public struct S3Object: Sendable, Hashable {
    public var key: String
    public var size: Int64
    public init(key: String, size: Int64) {
        self.key = key
        self.size = size
    }
}

extension AWSClient {
    /// Path-style (endpoint override, or a bucket with dots) or virtual-hosted addressing.
    func s3Call(method: String, bucket: String, key: String?, query: [(String, String)] = [], operation: String,
                headers: [(String, String)] = [], body: [UInt8] = []) -> Call {
        let keyPath = key.map { "/" + $0 } ?? ""
        if configuration.hasEndpointOverride(for: .s3) || bucket.contains(".") {
            return Call(service: .s3, operation: operation, method: method, path: "/" + bucket + keyPath,
                        query: query, headers: headers, body: body)
        }
        var call = Call(service: .s3, operation: operation, method: method, path: keyPath.isEmpty ? "/" : keyPath,
                        query: query, headers: headers, body: body)
        call.virtualHostBucket = bucket
        return call
    }

    /// S3 ListObjectsV2 over all pages, in key order.
    public func s3ListObjects(bucket: String, prefix: String) async throws -> [S3Object] {
        var objects: [S3Object] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try await send(s3Call(method: "GET", bucket: bucket, key: nil, query: query, operation: "ListObjectsV2"))
            let xml = String(decoding: response.body, as: UTF8.self)
            for block in XMLText.blocks(of: "Contents", in: xml) {
                guard let key = XMLText.firstValue(of: "Key", in: block) else { continue }
                let size = XMLText.firstValue(of: "Size", in: block).flatMap(Int64.init) ?? 0
                objects.append(S3Object(key: key, size: size))
            }
            let truncated = XMLText.firstValue(of: "IsTruncated", in: xml) == "true"
            token = truncated ? XMLText.firstValue(of: "NextContinuationToken", in: xml) : nil
            if truncated && token == nil {
                throw AWSError(kind: .malformedResponse, service: .s3, operation: "ListObjectsV2",
                               message: "truncated listing without NextContinuationToken")
            }
        } while token != nil
        objects.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        return objects
    }

    /// S3 PutObject (small objects; the body is sent in one request).
    public func s3PutObject(bucket: String, key: String, body: [UInt8]) async throws {
        _ = try await send(s3Call(method: "PUT", bucket: bucket, key: key, operation: "PutObject",
                                  headers: [("Content-Type", "application/octet-stream")], body: body))
    }

    /// S3 CreateBucket in the configured region.
    public func s3CreateBucket(_ bucket: String) async throws {
        var body: [UInt8] = []
        var headers: [(String, String)] = []
        if configuration.region != "us-east-1" {
            body = Array(("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>"
                + XMLText.escape(configuration.region) + "</LocationConstraint></CreateBucketConfiguration>").utf8)
            headers.append(("Content-Type", "application/xml"))
        }
        _ = try await send(s3Call(method: "PUT", bucket: bucket, key: nil, operation: "CreateBucket", headers: headers, body: body))
    }

    /// S3 GetObject, streamed: returns once the answer's headers are in, then hands out the
    /// body in chunks with at most a few MiB read ahead (the download waits for the reader).
    /// `offset` starts the object at that byte (a Range request). A download that breaks
    /// mid-object is resumed from the last byte received (see `S3ObjectStream`).
    public func s3GetObject(bucket: String, key: String, from offset: Int64 = 0) async throws -> S3ObjectStream {
        let part = try await s3OpenObject(bucket: bucket, key: key, from: offset, ifMatch: nil)
        return S3ObjectStream(client: self, bucket: bucket, key: key, offset: offset, first: part)
    }

    /// One GetObject request, answered with its headers and a buffer the body streams into.
    /// With `ifMatch` (a resume), only a 206 that starts at `offset` is accepted: anything
    /// else would splice another version of the object, or the wrong bytes, into the stream.
    func s3OpenObject(bucket: String, key: String, from offset: Int64, ifMatch: String?) async throws
        -> S3ObjectPart
    {
        var headers: [(String, String)] = []
        if offset > 0 { headers.append(("Range", "bytes=\(offset)-")) }
        if let ifMatch { headers.append(("If-Match", ifMatch)) }
        var call = s3Call(method: "GET", bucket: bucket, key: key, operation: "GetObject", headers: headers)
        call.timeout = 0
        let finalCall = call
        let part = try await withRetries(finalCall) { _ in
            let credentials = try await self.credentialsFor(finalCall)
            let request = self.prepare(finalCall, credentials: credentials, payloadHash: emptyPayloadHash, date: Date())
            let buffer = StreamBuffer(chunkSize: 256 * 1024, limit: 4 * 1024 * 1024)
            let head: StreamHead = await withCheckedContinuation { continuation in
                self.pool.submit { easy in
                    let sink = StreamSink(buffer: buffer, head: continuation)
                    let outcome = easy.perform(request, sink: sink)
                    sink.complete(outcome)
                }
            }
            switch head {
            case .streaming(let status, let headers):
                return S3ObjectPart(buffer: buffer, status: status, headers: headers)
            case .failed(let status, let headers, let body):
                throw ErrorDecoder.decode(status: status, headers: headers, body: body, service: .s3, operation: "GetObject")
            case .transport(let error):
                throw error.awsError(service: .s3, operation: "GetObject")
            }
        }
        if ifMatch != nil || offset > 0 {
            let range = part.headers["content-range"] ?? ""
            guard part.status == 206, range.hasPrefix("bytes \(offset)-") else {
                part.buffer.cancel()
                throw AWSError(
                    kind: .malformedResponse, service: .s3, operation: "GetObject",
                    message: "asked for the object from byte \(offset), got HTTP \(part.status) with Content-Range '\(range)'")
            }
        }
        return part
    }
}

/// One GetObject answer: its status and headers, and the buffer its body streams into.
struct S3ObjectPart: Sendable {
    var buffer: StreamBuffer
    var status: Int
    var headers: HTTPHeaders
}

/// The body of an S3 object as it arrives. Dropping the stream aborts the download.
///
/// A download that breaks mid-object (reset connection, stalled transfer) is resumed with a
/// Range request from the last byte handed out, `If-Match` the ETag of the first answer, so a
/// replaced object fails the read instead of being spliced. At most `maxResumes` breaks in a
/// row without a byte in between; an object without an ETag is not resumed.
public final class S3ObjectStream: Sendable {
    /// Breaks in a row (no byte received between them) after which the read fails.
    public static let maxResumes = 5
    /// Bytes still to come when the stream was opened (from Content-Length).
    public let contentLength: Int64?
    /// The object's ETag from the first answer, which every resume must match.
    public let etag: String?
    let client: AWSClient
    let bucket: String
    let key: String
    private let state: Mutex<State>

    private struct State {
        var buffer: StreamBuffer
        /// Offset of the next byte to hand out.
        var position: Int64
        var breaksInARow = 0
        var resumes = 0
        var cancelled = false
    }

    init(client: AWSClient, bucket: String, key: String, offset: Int64, first: S3ObjectPart) {
        self.client = client
        self.bucket = bucket
        self.key = key
        contentLength = first.headers["content-length"].flatMap(Int64.init)
        etag = first.headers["etag"]
        state = Mutex(State(buffer: first.buffer, position: offset))
    }

    /// How many times a broken download was resumed so far.
    public var resumes: Int { state.withLock { $0.resumes } }

    /// The next chunk, or nil at the end of the object. Throws when the download broke and
    /// could not be resumed, or the object changed since the stream was opened.
    public func next() async throws -> [UInt8]? {
        while true {
            let buffer = state.withLock { $0.buffer }
            let broken: AWSError
            do {
                guard let chunk = try await buffer.next() else { return nil }
                state.withLock {
                    $0.position += Int64(chunk.count)
                    $0.breaksInARow = 0
                }
                return chunk
            } catch let error as AWSError {
                broken = error
            }
            let (position, breaks, cancelled) = state.withLock { s -> (Int64, Int, Bool) in
                s.breaksInARow += 1
                return (s.position, s.breaksInARow, s.cancelled)
            }
            guard !cancelled else { return nil }
            guard let etag else {
                var error = broken
                error.message += " (download broken mid-object; the object has no ETag to resume against)"
                throw error
            }
            guard breaks <= Self.maxResumes else {
                var error = broken
                error.message += " (download broken mid-object at byte \(position); gave up after \(Self.maxResumes) resumes in a row)"
                throw error
            }
            let part: S3ObjectPart
            do {
                part = try await client.s3OpenObject(bucket: bucket, key: key, from: position, ifMatch: etag)
            } catch var error as AWSError {
                if error.httpStatus == 412 {
                    error.message = "the object changed while it was being read (its ETag no longer matches); read it again from the start"
                } else {
                    error.message += " (resuming at byte \(position))"
                }
                throw error
            }
            let replaced = state.withLock { s -> Bool in
                if s.cancelled { return false }
                s.buffer = part.buffer
                s.resumes += 1
                return true
            }
            if !replaced {
                part.buffer.cancel()
                return nil
            }
        }
    }

    /// Stops the download early.
    public func cancel() {
        let buffer = state.withLock { s -> StreamBuffer in
            s.cancelled = true
            return s.buffer
        }
        buffer.cancel()
    }

    deinit { cancel() }
}

enum StreamHead: Sendable {
    case streaming(status: Int, HTTPHeaders)
    case failed(status: Int, headers: HTTPHeaders, body: [UInt8])
    case transport(TransportError)
}

/// Hand-over between the curl thread (producer, which blocks when the buffer is full)
/// and the async reader.
final class StreamBuffer: Sendable {
    private struct State {
        var chunks: [[UInt8]] = []
        var head = 0
        var bufferedBytes = 0
        var finished = false
        var failure: AWSError?
        var cancelled = false
        var producerWaiting = false
        var reader: CheckedContinuation<[UInt8]?, Error>?
    }

    private let state = Mutex(State())
    private let space = DispatchSemaphore(value: 0)
    let chunkSize: Int
    let limit: Int

    init(chunkSize: Int, limit: Int) {
        self.chunkSize = chunkSize
        self.limit = limit
    }

    /// Bytes the buffer holds on to, chunks handed out included (what it costs in memory).
    var retainedBytes: Int { state.withLock { s in s.chunks.reduce(0) { $0 + $1.count } } }

    /// Producer: hands over one chunk; blocks while the buffer is full. False once cancelled.
    func push(_ chunk: [UInt8]) -> Bool {
        enum Action { case cancelled, delivered(CheckedContinuation<[UInt8]?, Error>), queued(wait: Bool) }
        let action = state.withLock { s -> Action in
            if s.cancelled { return .cancelled }
            if let reader = s.reader {
                s.reader = nil
                return .delivered(reader)
            }
            s.chunks.append(chunk)
            s.bufferedBytes += chunk.count
            if s.bufferedBytes >= limit {
                s.producerWaiting = true
                return .queued(wait: true)
            }
            return .queued(wait: false)
        }
        switch action {
        case .cancelled:
            return false
        case .delivered(let reader):
            reader.resume(returning: chunk)
            return true
        case .queued(let wait):
            if wait { space.wait() }
            return !state.withLock { $0.cancelled }
        }
    }

    /// Producer: no more chunks (`failure` when the download broke).
    func finish(failure: AWSError?) {
        let reader = state.withLock { s -> CheckedContinuation<[UInt8]?, Error>? in
            s.finished = true
            s.failure = failure
            defer { s.reader = nil }
            return s.reader
        }
        if let reader {
            if let failure { reader.resume(throwing: failure) } else { reader.resume(returning: nil) }
        }
    }

    func cancel() {
        let wake = state.withLock { s -> Bool in
            s.cancelled = true
            s.chunks.removeAll()
            s.bufferedBytes = 0
            defer { s.producerWaiting = false }
            return s.producerWaiting
        }
        if wake { space.signal() }
    }

    func next() async throws -> [UInt8]? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8]?, Error>) in
            enum Outcome { case chunk([UInt8], wake: Bool), end, fail(AWSError), wait }
            let outcome = state.withLock { s -> Outcome in
                if s.head < s.chunks.count {
                    let chunk = s.chunks[s.head]
                    // Let go of the chunk at once: while the download stays ahead of the reader
                    // `head` never catches up with the end, and kept slots would hold every
                    // chunk of the object.
                    s.chunks[s.head] = []
                    s.head += 1
                    if s.head == s.chunks.count {
                        s.chunks.removeAll(keepingCapacity: true)
                        s.head = 0
                    } else if s.head >= 64 && s.head * 2 >= s.chunks.count {
                        s.chunks.removeFirst(s.head)
                        s.head = 0
                    }
                    s.bufferedBytes -= chunk.count
                    var wake = false
                    if s.producerWaiting && s.bufferedBytes < limit {
                        s.producerWaiting = false
                        wake = true
                    }
                    return .chunk(chunk, wake: wake)
                }
                if s.finished {
                    if let failure = s.failure { return .fail(failure) }
                    return .end
                }
                if s.cancelled { return .end }
                s.reader = continuation
                return .wait
            }
            switch outcome {
            case .chunk(let chunk, let wake):
                if wake { space.signal() }
                continuation.resume(returning: chunk)
            case .end:
                continuation.resume(returning: nil)
            case .fail(let error):
                continuation.resume(throwing: error)
            case .wait:
                break
            }
        }
    }
}

/// Curl-thread side of a streamed download: reports the head once, then feeds the buffer.
final class StreamSink: ResponseSink {
    let buffer: StreamBuffer
    private var headContinuation: CheckedContinuation<StreamHead, Never>?
    private var streaming = false
    private var pending: [UInt8] = []
    private var errorBody: [UInt8] = []

    init(buffer: StreamBuffer, head: CheckedContinuation<StreamHead, Never>) {
        self.buffer = buffer
        self.headContinuation = head
    }

    override func headersComplete() -> Bool {
        if status >= 100 && status < 200 { return true }
        if (200..<300).contains(status), let head = headContinuation {
            headContinuation = nil
            streaming = true
            head.resume(returning: .streaming(status: status, headers))
        }
        return true
    }

    override func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard streaming else {
            if errorBody.count < 65536 { errorBody.append(contentsOf: bytes) }
            return true
        }
        pending.append(contentsOf: bytes)
        if pending.count >= buffer.chunkSize {
            let chunk = pending
            pending.removeAll(keepingCapacity: true)
            return buffer.push(chunk)
        }
        return true
    }

    func complete(_ outcome: Result<Int, TransportError>) {
        switch outcome {
        case .success(let finalStatus):
            if let head = headContinuation {
                headContinuation = nil
                head.resume(returning: .failed(status: finalStatus, headers: headers, body: errorBody))
                return
            }
            if !pending.isEmpty {
                let chunk = pending
                pending.removeAll()
                if !buffer.push(chunk) { return }
            }
            buffer.finish(failure: nil)
        case .failure(let error):
            if let head = headContinuation {
                headContinuation = nil
                head.resume(returning: .transport(error))
                return
            }
            // What arrived before the break is handed out first, so the reader's count of
            // bytes is exactly where a resume starts.
            if !pending.isEmpty {
                let chunk = pending
                pending.removeAll()
                if !buffer.push(chunk) { return }
            }
            buffer.finish(failure: error.awsError(service: .s3, operation: "GetObject"))
        }
    }
}
