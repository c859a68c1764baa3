import CCurl
import CCurlShim
import Foundation
import Synchronization
import ThreadNames

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
        let thread = Thread { [self] in
            nameCurrentThread("hs-curl-multi")
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

    private func run() {
        var idle: [CurlEasy] = []
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        var incoming: [Submitted] = []
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

            var running: Int32 = 0
            curl_multi_perform(multi, &running)
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
                            HTTPResponse(status: status, rawHeaders: transfer.sink.rawHeaders, body: transfer.sink.body)))
                case .failure(let error):
                    transfer.completion(.failure(error))
                }
            }
            // Announce the sleep, then look at the queue once more: a submitter either saw the
            // flag (and signals the eventfd) or queued before this look.
            sleeping.store(true, ordering: .sequentiallyConsistent)
            if queue.withLock({ !$0.isEmpty }) {
                sleeping.store(false, ordering: .sequentiallyConsistent)
                continue
            }
            var wake = curl_waitfd(fd: wakeFD, events: Int16(CURL_WAIT_POLLIN), revents: 0)
            curl_multi_poll(multi, &wake, 1, 1000, nil)
            sleeping.store(false, ordering: .sequentiallyConsistent)
            if wake.revents != 0 { hs_eventfd_drain(wakeFD) }
        }
    }
}
