import CCurl
import CCurlShim
import Foundation
import Synchronization

/// Runs buffered requests (every signed call except streamed S3 downloads) on one thread
/// driving a curl multi handle: many transfers in flight, one poll for all their sockets, so
/// a busy loader costs one thread hop per request instead of a blocked thread each.
/// Connections are kept in the multi handle's cache and reused by any easy handle.
final class CurlMultiLoop: Sendable {
    static let shared = CurlMultiLoop()

    typealias Completion = @Sendable (Result<HTTPResponse, TransportError>) -> Void

    private struct Submitted: Sendable {
        var request: HTTPRequest
        var completion: Completion
    }

    private let queue = Mutex<[Submitted]>([])
    /// The loop is in (or about to enter) its poll: a submitter must wake it. While it is busy
    /// it looks at the queue again before sleeping, so no wakeup is spent then.
    private let sleeping = Atomic<Bool>(false)
    /// Polled beside curl's sockets; a write wakes the loop (an eventfd costs less than
    /// curl_multi_wakeup's socket pair, which was ~3% of a load's CPU).
    private let wakeFD: Int32
    nonisolated(unsafe) private let multi: UnsafeMutableRawPointer

    private init() {
        CurlGlobal.initialize()
        guard let m = curl_multi_init() else { fatalError("curl_multi_init failed") }
        multi = m
        wakeFD = hs_eventfd_create()
        if wakeFD < 0 { fatalError("eventfd failed") }
        // Keep idle connections for reuse even when few transfers are in flight (curl's
        // default cache follows the number of handles added, which drops to zero between
        // bursts and would close connections).
        hs_multi_setopt_long(m, CURLMOPT_MAXCONNECTS, 64)
        // Named from inside, through /proc (Foundation's `Thread.name` does not reach the OS
        // thread on Linux), in at most 15 bytes, so top, perf and /proc/PID/task show it.
        let thread = Thread { [self] in
            try? "hs-curl-multi".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            self.run()
        }
        thread.start()
    }

    /// Performs a buffered request on the loop thread.
    func perform(_ request: HTTPRequest) async -> Result<HTTPResponse, TransportError> {
        await withCheckedContinuation { continuation in
            submit(request) { continuation.resume(returning: $0) }
        }
    }

    func submit(_ request: HTTPRequest, completion: @escaping Completion) {
        queue.withLock { $0.append(Submitted(request: request, completion: completion)) }
        if sleeping.load(ordering: .sequentiallyConsistent) { hs_eventfd_signal(wakeFD) }
    }

    /// One transfer in flight; touched only by the loop thread.
    private final class Transfer {
        let easy: CurlEasy
        let sink = BufferSink()
        let completion: Completion
        init(easy: CurlEasy, completion: @escaping Completion) {
            self.easy = easy
            self.completion = completion
        }
    }

    /// The loop, on the curl_multi_socket_action API: one poll over the eventfd and the
    /// sockets curl named, then curl is told which socket is ready (or that its timer is due)
    /// and does the work of that transfer only. (curl_multi_perform looked at every transfer
    /// on every wakeup, a poll(2) of its socket each: ~30 polls a request with 16 hem-index
    /// lookups in flight; about 6 now.)
    private func run() {
        var idle: [CurlEasy] = []
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        var incoming: [Submitted] = []
        let watch = CurlWatch()
        let context = Unmanaged.passUnretained(watch).toOpaque()
        hs_multi_setopt_socketfn(multi, curlSocket, context)
        hs_multi_setopt_timerfn(multi, curlTimer, context)
        var fds: [pollfd] = []
        var running: Int32 = 0

        /// Hands each finished transfer back to its submitter.
        func complete() {
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(multi, handle)
                guard let transfer = active.removeValue(forKey: handle) else { continue }
                let outcome = transfer.easy.finish(code)
                idle.append(transfer.easy)
                switch outcome {
                case .success(let status):
                    transfer.completion(
                        .success(
                            HTTPResponse(status: status, rawHeaders: transfer.sink.rawHeaders, body: transfer.sink.body)
                        ))
                case .failure(let error):
                    transfer.completion(.failure(error))
                }
            }
        }

        while true {
            queue.withLock { swap(&$0, &incoming) }
            for item in incoming {
                let easy = idle.popLast() ?? CurlEasy()
                let transfer = Transfer(easy: easy, completion: item.completion)
                if let error = easy.prepare(item.request, sink: transfer.sink) {
                    idle.append(easy)
                    item.completion(.failure(error))
                    continue
                }
                // Adding a handle sets curl's timer to "now": the timeout action below starts it.
                let added = curl_multi_add_handle(multi, easy.handle)
                guard added == CURLM_OK else {
                    idle.append(easy)
                    let text = String(cString: curl_multi_strerror(added))
                    item.completion(
                        .failure(
                            TransportError(
                                curlCode: Int(CURLE_FAILED_INIT.rawValue), message: "curl_multi_add_handle: \(text)",
                                endpoint: endpointOf(item.request.url))))
                    continue
                }
                active[easy.handle] = transfer
            }
            incoming.removeAll(keepingCapacity: true)

            if let due = watch.deadline, due <= .now {
                watch.deadline = nil
                curl_multi_socket_action(multi, hs_socket_timeout, 0, &running)
                complete()
            }

            // Announce the sleep, then look at the queue once more: a submitter either saw the
            // flag (and signals the eventfd) or queued before this look.
            sleeping.store(true, ordering: .sequentiallyConsistent)
            if queue.withLock({ !$0.isEmpty }) {
                sleeping.store(false, ordering: .sequentiallyConsistent)
                continue
            }
            var timeout: Int32 = 1000
            if let due = watch.deadline {
                let (s, atto) = (due - .now).components
                timeout =
                    s < 0
                    ? 0 : Int32(clamping: min(1000, s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000))
            }
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            for (fd, events) in watch.sockets { fds.append(pollfd(fd: fd, events: events, revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            sleeping.store(false, ordering: .sequentiallyConsistent)
            guard ready > 0 else { continue }  // the timer (or EINTR): handled at the top
            if fds[0].revents != 0 { hs_eventfd_drain(wakeFD) }
            for i in 1..<fds.count where fds[i].revents != 0 {
                let r = Int32(fds[i].revents)
                var mask: Int32 = 0
                if r & Int32(POLLIN | POLLHUP) != 0 { mask |= CURL_CSELECT_IN }
                if r & Int32(POLLOUT) != 0 { mask |= CURL_CSELECT_OUT }
                if r & Int32(POLLERR | POLLNVAL) != 0 { mask |= CURL_CSELECT_ERR }
                curl_multi_socket_action(multi, fds[i].fd, mask, &running)
            }
            complete()
        }
    }
}

/// What curl asked the loop to watch (its socket callback) and when to time out (its timer
/// callback). Touched only by the loop thread: curl calls both from inside
/// curl_multi_socket_action and curl_multi_add_handle, which only the loop calls.
private final class CurlWatch {
    /// Socket → poll(2) events wanted.
    var sockets: [Int32: Int16] = [:]
    /// When curl wants `curl_multi_socket_action(TIMEOUT)`; nil: no timer.
    var deadline: ContinuousClock.Instant?
}

/// curl's socket callback: what to watch on `socket`, or to stop watching it.
private func curlSocket(
    _ easy: UnsafeMutableRawPointer?, _ socket: curl_socket_t, _ what: Int32, _ userp: UnsafeMutableRawPointer?,
    _ socketp: UnsafeMutableRawPointer?
) -> Int32 {
    guard let userp else { return -1 }
    let watch = Unmanaged<CurlWatch>.fromOpaque(userp).takeUnretainedValue()
    switch what {
    case CURL_POLL_IN: watch.sockets[socket] = Int16(POLLIN)
    case CURL_POLL_OUT: watch.sockets[socket] = Int16(POLLOUT)
    case CURL_POLL_INOUT: watch.sockets[socket] = Int16(POLLIN | POLLOUT)
    default: watch.sockets[socket] = nil  // CURL_POLL_REMOVE
    }
    return 0
}

/// curl's timer callback: -1 cancels the timer, 0 asks for the timeout action at once, n in n ms.
private func curlTimer(_ multi: UnsafeMutableRawPointer?, _ timeoutMs: Int, _ userp: UnsafeMutableRawPointer?) -> Int32
{
    guard let userp else { return -1 }
    let watch = Unmanaged<CurlWatch>.fromOpaque(userp).takeUnretainedValue()
    watch.deadline = timeoutMs < 0 ? nil : .now + .milliseconds(timeoutMs)
    return 0
}
