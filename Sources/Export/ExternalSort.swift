#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An external merge sort of byte records by a byte key, with bounded memory: records are
/// buffered up to `memoryLimit` bytes, each full buffer is sorted and spilled as a run to a
/// temporary file under `directory`, and `finish()` k-way merges the runs (input that fits in
/// one buffer never touches the disk). Equal keys come out in the order they were added (a run's records
/// keep their order; between runs the earlier run wins), so "the last row of a hem" stays last.
///
/// Run files are unlinked as soon as they are created: they vanish when the sorter is released,
/// and also when the process dies, so a failed or killed load leaves nothing under `directory`.
/// A run is `[UInt32 length][UInt8 key length][key][payload]` per record, little-endian.
public final class ExternalSorter {
    public static let defaultMemoryLimit = 32 * 1024 * 1024

    public let directory: String
    public let memoryLimit: Int
    /// Records added so far.
    public private(set) var count = 0
    /// Runs written to disk so far.
    public var spilledRuns: Int { runs.count }

    private var arena: [UInt8] = []
    private var offsets: [Int32] = []
    private var runs: [RunFile] = []
    private var finished = false

    /// `directory` nil: `$TMPDIR`, else `/tmp`.
    public init(directory: String? = nil, memoryLimit: Int = ExternalSorter.defaultMemoryLimit) {
        self.directory = directory ?? ExternalSorter.systemTemporaryDirectory
        self.memoryLimit = max(64 * 1024, memoryLimit)
    }

    public static var systemTemporaryDirectory: String {
        if let value = getenv("TMPDIR"), let text = String(validatingCString: value), !text.isEmpty { return text }
        return "/tmp"
    }

    /// Adds one record: `key` (at most 255 bytes) and the bytes `payload` appends.
    public func add(key: String, payload: (inout [UInt8]) -> Void) throws(ExportError) {
        precondition(!finished, "add after finish")
        if arena.count >= memoryLimit { try spill() }
        reserveArena()
        offsets.append(Int32(truncatingIfNeeded: arena.count))
        var key = key
        key.withUTF8 { Self.appendRecord(key: UnsafeRawBufferPointer($0), to: &arena, payload: payload) }
        count += 1
    }

    /// Adds records framed elsewhere (`SortRecordBuffer`: a Scan page encoded on the task that
    /// read it), each copied as it is.
    public func add(_ records: SortRecordBuffer) throws(ExportError) {
        precondition(!finished, "add after finish")
        let bytes = records.bytes
        var start = 0
        while start < bytes.count {
            if arena.count >= memoryLimit { try spill() }
            reserveArena()
            let length = bytes.withUnsafeBytes {
                Int($0.loadUnaligned(fromByteOffset: start, as: UInt32.self).littleEndian)
            }
            offsets.append(Int32(truncatingIfNeeded: arena.count))
            arena.append(contentsOf: bytes[start..<start + 4 + length])
            start += 4 + length
            count += 1
        }
    }

    /// The whole buffer at once: pages not yet written cost no memory, and the buffer never
    /// doubles past the limit (a copy of tens of MB, and twice the resident size).
    @inline(__always) private func reserveArena() {
        if arena.capacity == 0 { arena.reserveCapacity(memoryLimit + (2 << 20)) }
    }

    /// Appends one record in the run format, `[UInt32 length][UInt8 key length][key][payload]`:
    /// the one place that frames a record, for the sorter's buffer and for `SortRecordBuffer`.
    @inline(__always) static func appendRecord(
        key: UnsafeRawBufferPointer, to out: inout [UInt8], payload: (inout [UInt8]) -> Void
    ) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0])
        let n = min(key.count, 255)
        out.append(UInt8(n))
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: key[..<n]))
        payload(&out)
        let length = UInt32(out.count - start - 4)
        out.withUnsafeMutableBytes { $0.storeBytes(of: length.littleEndian, toByteOffset: start, as: UInt32.self) }
    }

    /// The records in key order. The sorter is spent; its run files go when the result is released.
    public func finish() throws(ExportError) -> SortedRecords {
        precondition(!finished, "finish twice")
        finished = true
        // Once anything went to disk, the last buffer goes too and its memory is freed: the
        // merge then holds one read buffer per run, and the next sort (the export's, after the
        // table's) starts from nothing.
        if !runs.isEmpty && !offsets.isEmpty { try spill() }
        sortBuffer()
        var cursors: [RunCursor] = []
        for run in runs { cursors.append(try RunCursor(file: run)) }
        if !offsets.isEmpty { cursors.append(RunCursor(memory: arena, offsets: offsets)) }
        arena = []
        offsets = []
        runs = []
        return SortedRecords(cursors)
    }

    /// Sorts the buffer's offsets by (key, position): position keeps equal keys in insertion
    /// order. A buffer already in order (a sorted part) is only checked.
    private func sortBuffer() {
        arena.withUnsafeBytes { bytes in
            let base = bytes.baseAddress!
            func less(_ a: Int32, _ b: Int32) -> Bool {
                let c = compareKeys(base + Int(a) + 4, base + Int(b) + 4)
                return c != 0 ? c < 0 : a < b
            }
            var sorted = true
            var i = 1
            while i < offsets.count {
                if less(offsets[i], offsets[i - 1]) {
                    sorted = false
                    break
                }
                i += 1
            }
            if !sorted { offsets.sort(by: less) }
        }
    }

    private func spill() throws(ExportError) {
        sortBuffer()
        let run = try RunFile(directory: directory)
        var failure: ExportError?
        arena.withUnsafeBytes { bytes in
            var out: [UInt8] = []
            out.reserveCapacity(1 << 20)
            for offset in offsets {
                let start = Int(offset)
                let length = Int(bytes.loadUnaligned(fromByteOffset: start, as: UInt32.self).littleEndian) + 4
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<start + length]))
                if out.count >= 1 << 20 {
                    failure = run.write(out)
                    if failure != nil { return }
                    out.removeAll(keepingCapacity: true)
                }
            }
            failure = run.write(out)
        }
        if let failure { throw failure }
        runs.append(run)
        arena.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
    }
}

/// The sorter's key order: memcmp order, a prefix first. The merge-join compares hems out of
/// a sorter by it too (`RecordGroups`), so both sides of a join agree with the sort.
@inline(__always) func compareKeyBytes(_ a: UnsafeRawPointer?, _ la: Int, _ b: UnsafeRawPointer?, _ lb: Int) -> Int {
    let n = min(la, lb)
    if n > 0 {
        let c = memcmp(a!, b!, n)
        if c != 0 { return Int(c) }
    }
    return la - lb
}

/// `compareKeyBytes` of two `[UInt8 length][bytes]` keys.
@inline(__always) func compareKeys(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> Int32 {
    Int32(compareKeyBytes(a + 1, Int(a.load(as: UInt8.self)), b + 1, Int(b.load(as: UInt8.self))))
}

/// write(2), named apart from `RunFile.write`.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }

/// One spilled run: an unlinked temporary file, closed when released.
final class RunFile {
    let descriptor: Int32
    private(set) var size = 0

    init(directory: String) throws(ExportError) {
        var template = Array((directory + "/hemstream-sort-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw ExportError(
                source: directory,
                message: "cannot create a sort run file: \(String(cString: strerror(errno))) (see --tmp-dir)")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        descriptor = fd
    }

    /// Appends `bytes`; the error, if the disk refuses them.
    func write(_ bytes: [UInt8]) -> ExportError? {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { systemWrite(descriptor, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                return ExportError(
                    source: "sort run",
                    message: "cannot write: \(String(cString: strerror(errno))) (disk full? see --tmp-dir)")
            }
            done += n
        }
        size += bytes.count
        return nil
    }

    deinit { close(descriptor) }
}

/// Reads one run in order, from its file (buffered) or from the in-memory last buffer.
final class RunCursor {
    private let file: RunFile?
    private var buffer: [UInt8]
    private let offsets: [Int32]
    private var index = 0
    private var fileOffset = 0
    private var start = 0
    private var end = 0
    /// Offset in `buffer` of the current record's length field; -1 when the run is exhausted.
    private(set) var current = -1

    init(file: RunFile) throws(ExportError) {
        self.file = file
        buffer = [UInt8](repeating: 0, count: 256 * 1024)
        offsets = []
        try advance()
    }

    init(memory: [UInt8], offsets: [Int32]) {
        file = nil
        buffer = memory
        self.offsets = offsets
        current = offsets.isEmpty ? -1 : Int(offsets[0])
        index = 1
    }

    /// Calls `body` with the current record's key (length-prefixed) and the record's end.
    @inline(__always) func withCurrent<T>(_ body: (_ key: UnsafeRawPointer, _ recordEnd: UnsafeRawPointer) -> T) -> T {
        buffer.withUnsafeBytes { bytes in
            let base = bytes.baseAddress! + current
            let length = Int(base.loadUnaligned(as: UInt32.self).littleEndian)
            return body(base + 4, base + 4 + length)
        }
    }

    func advance() throws(ExportError) {
        guard let file else {
            current = index < offsets.count ? Int(offsets[index]) : -1
            index += 1
            return
        }
        if current >= 0 {
            let length = buffer.withUnsafeBytes {
                Int($0.loadUnaligned(fromByteOffset: current, as: UInt32.self).littleEndian)
            }
            start = current + 4 + length
        }
        // Need the length field, then the whole record, in the buffer.
        if end - start < 4 { try refill(file) }
        if end - start < 4 {
            current = -1
            return
        }
        let length = buffer.withUnsafeBytes {
            Int($0.loadUnaligned(fromByteOffset: start, as: UInt32.self).littleEndian)
        }
        if end - start < 4 + length {
            if buffer.count < 4 + length { buffer += [UInt8](repeating: 0, count: 4 + length - buffer.count) }
            try refill(file)
            guard end - start >= 4 + length else {
                throw ExportError(source: "sort run", message: "run file ends inside a record")
            }
        }
        current = start
    }

    /// Moves the unread bytes to the front and reads more after them.
    private func refill(_ file: RunFile) throws(ExportError) {
        let left = end - start
        if start > 0 && left > 0 {
            buffer.withUnsafeMutableBytes { b in
                _ = memmove(b.baseAddress!, b.baseAddress! + start, left)
            }
        }
        start = 0
        end = left
        current = -1
        while end < buffer.count && fileOffset < file.size {
            let n = buffer.withUnsafeMutableBytes { b in
                pread(file.descriptor, b.baseAddress! + end, b.count - end, off_t(fileOffset))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ExportError(source: "sort run", message: "cannot read: \(String(cString: strerror(errno)))")
            }
            end += n
            fileOffset += n
        }
    }
}

/// The sorter's output: records in key order, ties in the order they were added. Each record
/// is handed to a closure as its key and payload bytes, valid only during the call.
public final class SortedRecords {
    private var cursors: [RunCursor]

    init(_ cursors: [RunCursor]) {
        self.cursors = cursors.filter { $0.current >= 0 }
    }

    /// The next record, decoded by `body(key, payload)`; nil when every run is exhausted.
    /// The smallest key of the runs' heads is found by a linear pass: there are few runs
    /// (one per `memoryLimit` bytes of input), and ties go to the earliest run.
    public func next<T>(_ body: (_ key: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> T)
        throws(ExportError) -> T?
    {
        guard !cursors.isEmpty else { return nil }
        var best = 0
        if cursors.count > 1 {
            for i in 1..<cursors.count {
                let c = cursors[i].withCurrent { key, _ in
                    cursors[best].withCurrent { bestKey, _ in compareKeys(key, bestKey) }
                }
                if c < 0 { best = i }
            }
        }
        let cursor = cursors[best]
        let value = cursor.withCurrent { key, end in
            let keyLength = Int(key.load(as: UInt8.self))
            let payload = key + 1 + keyLength
            return body(
                UnsafeRawBufferPointer(start: key + 1, count: keyLength),
                UnsafeRawBufferPointer(start: payload, count: end - payload))
        }
        try cursor.advance()
        if cursor.current < 0 { cursors.remove(at: best) }
        return value
    }
}
