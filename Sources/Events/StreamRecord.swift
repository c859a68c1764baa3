import Foundation
import JSON

/// One DynamoDB Streams record, reduced to what change events are made of. Read straight from
/// a GetRecords body's bytes (`readPage`: no JSON tree, no String per attribute), or from wire
/// JSON (`init(_:)`, the same values). Every field is optional: the detector, not the reader,
/// says what is missing, and a record it cannot read still has its position and keys for the
/// dead letter.
public struct StreamRecord: Sendable {
    public var eventName: String?
    public var sequenceNumber: String?
    /// ApproximateCreationDateTime (epoch seconds).
    public var time: Double?
    /// Whether the record has a `dynamodb` member at all.
    public var hasDynamoDB = false
    /// `dynamodb.Keys`' hem and vup_id (their S values).
    public var keyHem: String?
    public var keyVupID: String?
    public var newImage: ItemImage?
    public var oldImage: ItemImage?

    public init() {}

    /// The record from wire JSON (tests, `events explain`, a page the byte reader leaves to the
    /// canonical parser).
    public init(_ record: JSON) {
        eventName = record["eventName"]?.stringValue
        guard let d = record["dynamodb"] else { return }
        hasDynamoDB = true
        sequenceNumber = d["SequenceNumber"]?.stringValue
        time = d["ApproximateCreationDateTime"]?.doubleValue
        keyHem = d["Keys"]?["hem"]?["S"]?.stringValue
        keyVupID = d["Keys"]?["vup_id"]?["S"]?.stringValue
        newImage = d["NewImage"]?.objectValue.map(ItemImage.init)
        oldImage = d["OldImage"]?.objectValue.map(ItemImage.init)
    }

    /// A GetRecords answer: its records (nil when it has no `Records` array) and
    /// `NextShardIterator` (nil at a closed shard's end). A reader that reads many pages keeps a
    /// `StreamPageReader` instead, so the token array is not made again for every page.
    public static func readPage(_ body: [UInt8]) throws(JSONError) -> (records: [StreamRecord]?, nextIterator: String?)
    {
        var reader = StreamPageReader()
        return try reader.read(body)
    }
}

/// Reads GetRecords answers one after another with one token array: a page of 1,000 records
/// is about 150k tokens (3-4 MB), which made fresh for every page cost an allocation, its
/// page faults and a copy when it grew.
public struct StreamPageReader {
    private var tokens: [Token] = []

    public init() {}

    /// A GetRecords answer: its records (nil when it has no `Records` array) and
    /// `NextShardIterator` (nil at a closed shard's end). Bytes go through the tape parser; a
    /// body it leaves to the canonical parser (escapes, non-ASCII text, a repeated key) is parsed
    /// as a JSON tree, with the same result.
    public mutating func read(_ body: [UInt8]) throws(JSONError) -> (records: [StreamRecord]?, nextIterator: String?) {
        if let fast = body.withUnsafeBufferPointer({ readTape(body, $0) }) { return fast }
        let answer = body.isEmpty ? JSON.object([:]) : try JSON.parse(body)
        return (answer["Records"]?.arrayValue?.map(StreamRecord.init), answer["NextShardIterator"]?.stringValue)
    }

    mutating func readTape(_ body: [UInt8], _ bytes: UnsafeBufferPointer<UInt8>) -> (
        records: [StreamRecord]?, nextIterator: String?
    )? {
        guard bytes.count > 0, bytes.count < Int(Int32.max) else { return nil }
        guard TapeParser.parseObject(bytes, into: &tokens, reserve: bytes.count / 12) else { return nil }
        return tokens.withUnsafeBufferPointer { tokens in
            let tape = Tape(bytes: bytes, tokens: tokens)
            var records: [StreamRecord]?
            if let list = tape.member(0, "Records"), tokens[list].kind == .array {
                records = []
                records!.reserveCapacity(Int(tokens[list].count))
                // The page's images share the body's bytes and one attribute list; they are
                // given the finished list at the end (an image holding it while it still grew
                // would copy it on the next append).
                var page = ItemImage.Page()
                var t = list + 1
                for _ in 0..<tokens[list].count {
                    records!.append(StreamRecord(tape, t, &page))
                    t = Int(tokens[t].next)
                }
                if !page.attributes.isEmpty {
                    for k in records!.indices {
                        records![k].newImage?.share(body, page.attributes)
                        records![k].oldImage?.share(body, page.attributes)
                    }
                }
            }
            return (records, tape.string(tape.member(0, "NextShardIterator")))
        }
    }
}

extension StreamRecord {
    init(_ tape: Tape, _ record: Int, _ page: inout ItemImage.Page) {
        guard tape.tokens[record].kind == .object else { return }
        eventName = tape.string(tape.member(record, "eventName"))
        guard let d = tape.member(record, "dynamodb") else { return }
        hasDynamoDB = true
        sequenceNumber = tape.string(tape.member(d, "SequenceNumber"))
        if let t = tape.member(d, "ApproximateCreationDateTime"),
            tape.tokens[t].kind == .integer || tape.tokens[t].kind == .number
        {
            time = Double(tape.text(t))
        }
        if let keys = tape.member(d, "Keys") {
            keyHem = tape.member(keys, "hem").flatMap { tape.string(tape.member($0, "S")) }
            keyVupID = tape.member(keys, "vup_id").flatMap { tape.string(tape.member($0, "S")) }
        }
        newImage = tape.member(d, "NewImage").flatMap { ItemImage.read(tape, $0, &page) }
        oldImage = tape.member(d, "OldImage").flatMap { ItemImage.read(tape, $0, &page) }
    }
}

/// An item image (NewImage or OldImage): its attributes sorted by name, each value kept as its
/// canonical JSON text (sorted keys, compact: what `JSON.serialized()` gives), so comparing two
/// values is comparing bytes and a PII hash is over the same bytes as before. An image read from
/// a page whose values are already canonical on the wire (compact `{"S":"text"}`, the usual
/// case) copies nothing: it points into the page's body and the page's one attribute list; any
/// other image has a buffer and a list of its own. `detached()` gives an image its own storage
/// before it is held (a held image must not keep its whole page alive).
public struct ItemImage: Sendable {
    struct Attribute: Sendable {
        var name: Range<Int32>
        var value: Range<Int32>
        /// The value is `{"S":"text"}` whose text needed no escaping (so the bytes are the text).
        var plainString: Bool
    }
    /// The bytes the attributes' ranges point into.
    var bytes: [UInt8] = []
    /// The list this image's attributes sit in, at `span`.
    var list: [Attribute] = []
    var span: Range<Int32> = 0..<0
    /// `bytes` and `list` are a page's (see `detached()`).
    var shared = false
    /// Where the attributes the detector reads by name sit (`Known`), found once per image: a
    /// search by name per use compared names over and over (several per record and event).
    var known = KnownIndexes()

    /// The attributes the detector and the reader look up by name.
    public enum Known: Int, CaseIterable, Sendable {
        case hem, vupID, previousVupID, updatedAt
        var name: StaticString {
            switch self {
            case .hem: "hem"
            case .vupID: "vup_id"
            case .previousVupID: "previous_vup_id"
            case .updatedAt: "updated_at"
            }
        }
    }
    /// Attribute index of each `Known` name, -1 when absent.
    struct KnownIndexes: Sendable {
        var hem: Int32 = -1, vupID: Int32 = -1, previousVupID: Int32 = -1, updatedAt: Int32 = -1
        subscript(_ k: Known) -> Int32 {
            get {
                switch k {
                case .hem: hem
                case .vupID: vupID
                case .previousVupID: previousVupID
                case .updatedAt: updatedAt
                }
            }
            set {
                switch k {
                case .hem: hem = newValue
                case .vupID: vupID = newValue
                case .previousVupID: previousVupID = newValue
                case .updatedAt: updatedAt = newValue
                }
            }
        }
    }

    /// Where the `Known` attributes sit among `list[span]` (one pass, after they are sorted).
    static func knownIndexes(
        _ span: Range<Int32>, _ b: UnsafeBufferPointer<UInt8>, _ list: UnsafeBufferPointer<Attribute>
    ) -> KnownIndexes {
        var known = KnownIndexes()
        for i in 0..<span.count {
            let a = list[Int(span.lowerBound) + i]
            let n = a.name.count
            guard n == 3 || n == 6 || n == 10 || n == 15 else { continue }
            for k in Known.allCases where k.name.utf8CodeUnitCount == n {
                if memcmp(b.baseAddress! + Int(a.name.lowerBound), k.name.utf8Start, n) == 0 { known[k] = Int32(i) }
            }
        }
        return known
    }

    /// A page's attribute list while the page is read.
    struct Page {
        var attributes: [Attribute] = []
    }

    public init() {}

    /// The image's attribute `i` (of `count`, by name).
    @inline(__always)
    func attribute(_ i: Int) -> Attribute { list[Int(span.lowerBound) + i] }

    /// Points a page's image at the page's body and finished attribute list.
    mutating func share(_ body: [UInt8], _ attributes: [Attribute]) {
        guard bytes.isEmpty, list.isEmpty, !span.isEmpty else { return }
        bytes = body
        list = attributes
        shared = true
    }

    /// From the tape, copying nothing when every value is canonical as it stands (one string
    /// member, compact): its attributes go to `page` (sorted by name within their span), its
    /// bytes are the page's (`share` sets them once the page is read). Otherwise an image with
    /// its own storage (`init?(tape, object)`).
    static func read(_ tape: Tape, _ object: Int, _ page: inout Page) -> ItemImage? {
        let tokens = tape.tokens
        guard tokens[object].kind == .object else { return nil }
        let count = Int(tokens[object].count)
        let start = page.attributes.count
        var k = object + 1
        for _ in 0..<count {
            let v = k + 1
            let tv = tokens[v]
            guard tv.kind == .object, tv.count == 1, tokens[v + 2].kind == .string,
                Int(tv.end - tv.start) == 7 + tokens[v + 1].range.count + tokens[v + 2].range.count
            else {
                page.attributes.removeSubrange(start...)
                return ItemImage(tape, object)
            }
            page.attributes.append(
                Attribute(
                    name: tokens[k].start..<tokens[k].end, value: tv.start..<tv.end,
                    plainString: tape.equals(v + 1, "S")))
            k = Int(tokens[v].next)
        }
        var image = ItemImage()
        image.span = Int32(start)..<Int32(page.attributes.count)
        let b = tape.bytes
        if count > 1 { page.attributes[start...].sort { x, y in Self.precedes(x, y, b) } }
        image.known = page.attributes.withUnsafeBufferPointer { Self.knownIndexes(image.span, b, $0) }
        return image
    }

    /// Byte order of two names, as `lexicographicallyPrecedes` gives.
    @inline(__always)
    static func precedes(_ x: Attribute, _ y: Attribute, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        func name(_ a: Attribute) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: b[Int(a.name.lowerBound)..<Int(a.name.upperBound)])
        }
        return compareBytes(name(x), name(y)) < 0
    }

    /// memcmp order, then length: what `lexicographicallyPrecedes` gives for bytes (negative,
    /// zero or positive). For attribute names and values alike.
    @inline(__always)
    static func compareBytes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        let m = min(a.count, b.count)
        let c = m == 0 ? 0 : Int(memcmp(a.baseAddress!, b.baseAddress!, m))
        return c != 0 ? c : a.count - b.count
    }

    /// This image with storage of its own: what the detector holds in the pairing window (a
    /// page's image would keep the page's body and list alive while it waits).
    func detached() -> ItemImage {
        guard shared else { return self }
        var own = ItemImage()
        var size = 0
        for i in 0..<count { size += attribute(i).name.count + attribute(i).value.count }
        own.bytes.reserveCapacity(size)
        own.list.reserveCapacity(count)
        bytes.withUnsafeBufferPointer { b in
            for i in 0..<count {
                let a = attribute(i)
                let nameStart = Int32(own.bytes.count)
                own.bytes.append(
                    contentsOf: UnsafeBufferPointer(rebasing: b[Int(a.name.lowerBound)..<Int(a.name.upperBound)]))
                let valueStart = Int32(own.bytes.count)
                own.bytes.append(
                    contentsOf: UnsafeBufferPointer(rebasing: b[Int(a.value.lowerBound)..<Int(a.value.upperBound)]))
                own.list.append(
                    Attribute(
                        name: nameStart..<valueStart, value: valueStart..<Int32(own.bytes.count),
                        plainString: a.plainString))
            }
        }
        own.span = 0..<Int32(own.list.count)
        own.known = known
        return own
    }

    /// From wire JSON: an image's attribute map.
    public init(_ members: [String: JSON]) {
        bytes.reserveCapacity(members.count * 48)
        list.reserveCapacity(members.count)
        for (name, value) in members {
            var name = name
            name.withUTF8 { n in
                value.serializedBytes().withUnsafeBufferPointer { v in append(name: n, value: v) }
            }
        }
        sortByName()
    }

    /// From the tape: the object at token `object`; values of one string member are written
    /// canonically from the tape (its strings need no escaping), any other shape through JSON.
    init?(_ tape: Tape, _ object: Int) {
        let tokens = tape.tokens
        guard tokens[object].kind == .object else { return nil }
        let count = Int(tokens[object].count)
        bytes.reserveCapacity(Int(tokens[object].end - tokens[object].start))
        list.reserveCapacity(count)
        var k = object + 1
        for _ in 0..<count {
            let v = k + 1
            let name = UnsafeBufferPointer(rebasing: tape.bytes[tokens[k].range])
            if tokens[v].kind == .object, tokens[v].count == 1, tokens[v + 2].kind == .string {
                let start = Int32(bytes.count)
                bytes.append(contentsOf: name)
                let mid = Int32(bytes.count)
                append("{\"")
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: tape.bytes[tokens[v + 1].range]))
                append("\":\"")
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: tape.bytes[tokens[v + 2].range]))
                append("\"}")
                let plain = tape.equals(v + 1, "S")
                list.append(Attribute(name: start..<mid, value: mid..<Int32(bytes.count), plainString: plain))
            } else {
                let raw = Array(tape.bytes[tokens[v].range.lowerBound..<Int(tokens[v].end)])
                let canonical = ((try? JSON.parse(raw)) ?? .null).serializedBytes()
                canonical.withUnsafeBufferPointer { append(name: name, value: $0) }
            }
            k = Int(tokens[v].next)
        }
        sortByName()
    }

    mutating func append(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        let start = Int32(bytes.count)
        bytes.append(contentsOf: name)
        let mid = Int32(bytes.count)
        bytes.append(contentsOf: value)
        let prefix: [UInt8] = [0x7B, 0x22, 0x53, 0x22, 0x3A, 0x22]  // {"S":"
        let plain =
            value.count >= 8 && value.starts(with: prefix) && value[value.count - 2] == 0x22
            && value[value.count - 1] == 0x7D && !value[6..<(value.count - 2)].contains(0x5C)
        list.append(Attribute(name: start..<mid, value: mid..<Int32(bytes.count), plainString: plain))
    }

    /// JSON punctuation appended as it is (an array literal per call was an allocation).
    mutating func append(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Sorts an image's own list by name (the wire order is any order).
    mutating func sortByName() {
        bytes.withUnsafeBufferPointer { b in list.sort { x, y in Self.precedes(x, y, b) } }
        span = 0..<Int32(list.count)
        known = bytes.withUnsafeBufferPointer { b in list.withUnsafeBufferPointer { Self.knownIndexes(span, b, $0) } }
    }

    public var isEmpty: Bool { span.isEmpty }
    public var count: Int { span.count }

    /// The index of `Known` attribute `k`, if present.
    func index(_ k: Known) -> Int? {
        let i = known[k]
        return i < 0 ? nil : Int(i)
    }

    /// The text of `Known` attribute `k` when it is a string (`{"S": ...}`), as `image[name]["S"]`
    /// was (found once per image).
    public func string(_ k: Known) -> String? {
        guard let i = index(k) else { return nil }
        return string(at: i)
    }

    /// `string(k)`, but `known` itself when the text is the same (no new String for a value
    /// the caller holds already, such as a key from the record's `Keys`).
    public func string(_ k: Known, reusing known: String?) -> String? {
        guard let i = index(k) else { return nil }
        if var known, attribute(i).plainString {
            let a = attribute(i)
            let start = Int(a.value.lowerBound + 6)
            let count = Int(a.value.upperBound - 2) - start
            let same = known.withUTF8 { k in
                k.count == count
                    && (count == 0
                        || bytes.withUnsafeBufferPointer { memcmp($0.baseAddress! + start, k.baseAddress!, count) == 0 })
            }
            if same { return known }
        }
        return string(at: i)
    }

    /// The text of plain-string attribute `i` (`attributes[i].plainString`), as bytes.
    func withText<R>(at i: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let a = attribute(i)
        return bytes.withUnsafeBufferPointer { b in
            body(UnsafeBufferPointer(rebasing: b[Int(a.value.lowerBound + 6)..<Int(a.value.upperBound - 2)]))
        }
    }

    func string(at i: Int) -> String? {
        let a = attribute(i)
        if a.plainString {
            return String(decoding: bytes[Int(a.value.lowerBound + 6)..<Int(a.value.upperBound - 2)], as: UTF8.self)
        }
        return value(at: i)["S"]?.stringValue
    }

    /// Attribute `i`'s value as JSON (the slow path for values that are not plain strings).
    func value(at i: Int) -> JSON {
        (try? JSON.parse(Array(valueBytes(at: i)))) ?? .null
    }

    func name(at i: Int) -> ArraySlice<UInt8> {
        let a = attribute(i)
        return bytes[Int(a.name.lowerBound)..<Int(a.name.upperBound)]
    }
    func valueBytes(at i: Int) -> ArraySlice<UInt8> {
        let a = attribute(i)
        return bytes[Int(a.value.lowerBound)..<Int(a.value.upperBound)]
    }
}

extension Tape {
    /// A string token's text; nil for no token or another kind.
    func string(_ t: Int?) -> String? {
        guard let t, tokens[t].kind == .string else { return nil }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[tokens[t].range]), as: UTF8.self)
    }

    func text(_ t: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[tokens[t].range]), as: UTF8.self)
    }
}
