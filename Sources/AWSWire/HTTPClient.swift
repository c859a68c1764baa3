import CCurl
import CCurlShim
import Dispatch
import Foundation
import Synchronization
import ThreadNames

/// Response headers with case-insensitive lookup (names stored lowercased).
public struct HTTPHeaders: Sendable {
    public private(set) var fields: [(name: String, value: String)] = []
    public init() {}
    public init(_ pairs: [(String, String)]) { for (n, v) in pairs { add(n, v) } }

    /// Parses raw "Name: value" lines (CRLF or LF); lines without a colon are skipped.
    init(raw: [UInt8]) {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
        var start = 0
        while start < raw.count {
            var end = start
            while end < raw.count && raw[end] != 0x0A { end += 1 }
            if let colon = raw[start..<end].firstIndex(of: 0x3A) {
                var nameEnd = colon
                var nameStart = start
                while nameStart < nameEnd && isSpace(raw[nameStart]) { nameStart += 1 }
                while nameEnd > nameStart && isSpace(raw[nameEnd - 1]) { nameEnd -= 1 }
                var valueStart = colon + 1
                var valueEnd = end
                while valueStart < valueEnd && isSpace(raw[valueStart]) { valueStart += 1 }
                while valueEnd > valueStart && isSpace(raw[valueEnd - 1]) { valueEnd -= 1 }
                add(
                    String(decoding: raw[nameStart..<nameEnd], as: UTF8.self),
                    String(decoding: raw[valueStart..<valueEnd], as: UTF8.self))
            }
            start = end + 1
        }
    }
    mutating func add(_ name: String, _ value: String) { fields.append((name.lowercased(), value)) }
    mutating func removeAll() { fields.removeAll() }
    public subscript(_ name: String) -> String? {
        let lower = name.lowercased()
        return fields.first(where: { $0.name == lower })?.value
    }
}

/// One HTTP request as curl sends it: the URL is final (already encoded), headers are sent
/// exactly as given.
struct HTTPRequest: Sendable {
    var method: String
    var url: String
    var headers: [(String, String)]
    var body: [UInt8]
    var connectTimeout: Double
    /// Whole-request limit in seconds; 0 means none (streamed downloads use a low-speed limit).
    var timeout: Double
    /// When not empty, replaces `headers`: complete "Name: value" lines, each NUL-terminated
    /// (the signed hot path builds them in one buffer, so curl gets them without copies).
    var headerBlock: [UInt8] = []
}

struct HTTPResponse: Sendable {
    var status: Int
    /// The final block's header lines as received; `headers` parses them on demand.
    var rawHeaders: [UInt8]
    var body: [UInt8]
    var headers: HTTPHeaders { HTTPHeaders(raw: rawHeaders) }
}

/// A failure below HTTP: curl's code and text, with the endpoint it was talking to.
struct TransportError: Error, Sendable {
    var curlCode: Int
    var message: String
    var endpoint: String
    var isTimeout: Bool { curlCode == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }
    var isRetryable: Bool {
        switch CURLcode(rawValue: UInt32(curlCode)) {
        case CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
            CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_SSL_CONNECT_ERROR, CURLE_COULDNT_RESOLVE_HOST,
            CURLE_HTTP2, CURLE_HTTP2_STREAM:
            return true
        default:
            return false
        }
    }

    var summary: String {
        switch CURLcode(rawValue: UInt32(curlCode)) {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return "cannot connect to \(endpoint): \(message)"
        case CURLE_OPERATION_TIMEDOUT:
            return "request to \(endpoint) timed out: \(message)"
        default:
            return "request to \(endpoint) failed: \(message)"
        }
    }

    func awsError(service: AWSService?, operation: String?) -> AWSError {
        var error = AWSError(
            kind: .transport, service: service, operation: operation, message: summary,
            isRetryable: isRetryable)
        error.isTimeout = isTimeout
        return error
    }
}

/// "https://host:port" part of a URL, for messages (never the path or query).
func endpointOf(_ url: String) -> String {
    guard let schemeEnd = url.range(of: "://") else { return url }
    let rest = url[schemeEnd.upperBound...]
    let hostEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
    return String(url[..<hostEnd])
}

/// Runs curl transfers on a small set of dedicated threads (never on Swift's cooperative
/// pool, since curl_easy_perform blocks). Each thread owns one easy handle for its whole
/// life, so connections are reused. Threads are added on demand up to `maxThreads`.
final class CurlThreadPool: Sendable {
    static let shared = CurlThreadPool(maxThreads: 64)

    typealias Job = @Sendable (CurlEasy) -> Void

    private struct State {
        var jobs: [Job] = []
        var head = 0
        var idle = 0
        var threads = 0
    }

    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)
    let maxThreads: Int

    init(maxThreads: Int) {
        CurlGlobal.initialize()
        self.maxThreads = maxThreads
    }

    func submit(_ job: @escaping Job) {
        let spawn = state.withLock { s -> Bool in
            s.jobs.append(job)
            if s.jobs.count - s.head > s.idle && s.threads < maxThreads {
                s.threads += 1
                return true
            }
            return false
        }
        if spawn {
            let thread = Thread { [self] in
                nameCurrentThread("hs-curl")
                self.workerLoop()
            }
            thread.start()
        }
        available.signal()
    }

    private func workerLoop() {
        let easy = CurlEasy()
        while true {
            state.withLock { $0.idle += 1 }
            available.wait()
            let job = state.withLock { s -> Job? in
                s.idle -= 1
                guard s.head < s.jobs.count else { return nil }
                let job = s.jobs[s.head]
                s.head += 1
                if s.head > 64 && s.head * 2 > s.jobs.count {
                    s.jobs.removeFirst(s.head)
                    s.head = 0
                }
                return job
            }
            job?(easy)
        }
    }

    /// Performs a buffered request off the cooperative pool (on the curl multi loop).
    func perform(_ request: HTTPRequest) async -> Result<HTTPResponse, TransportError> {
        await CurlMultiLoop.shared.perform(request)
    }
}

enum CurlGlobal {
    private static let once: Void = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }()
    static func initialize() { _ = once }
}

/// Receives what curl reads: header lines and body bytes. Header lines are kept as raw bytes
/// and parsed only when someone asks (`headers`): the hot path needs just the status.
class ResponseSink {
    /// Header lines of the current response block (after its status line), CRLF-terminated.
    var rawHeaders: [UInt8] = []
    /// Status of the response whose headers are being read (from the status line).
    var status = 0
    /// The current block's headers, parsed now.
    var headers: HTTPHeaders { HTTPHeaders(raw: rawHeaders) }

    func headerLine(_ line: UnsafeRawBufferPointer) -> Bool {
        if line.count >= 5 && line[0] == 0x48 && line[1] == 0x54 && line[2] == 0x54 && line[3] == 0x50
            && line[4] == 0x2F
        {
            // "HTTP/1.1 200 OK": a new block (1xx interim answers come before the final one).
            rawHeaders.removeAll(keepingCapacity: true)
            var i = 5
            while i < line.count && line[i] != 0x20 { i += 1 }
            while i < line.count && line[i] == 0x20 { i += 1 }
            var code = 0
            var digits = 0
            while i < line.count, line[i] >= 0x30, line[i] <= 0x39, digits < 3 {
                code = code * 10 + Int(line[i] &- 0x30)
                i += 1
                digits += 1
            }
            status = code
            return true
        }
        if line.contains(where: { $0 != 0x0D && $0 != 0x0A && $0 != 0x20 && $0 != 0x09 }) {
            rawHeaders.append(contentsOf: line)
            return true
        }
        return headersComplete()
    }
    /// End of a header block; return false to abort the transfer.
    func headersComplete() -> Bool { true }
    /// Body bytes; return false to abort the transfer.
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool { true }
}

final class BufferSink: ResponseSink {
    var body: [UInt8] = []
    override func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        body.append(contentsOf: bytes)
        return true
    }
}

private func curlWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    return sink.body(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
}

private func curlHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let data else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    return sink.headerLine(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
}

/// One curl easy handle, used by one thread at a time (a pool thread for its whole life, or
/// the multi loop). `prepare` copies the body and header lines into buffers the handle owns
/// and reuses, so they stay valid however the transfer is driven; `finish` reads the outcome.
/// Skipping curl_easy_reset between plain POSTs keeps the settings that never change.
final class CurlEasy {
    let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    /// Our own curl_slist nodes for the header lines (curl only reads the list).
    private let nodes: UnsafeMutablePointer<curl_slist>
    private static let nodeCapacity = 32
    private let expectLine: UnsafeMutablePointer<CChar>
    private var body: UnsafeMutableRawPointer
    private var bodyCapacity = 0
    private var lines: UnsafeMutableRawPointer
    private var linesCapacity = 0
    /// The previous request was a plain POST with a timeout: every option a next such request
    /// needs is set again anyway, so curl_easy_reset can be skipped.
    private var lastWasPlainPost = false
    private var endpoint = ""

    init() {
        CurlGlobal.initialize()
        guard let h = curl_easy_init() else { fatalError("curl_easy_init failed") }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        nodes = .allocate(capacity: CurlEasy.nodeCapacity)
        nodes.initialize(repeating: curl_slist(data: nil, next: nil), count: CurlEasy.nodeCapacity)
        expectLine = strdup("Expect:")
        body = .allocate(byteCount: 1, alignment: 16)
        lines = .allocate(byteCount: 1, alignment: 16)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
        nodes.deallocate()
        free(expectLine)
        body.deallocate()
        lines.deallocate()
    }

    private static func ensure(_ buffer: inout UnsafeMutableRawPointer, _ capacity: inout Int, _ count: Int) {
        if count <= capacity { return }
        buffer.deallocate()
        capacity = max(count, capacity * 2)
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    /// Copies the header lines (the request's block, or its pairs rendered) and links `nodes`
    /// to them, then "Expect:"; nil when there are more lines than nodes.
    private func linkHeaders(_ request: HTTPRequest) -> UnsafeMutablePointer<curl_slist>? {
        var block = request.headerBlock
        if block.isEmpty {
            for (name, value) in request.headers {
                block.append(contentsOf: name.utf8)
                block.append(contentsOf: ": ".utf8)
                block.append(contentsOf: value.utf8)
                block.append(0)
            }
        }
        CurlEasy.ensure(&lines, &linesCapacity, block.count)
        block.withUnsafeBytes { lines.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var count = 0
        var start = 0
        for i in 0..<block.count where block[i] == 0 {
            guard count < CurlEasy.nodeCapacity - 1 else { return nil }
            nodes[count].data = (lines + start).assumingMemoryBound(to: CChar.self)
            nodes[count].next = nodes + count + 1
            count += 1
            start = i + 1
        }
        nodes[count].data = expectLine
        nodes[count].next = nil
        return nodes
    }

    /// Sets the handle up for one request; false (with a reason) when it cannot be sent.
    func prepare(_ request: HTTPRequest, sink: ResponseSink) -> TransportError? {
        let plainPost = request.method == "POST" && request.timeout > 0
        if !(plainPost && lastWasPlainPost) {
            curl_easy_reset(handle)
            hs_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            hs_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errorBuffer)
            hs_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        }
        lastWasPlainPost = plainPost
        endpoint = request.url
        errorBuffer[0] = 0
        hs_setopt_str(handle, CURLOPT_URL, request.url)
        hs_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(request.connectTimeout * 1000)))
        if request.timeout > 0 {
            hs_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(request.timeout * 1000))
        } else {
            // Streamed downloads: no total limit, but give up on a stalled connection.
            hs_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
            hs_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, 120)
        }
        guard let headers = linkHeaders(request) else {
            lastWasPlainPost = false
            return TransportError(
                curlCode: Int(CURLE_BAD_FUNCTION_ARGUMENT.rawValue), message: "too many request headers",
                endpoint: endpointOf(request.url))
        }
        hs_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)

        let context = Unmanaged.passUnretained(sink).toOpaque()
        hs_setopt_writefn(handle, curlWrite, context)
        hs_setopt_headerfn(handle, curlHeader, context)

        switch request.method {
        case "GET":
            hs_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case "HEAD":
            hs_setopt_long(handle, CURLOPT_NOBODY, 1)
        default:
            if request.method != "POST" {
                hs_setopt_str(handle, CURLOPT_CUSTOMREQUEST, request.method)
            }
            CurlEasy.ensure(&body, &bodyCapacity, request.body.count)
            request.body.withUnsafeBytes { bytes in
                if let base = bytes.baseAddress { body.copyMemory(from: base, byteCount: bytes.count) }
            }
            hs_setopt_ptr(handle, CURLOPT_POSTFIELDS, body)
            hs_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
        }
        return nil
    }

    /// The outcome of the transfer `prepare` set up, once curl reports `code` for it.
    func finish(_ code: CURLcode) -> Result<Int, TransportError> {
        if code != CURLE_OK {
            lastWasPlainPost = false
            var message = String(cString: errorBuffer)
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
                message = String(cString: curl_easy_strerror(code))
            default:
                if message.isEmpty { message = String(cString: curl_easy_strerror(code)) }
            }
            return .failure(TransportError(curlCode: Int(code.rawValue), message: message, endpoint: endpointOf(endpoint)))
        }
        var status = 0
        hs_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(status)
    }

    /// Runs one request to the end on the calling thread.
    func perform(_ request: HTTPRequest, sink: ResponseSink) -> Result<Int, TransportError> {
        if let error = prepare(request, sink: sink) { return .failure(error) }
        let code = withExtendedLifetime(sink) { curl_easy_perform(handle) }
        return finish(code)
    }
}
