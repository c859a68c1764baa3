import Schemas

/// Where each known column sits in a source's header row. Names match trimmed and
/// case-insensitively; unknown columns are ignored with one warning each.
struct ColumnLayout {
    static let known = ["hem", "vup_id", "email", "domain", "last_verified", "source", "updated_at"]

    var count: Int
    var hem: Int
    var vupID: Int?
    var email: Int?
    var domain: Int?
    var lastVerified: Int?
    var source: Int?
    var updatedAt: Int
    var warnings: [String]

    /// Reads the header record. The message of a thrown error never repeats header text
    /// that could be data (a file without a header starts with a row).
    init(reader: CSVReader, sourceName: String) throws(ExportError) {
        var positions: [String: Int] = [:]
        var warnings: [String] = []
        let fieldCount = reader.fieldEnds.count
        var names: [String] = []
        let ok = reader.record.withUnsafeBufferPointer { buffer -> Bool in
            for index in 0..<fieldCount {
                let bytes = RowValidator.trimmed(reader.field(index, in: buffer))
                guard let name = String(validating: bytes, as: UTF8.self) else { return false }
                names.append(name)
            }
            return true
        }
        guard ok else {
            throw ExportError(
                source: sourceName, line: 1, message: "header row is not UTF-8 text: not a CSV export (corrupt file?)")
        }
        for (index, name) in names.enumerated() {
            let key = name.lowercased()
            if Self.known.contains(key) {
                if positions[key] != nil {
                    throw ExportError(
                        source: sourceName, line: 1, message: "column '\(key)' appears twice in the header")
                }
                positions[key] = index
            } else if Self.isPrintableColumnName(name) {
                warnings.append("\(sourceName): unknown column '\(name)' (column \(index + 1)) ignored")
            } else {
                warnings.append("\(sourceName): unknown column \(index + 1) ignored")
            }
        }
        guard let hem = positions["hem"] else {
            throw ExportError(
                source: sourceName, line: 1,
                message: "no 'hem' column in the header row (is the header missing, or is this not a CSV export?)")
        }
        guard let updatedAt = positions["updated_at"] else {
            throw ExportError(source: sourceName, line: 1, message: "no 'updated_at' column in the header row")
        }
        self.count = fieldCount
        self.hem = hem
        self.vupID = positions["vup_id"]
        self.email = positions["email"]
        self.domain = positions["domain"]
        self.lastVerified = positions["last_verified"]
        self.source = positions["source"]
        self.updatedAt = updatedAt
        self.warnings = warnings
    }

    /// A name safe to echo: short, letters, digits, `_`, `-`, `.`, space. Anything else (an
    /// `@`, say) could be data from a file without a header, so it is not repeated.
    static func isPrintableColumnName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64 else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: " ")
        }
    }
}

/// Turns one CSV record into an `ExportRow` or a `RowRejection` (never carrying the email or
/// the raw row). Works on the record's bytes; Strings are made only for the final values.
struct RowValidator {
    /// DynamoDB's item limit (400 KB, names and values counted in UTF-8 bytes).
    static let itemLimit = 400 * 1024
    /// Room left for attributes the loader adds (e.g. `previous_vup_id`) when checking the limit.
    static let itemReserve = 1024
    /// DynamoDB's limit for a sort key, which vup_id is in the `hem-index` GSI.
    static let maxVupIDBytes = 1024

    let layout: ColumnLayout
    let sourceName: String

    static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var start = 0
        var end = bytes.count
        while start < end, isSpace(bytes[start]) { start += 1 }
        while end > start, isSpace(bytes[end - 1]) { end -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[start..<end])
    }

    @inline(__always) static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0d || byte == 0x0a
    }

    @inline(__always) static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
    }

    /// A valid hem is lowercase hex of 32, 40 or 64 characters (MD5, SHA-1, SHA-256).
    /// Uppercase hex is rejected, not folded: the export is sorted by hem as text, and folding
    /// would both break that order and hide an upstream change of format.
    static func validHem(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        guard n == 32 || n == 40 || n == 64 else { return false }
        for byte in bytes where !isLowerHex(byte) { return false }
        return true
    }

    /// A String of valid UTF-8, or nil. Pure ASCII takes the fast path.
    @inline(__always) static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }

    func validate(_ reader: CSVReader) -> ExportRecord {
        reader.record.withUnsafeBufferPointer { validate(reader, $0) }
    }

    private func validate(_ reader: CSVReader, _ buffer: UnsafeBufferPointer<UInt8>) -> ExportRecord {
        let line = reader.recordLine
        func reject(_ reason: RejectReason, hem: String? = nil, field: String? = nil) -> ExportRecord {
            .rejected(RowRejection(source: sourceName, line: line, reason: reason, hem: hem, field: field))
        }
        let fieldCount = reader.fieldEnds.count
        // The hem first, so that every later rejection can name it.
        var hem: String?
        if !reader.oversized && layout.hem < fieldCount {
            let bytes = Self.trimmed(reader.field(layout.hem, in: buffer))
            if Self.validHem(bytes) { hem = String(decoding: bytes, as: UTF8.self) }
        }
        if reader.oversized { return reject(.itemTooLarge) }
        guard fieldCount == layout.count else { return reject(.fieldCount, hem: hem) }
        guard let hem else { return reject(.invalidHem, hem: nil, field: "hem") }

        func text(_ column: Int?, _ name: String) -> (value: String?, bad: Bool, size: Int) {
            guard let column else { return (nil, false, 0) }
            let bytes = Self.trimmed(reader.field(column, in: buffer))
            if bytes.isEmpty { return (nil, false, 0) }
            guard let value = Self.string(bytes) else { return (nil, true, 0) }
            return (value, false, name.utf8.count + bytes.count)
        }
        let vup = text(layout.vupID, "vup_id")
        if vup.bad { return reject(.invalidUTF8, hem: hem, field: "vup_id") }
        let email = text(layout.email, "email")
        if email.bad { return reject(.invalidUTF8, hem: hem, field: "email") }
        let domain = text(layout.domain, "domain")
        if domain.bad { return reject(.invalidUTF8, hem: hem, field: "domain") }
        let source = text(layout.source, "source")
        if source.bad { return reject(.invalidUTF8, hem: hem, field: "source") }

        let vupID: String
        if let given = vup.value {
            if given.utf8.count > Self.maxVupIDBytes { return reject(.invalidVupID, hem: hem, field: "vup_id") }
            if Sentinel.isSentinel(given) && given != Sentinel.vupID(forHem: hem) {
                return reject(.sentinelMismatch, hem: hem, field: "vup_id")
            }
            vupID = given
        } else {
            vupID = Sentinel.vupID(forHem: hem)
        }

        let updatedBytes = Self.trimmed(reader.field(layout.updatedAt, in: buffer))
        if updatedBytes.isEmpty { return reject(.missingUpdatedAt, hem: hem, field: "updated_at") }
        guard let updatedAt = Timestamps.normalised(updatedBytes) else {
            if Self.string(updatedBytes) == nil { return reject(.invalidUTF8, hem: hem, field: "updated_at") }
            return reject(.invalidTimestamp, hem: hem, field: "updated_at")
        }
        var lastVerified: String?
        if let column = layout.lastVerified {
            let bytes = Self.trimmed(reader.field(column, in: buffer))
            if !bytes.isEmpty {
                guard let value = Timestamps.normalised(bytes) else {
                    if Self.string(bytes) == nil { return reject(.invalidUTF8, hem: hem, field: "last_verified") }
                    return reject(.invalidTimestamp, hem: hem, field: "last_verified")
                }
                lastVerified = value
            }
        }

        let size =
            3 + hem.utf8.count + 6 + vupID.utf8.count + email.size + domain.size + source.size
            + (lastVerified.map { 13 + $0.utf8.count } ?? 0) + 10 + updatedAt.utf8.count
        if size + Self.itemReserve > Self.itemLimit { return reject(.itemTooLarge, hem: hem) }

        return .row(
            ExportRow(
                hem: hem, vupID: vupID, email: email.value, domain: domain.value, source: source.value,
                lastVerified: lastVerified, updatedAt: updatedAt, line: line))
    }
}
