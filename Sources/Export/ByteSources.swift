import AWSWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The stored bytes of one source, in chunks, as they come (compressed or not).
protocol ByteSource: AnyObject {
    /// Size of the source as stored, when known.
    var totalBytes: Int64? { get }
    /// The next chunk, or nil at the end. Throws ExportError.
    func next() async throws(ExportError) -> [UInt8]?
}

/// A local file read with read(2) in fixed-size chunks.
final class FileByteSource: ByteSource {
    let totalBytes: Int64?
    private let fd: Int32
    private let path: String
    private let chunkSize: Int

    init(path: String, chunkSize: Int = 256 * 1024) throws(ExportError) {
        self.path = path
        self.chunkSize = chunkSize
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ExportError(source: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ExportError(source: path, message: "cannot stat: \(reason)")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw ExportError(source: path, message: "is a directory, not an export file")
        }
        self.fd = fd
        totalBytes = (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
    }

    deinit { close(fd) }

    func next() async throws(ExportError) -> [UInt8]? {
        let size = chunkSize
        let fd = self.fd
        var failure: Int32 = 0
        let chunk = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            while true {
                let n = read(fd, buffer.baseAddress, size)
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    failure = errno
                    count = 0
                } else {
                    count = n
                }
                return
            }
        }
        if failure != 0 {
            throw ExportError(source: path, message: "read failed: \(String(cString: strerror(failure)))")
        }
        return chunk.isEmpty ? nil : chunk
    }
}

/// An S3 object, streamed with GetObject (never downloaded whole).
final class S3ByteSource: ByteSource {
    let totalBytes: Int64?
    private let stream: S3ObjectStream
    private let name: String

    init(bucket: String, key: String, client: AWSClient) async throws(ExportError) {
        name = ExportLocation.s3(bucket: bucket, key: key).description
        do {
            stream = try await client.s3GetObject(bucket: bucket, key: key)
        } catch {
            throw ExportError(source: name, message: "cannot read: \(error)")
        }
        totalBytes = stream.contentLength
    }

    func next() async throws(ExportError) -> [UInt8]? {
        do {
            while let chunk = try await stream.next() {
                if !chunk.isEmpty { return chunk }
            }
            return nil
        } catch {
            throw ExportError(source: name, message: "download failed: \(error)")
        }
    }
}
