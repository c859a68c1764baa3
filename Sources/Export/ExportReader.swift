import AWSWire

/// Streams one source: bytes (file or S3 GetObject, streamed) → gunzip when the gzip magic is
/// there (multi-member aware) → RFC 4180 CSV → validated records. Memory stays flat.
public final class ExportReader {
    /// Most bytes the header row may take; a longer "header" means this is not a CSV export.
    static let headerLimit = 64 * 1024
    /// Most bytes one data record may hold in memory; a longer one is rejected as too large.
    static let recordLimit = 1024 * 1024

    public let location: ExportLocation
    /// Of the source as stored (compressed bytes).
    public private(set) var bytesRead: Int64 = 0
    /// e.g. one per unknown column; no PII.
    public private(set) var warnings: [String] = []
    /// Data records seen (rows + rejections).
    public private(set) var recordsRead = 0
    /// True when the source turned out to be gzip.
    public var isGzip: Bool { gunzip != nil }

    public var totalBytes: Int64? { source.totalBytes }

    private let name: String
    private let source: ByteSource
    private var gunzip: Gunzip?
    private var csv = CSVReader(limit: ExportReader.headerLimit)
    private var validator: RowValidator?
    private var formatDecided = false
    private var bomChecked = false
    private var prefix: [UInt8] = []
    private var finished = false

    public init(location: ExportLocation, client: AWSClient?) async throws {
        self.location = location
        name = location.description
        switch location {
        case .file(let path):
            source = try FileByteSource(path: path)
        case .s3(let bucket, let key):
            guard let client else {
                throw ExportError(source: location.description, message: "an s3:// source needs AWS configuration")
            }
            source = try await S3ByteSource(bucket: bucket, key: key, client: client)
        }
        try await readHeader()
    }

    /// Up to `maxRecords` records; nil at the end of the source. Throws ExportError.
    public func nextBatch(maxRecords: Int = 4096) async throws -> [ExportRecord]? {
        guard !finished, let validator else { return nil }
        var out: [ExportRecord] = []
        out.reserveCapacity(min(max(maxRecords, 1), 4096))
        while out.count < maxRecords {
            if csv.next() {
                out.append(validator.validate(csv))
                continue
            }
            if let chunk = try await nextText() {
                csv.feed(chunk)
                continue
            }
            if csv.finish() {
                if csv.unterminatedQuote {
                    finished = true
                    throw ExportError(
                        source: name, line: csv.recordLine,
                        message: "the source ends inside a quoted field that starts on this line (file cut short?)")
                }
                out.append(validator.validate(csv))
            }
            finished = true
            break
        }
        recordsRead += out.count
        if out.isEmpty && finished { return nil }
        return out
    }

    private func readHeader() async throws(ExportError) {
        while !csv.next() {
            if csv.oversized || csv.pendingBytes >= Self.headerLimit {
                throw ExportError(
                    source: name, line: 1, message: "header row longer than 64 KiB: not a CSV export (corrupt file?)")
            }
            if let chunk = try await nextText() {
                csv.feed(chunk)
                continue
            }
            if csv.finish() { break }
            throw ExportError(source: name, message: "empty source: no header row")
        }
        if csv.oversized || csv.unterminatedQuote {
            throw ExportError(source: name, line: 1, message: "header row is not a CSV header (corrupt file?)")
        }
        let layout = try ColumnLayout(reader: csv, sourceName: name)
        warnings = layout.warnings
        validator = RowValidator(layout: layout, sourceName: name)
        csv.limit = Self.recordLimit
    }

    /// Decompressed text without a leading UTF-8 byte-order mark.
    private func nextText() async throws(ExportError) -> [UInt8]? {
        guard !bomChecked else { return try await nextDecoded() }
        var head: [UInt8] = []
        while head.count < 3, let more = try await nextDecoded() { head += more }
        bomChecked = true
        if head.count >= 3 && head[0] == 0xef && head[1] == 0xbb && head[2] == 0xbf { head.removeFirst(3) }
        if head.isEmpty { return try await nextDecoded() }
        return head
    }

    /// The source's bytes, gunzipped when they start with the gzip magic.
    private func nextDecoded() async throws(ExportError) -> [UInt8]? {
        while true {
            if let gunzip {
                do {
                    if let piece = try gunzip.next() { return piece }
                } catch {
                    throw ExportError(source: name, line: csv.line, message: error.message)
                }
            }
            guard var raw = try await source.next() else {
                if let gunzip {
                    do {
                        try gunzip.finish()
                    } catch {
                        throw ExportError(source: name, line: csv.line, message: error.message)
                    }
                }
                if !formatDecided {
                    formatDecided = true
                    if !prefix.isEmpty {
                        defer { prefix = [] }
                        return prefix
                    }
                }
                return nil
            }
            bytesRead += Int64(raw.count)
            if !formatDecided {
                prefix += raw
                if prefix.count < 2 { continue }
                formatDecided = true
                raw = prefix
                prefix = []
                if Gunzip.isGzip(raw) {
                    do {
                        gunzip = try Gunzip()
                    } catch {
                        throw ExportError(source: name, message: error.message)
                    }
                }
            }
            guard let gunzip else { return raw }
            gunzip.feed(raw)
        }
    }
}
