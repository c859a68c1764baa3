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
    /// Reused buffers: stored bytes (gzip input) and text for the CSV reader.
    private var raw: [UInt8] = []
    private var text: [UInt8] = []
    private var finished = false
    private var pendingFailure: ExportError?

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
    ///
    /// Records before a failure come out first: the batch that meets the failure ends there,
    /// and the next call throws it, so what a caller sees does not depend on the batch size.
    public func nextBatch(maxRecords: Int = 4096) async throws -> [ExportRecord]? {
        if let failure = pendingFailure {
            pendingFailure = nil
            finished = true
            throw failure
        }
        guard !finished, let validator else { return nil }
        var out: [ExportRecord] = []
        out.reserveCapacity(min(max(maxRecords, 1), 4096))
        do {
            try await fill(&out, maxRecords: maxRecords, validator: validator)
        } catch {
            recordsRead += out.count
            if out.isEmpty {
                finished = true
                throw error
            }
            pendingFailure = error
            return out
        }
        recordsRead += out.count
        if out.isEmpty && finished { return nil }
        return out
    }

    private func fill(_ out: inout [ExportRecord], maxRecords: Int, validator: RowValidator)
        async throws(ExportError)
    {
        while out.count < maxRecords {
            if csv.next() {
                out.append(validator.validate(csv))
                continue
            }
            csv.releaseInput()
            if let count = try await nextText() {
                csv.feed(text, count: count)
                continue
            }
            if csv.finish() {
                if csv.unterminatedQuote {
                    throw ExportError(
                        source: name, line: csv.recordLine,
                        message: "the source ends inside a quoted field that starts on this line (file cut short?)")
                }
                out.append(validator.validate(csv))
            }
            finished = true
            if recordsRead + out.count == 0 { warnings.append("a header row and no data rows: 0 rows") }
            break
        }
    }

    private func readHeader() async throws(ExportError) {
        while !csv.next() {
            if csv.oversized || csv.pendingBytes >= Self.headerLimit {
                throw ExportError(
                    source: name, line: 1, message: "header row longer than 64 KiB: not a CSV export (corrupt file?)")
            }
            csv.releaseInput()
            if let count = try await nextText() {
                csv.feed(text, count: count)
                continue
            }
            if csv.finish() { break }
            // A slice with no rows writes a 0-byte part or a gzip of nothing: 0 rows, not a failure.
            warnings.append("empty source (\(isGzip ? "a gzip of nothing" : "0 bytes")): 0 rows")
            finished = true
            return
        }
        if csv.oversized || csv.unterminatedQuote {
            throw ExportError(source: name, line: 1, message: "header row is not a CSV header (corrupt file?)")
        }
        let layout = try ColumnLayout(reader: csv, sourceName: name)
        warnings += layout.warnings
        validator = RowValidator(layout: layout, sourceName: name)
        csv.limit = Self.recordLimit
    }

    /// Fills `text` with the next decompressed bytes, without a leading UTF-8 byte-order mark;
    /// returns how many are valid, nil at the end. The CSV reader must have released `text`.
    private func nextText() async throws(ExportError) -> Int? {
        guard !bomChecked else { return try await nextDecoded(into: &text) }
        bomChecked = true
        var head: [UInt8] = []
        while head.count < 3, let n = try await nextDecoded(into: &text) { head += text[..<n] }
        if head.count >= 3 && head[0] == 0xef && head[1] == 0xbb && head[2] == 0xbf { head.removeFirst(3) }
        if head.isEmpty { return try await nextDecoded(into: &text) }
        text = head
        return head.count
    }

    /// The source's bytes, gunzipped when they start with the gzip magic. Buffers are reused
    /// from chunk to chunk (fresh 256 KiB arrays cost page faults).
    private func nextDecoded(into output: inout [UInt8]) async throws(ExportError) -> Int? {
        while true {
            if let gunzip {
                do {
                    if let n = try gunzip.next(into: &output) { return n }
                } catch {
                    throw ExportError(source: name, line: csv.line, message: error.message)
                }
            }
            if !formatDecided {
                // The first bytes decide gzip or plain; a source may hand out fewer than two.
                var chunk: [UInt8] = []
                if let n = try await source.read(into: &chunk) {
                    bytesRead += Int64(n)
                    prefix += chunk[..<n]
                    if prefix.count < 2 { continue }
                }
                formatDecided = true
                let first = prefix
                prefix = []
                if Gunzip.isGzip(first) {
                    do {
                        let gunzip = try Gunzip()
                        gunzip.feed(first, count: first.count)
                        self.gunzip = gunzip
                    } catch {
                        throw ExportError(source: name, message: error.message)
                    }
                    continue
                }
                if first.isEmpty { return nil }
                output = first
                return first.count
            }
            guard let gunzip else {
                guard let n = try await source.read(into: &output) else { return nil }
                bytesRead += Int64(n)
                return n
            }
            guard let n = try await source.read(into: &raw) else {
                do {
                    try gunzip.finish()
                } catch {
                    throw ExportError(source: name, line: csv.line, message: error.message)
                }
                return nil
            }
            bytesRead += Int64(n)
            gunzip.feed(raw, count: n)
        }
    }
}
