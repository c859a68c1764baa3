import CZlib

/// Why a gzip stream could not be inflated; the reader turns it into an `ExportError`.
struct GunzipError: Error, Sendable {
    var message: String
}

/// Streaming gunzip over zlib, aware of multi-member files (`cat a.gz b.gz`): after each
/// member's end it resets and reads on, as `gzip -d` does. Feed compressed chunks, drain
/// decompressed pieces of at most `outputSize` bytes; `finish()` reports a truncated member.
final class Gunzip {
    /// True when `bytes` starts with the gzip magic (1f 8b).
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private var input: UnsafeMutablePointer<UInt8>
    private var inputCapacity: Int
    private let outputSize: Int
    /// Inside a member: some of it has been read, its end not yet.
    private var inMember = false
    /// The last member ended; the next byte, if any, starts a new one.
    private var memberEnded = false
    /// The last inflate filled the output: zlib may hold more output without more input.
    private var outputPending = false
    /// Only zero bytes may follow (padding after the last member).
    private var inPadding = false
    private(set) var membersCompleted = 0

    init(outputSize: Int = 256 * 1024) throws(GunzipError) {
        self.outputSize = outputSize
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        inputCapacity = 256 * 1024
        input = .allocate(capacity: inputCapacity)
        // inflateInit2 is a macro Swift cannot see; 16 + MAX_WBITS selects the gzip wrapper.
        let rc = inflateInit2_(stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            input.deallocate()
            throw GunzipError(message: "zlib inflateInit2 failed (\(rc))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
    }

    /// Hands over the next compressed chunk. Drain with `next()` until it returns nil first.
    func feed(_ bytes: [UInt8], count: Int) {
        precondition(stream.pointee.avail_in == 0, "feed before the previous input was drained")
        if count > inputCapacity {
            input.deallocate()
            inputCapacity = count
            input = .allocate(capacity: inputCapacity)
        }
        bytes.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { input.update(from: base, count: count) }
        }
        stream.pointee.next_in = input
        stream.pointee.avail_in = UInt32(count)
    }

    /// Inflates the next piece into `output` (reusing its storage) and returns how many bytes
    /// of it are valid, or nil when the fed input is used up.
    func next(into output: inout [UInt8]) throws(GunzipError) -> Int? {
        if output.count < outputSize { output = [UInt8](repeating: 0, count: outputSize) }
        while stream.pointee.avail_in > 0 || outputPending {
            if memberEnded {
                guard stream.pointee.avail_in > 0 else { return nil }
                // Zero bytes after the last member are padding (some writers pad to a block);
                // gzip -d ignores them too. Anything else must be the next member.
                if stream.pointee.next_in.pointee == 0 || inPadding {
                    try skipPadding()
                    continue
                }
                inflateReset(stream)
                memberEnded = false
            }
            if stream.pointee.avail_in > 0 { inMember = true }
            var rc: Int32 = Z_OK
            let size = outputSize
            let stream = self.stream
            let produced = output.withUnsafeMutableBufferPointer { buffer -> Int in
                stream.pointee.next_out = buffer.baseAddress
                stream.pointee.avail_out = UInt32(size)
                rc = inflate(stream, Z_NO_FLUSH)
                return size - Int(stream.pointee.avail_out)
            }
            outputPending = stream.pointee.avail_out == 0
            switch rc {
            case Z_OK, Z_BUF_ERROR:
                break
            case Z_STREAM_END:
                inMember = false
                memberEnded = true
                outputPending = false
                membersCompleted += 1
            case Z_DATA_ERROR:
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "invalid data"
                let what = detail == "incorrect data check" ? "bad CRC (incorrect data check)" : detail
                let member = membersCompleted + 1
                throw GunzipError(message: "corrupt gzip data in member \(member): \(what)")
            case Z_MEM_ERROR:
                throw GunzipError(message: "out of memory while inflating gzip data")
            default:
                throw GunzipError(message: "corrupt gzip data (zlib error \(rc))")
            }
            if produced > 0 { return produced }
            if rc == Z_BUF_ERROR { return nil }
        }
        return nil
    }

    /// Consumes zero padding after a member; a non-zero byte after padding is an error.
    private func skipPadding() throws(GunzipError) {
        inPadding = true
        while stream.pointee.avail_in > 0 {
            guard stream.pointee.next_in.pointee == 0 else {
                throw GunzipError(message: "corrupt gzip data: bytes after the zero padding that ends the last member")
            }
            stream.pointee.next_in += 1
            stream.pointee.avail_in -= 1
        }
    }

    /// At the end of the input: throws when the last member was cut short.
    func finish() throws(GunzipError) {
        if inMember || outputPending {
            throw GunzipError(
                message: "truncated gzip: the data ends inside member \(membersCompleted + 1) (file cut short?)")
        }
    }
}
