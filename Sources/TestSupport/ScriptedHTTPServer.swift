import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A request the scripted server received.
public struct RecordedRequest: Sendable {
    public var method: String
    /// Request target as sent: path and query, e.g. "/bucket?list-type=2".
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public var path: String { String(target.split(separator: "?", maxSplits: 1).first ?? "") }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// First header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame })?.value
    }
}

/// What the scripted server answers to one request.
public struct ScriptedResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Seconds to wait before answering (to provoke client timeouts).
    public var delay: TimeInterval
    /// Close the connection without answering (a transport failure for the client).
    public var dropConnection: Bool
    /// Send the headers (Content-Length of the whole body) and only this many body bytes, then
    /// close the connection: a download broken mid-body.
    public var cutAfter: Int?

    public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = [], delay: TimeInterval = 0,
                dropConnection: Bool = false, cutAfter: Int? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.dropConnection = dropConnection
        self.cutAfter = cutAfter
    }

    public static func text(_ status: Int = 200, _ text: String, contentType: String = "text/plain") -> ScriptedResponse {
        ScriptedResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    /// A JSON body with the content type AWS JSON services use.
    public static func json(_ status: Int = 200, _ text: String) -> ScriptedResponse {
        .text(status, text, contentType: "application/x-amz-json-1.0")
    }

    /// An AWS JSON-protocol error, e.g. `.awsJSONError(400, "ThrottlingException", "Rate exceeded")`.
    public static func awsJSONError(_ status: Int, _ code: String, _ message: String) -> ScriptedResponse {
        .json(status, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#\(code)\",\"message\":\"\(message)\"}")
    }

    public static func xml(_ status: Int = 200, _ text: String) -> ScriptedResponse {
        .text(status, text, contentType: "application/xml")
    }

    public static let drop = ScriptedResponse(status: 0, dropConnection: true)
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for tests: answers each request from a script (a
/// list of responses in order, the last one repeated) or a handler closure, and records
/// every request. Keeps connections alive like a real service. Stopped by `stop()` or
/// when released.
public final class ScriptedHTTPServer: Sendable {
    public typealias Handler = @Sendable (_ request: RecordedRequest, _ index: Int) -> ScriptedResponse

    public let port: Int
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    private let listener: Int32
    private let handler: Handler
    private let state = Mutex(State())

    private struct State {
        var requests: [RecordedRequest] = []
        var connections: Set<Int32> = []
        var stopped = false
    }

    /// Answers with `responses` in order; after the last, repeats the last.
    public convenience init(responses: [ScriptedResponse]) throws {
        precondition(!responses.isEmpty, "a script needs at least one response")
        try self.init { _, index in responses[min(index, responses.count - 1)] }
    }

    /// Answers each request with `handler(request, index)`; index counts from 0.
    public init(handler: @escaping Handler) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0 && listen(fd, 64) == 0
            }
        }
        guard ok else {
            close(fd)
            throw TestSupportError("cannot listen on 127.0.0.1")
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [self] in self.acceptLoop() }
        thread.name = "scripted-http-accept"
        thread.start()
    }

    deinit { stop() }

    /// Requests received so far, in arrival order.
    public var requests: [RecordedRequest] { state.withLock { $0.requests } }
    public var requestCount: Int { state.withLock { $0.requests.count } }

    public func stop() {
        // Once only: a second close of the listener's descriptor number would close whatever
        // socket has been given that number since (another test's server, a client).
        let connections = state.withLock { s -> Set<Int32>? in
            if s.stopped { return nil }
            s.stopped = true
            return s.connections
        }
        guard let connections else { return }
        // Wakes the accept loop, which closes the listener itself: closed here, its number
        // could be reused before the loop's next accept() and that accept would take another's.
        shutdown(listener, Int32(SHUT_RDWR))
        for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            let accepted = state.withLock { s -> Bool in
                if s.stopped { return false }
                s.connections.insert(fd)
                return true
            }
            guard accepted else {
                close(fd)
                close(listener)
                return
            }
            let thread = Thread { [self] in
                self.serve(fd)
                self.state.withLock { _ = $0.connections.remove(fd) }
                close(fd)
            }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        while true {
            var headerEnd: Int?
            while headerEnd == nil {
                if let i = find(separator, in: buffer) { headerEnd = i; break }
                if !fill() { return }
            }
            let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
            buffer.removeFirst(headerEnd! + 4)
            let lines = head.components(separatedBy: "\r\n")
            let requestLine = lines[0].split(separator: " ")
            guard requestLine.count >= 2 else { return }
            var headers: [(name: String, value: String)] = []
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            let length = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap { Int($0.value) } ?? 0
            while buffer.count < length { if !fill() { return } }
            let body = Array(buffer[0..<length])
            buffer.removeFirst(length)
            let request = RecordedRequest(method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, body: body)
            let index = state.withLock { s -> Int in
                s.requests.append(request)
                return s.requests.count - 1
            }
            let response = handler(request, index)
            if response.delay > 0 { usleep(useconds_t(response.delay * 1_000_000)) }
            if response.dropConnection { return }
            var text = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
            var hasLength = false
            for (name, value) in response.headers {
                if name.lowercased() == "content-length" { hasLength = true }
                text += "\(name): \(value)\r\n"
            }
            if !hasLength { text += "Content-Length: \(response.body.count)\r\n" }
            text += "\r\n"
            var bytes = Array(text.utf8)
            if request.method != "HEAD" { bytes += response.body.prefix(response.cutAfter ?? response.body.count) }
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                sent += n
            }
            if response.cutAfter != nil { return }
            if request.header("Connection")?.lowercased() == "close" { return }
        }
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }

    private func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 412: return "Precondition Failed"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}
