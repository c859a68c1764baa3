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
    /// body in chunks with at most a few MiB buffered (the download waits for the reader).
    /// `offset` starts the object at that byte (a Range request), for resuming.
    public func s3GetObject(bucket: String, key: String, from offset: Int64 = 0) async throws -> S3ObjectStream {
        var headers: [(String, String)] = []
        if offset > 0 { headers.append(("Range", "bytes=\(offset)-")) }
        var call = s3Call(method: "GET", bucket: bucket, key: key, operation: "GetObject", headers: headers)
        call.timeout = 0
        let finalCall = call
        return try await withRetries(finalCall) { _ in
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
            case .streaming(let headers):
                let length = headers["content-length"].flatMap(Int64.init)
                return S3ObjectStream(buffer: buffer, contentLength: length, service: .s3)
            case .failed(let status, let headers, let body):
                throw ErrorDecoder.decode(status: status, headers: headers, body: body, service: .s3, operation: "GetObject")
            case .transport(let error):
                throw error.awsError(service: .s3, operation: "GetObject")
            }
        }
    }
}

/// The body of an S3 object as it arrives. Dropping the stream aborts the download.
public final class S3ObjectStream: Sendable {
    /// Bytes still to come when the stream was opened (from Content-Length).
    public let contentLength: Int64?
    let buffer: StreamBuffer
    let service: AWSService

    init(buffer: StreamBuffer, contentLength: Int64?, service: AWSService) {
        self.buffer = buffer
        self.contentLength = contentLength
        self.service = service
    }

    /// The next chunk, or nil at the end of the object. A broken download throws.
    public func next() async throws -> [UInt8]? {
        try await buffer.next()
    }

    /// Stops the download early.
    public func cancel() { buffer.cancel() }

    deinit { buffer.cancel() }
}

enum StreamHead: Sendable {
    case streaming(HTTPHeaders)
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
                    s.head += 1
                    if s.head == s.chunks.count {
                        s.chunks.removeAll(keepingCapacity: true)
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
            head.resume(returning: .streaming(headers))
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
            var failure = error.awsError(service: .s3, operation: "GetObject")
            failure.message += " (download broken mid-object; resume with from: offset)"
            buffer.finish(failure: failure)
        }
    }
}
