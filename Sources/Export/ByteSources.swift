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
    /// Reads the next chunk into `buffer` (reusing its storage when it can) and returns how many
    /// bytes of it are valid, or nil at the end. Throws ExportError.
    func read(into buffer: inout [UInt8]) async throws(ExportError) -> Int?
}

/// read(2), under a name the sources' own `read(into:)` does not shadow.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
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

    func read(into buffer: inout [UInt8]) async throws(ExportError) -> Int? {
        if buffer.count < chunkSize { buffer = [UInt8](repeating: 0, count: chunkSize) }
        let size = chunkSize
        let fd = self.fd
        let n = buffer.withUnsafeMutableBytes { bytes -> Int in
            while true {
                let n = posixRead(fd, bytes.baseAddress, size)
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }
        if n < 0 {
            throw ExportError(source: path, message: "read failed: \(String(cString: strerror(errno)))")
        }
        return n == 0 ? nil : n
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

    func read(into buffer: inout [UInt8]) async throws(ExportError) -> Int? {
        do {
            while let chunk = try await stream.next() {
                if !chunk.isEmpty {
                    buffer = chunk
                    return chunk.count
                }
            }
            return nil
        } catch {
            throw ExportError(source: name, message: "download failed: \(error)")
        }
    }
}
