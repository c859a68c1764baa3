/// Expiry times of held move halves, earliest first: the detector settles due halves in
/// O(log n) each instead of scanning everything it holds per record. A stale entry (its token
/// no longer current) is skipped when it comes up, or dropped by `keep(where:)` in bulk.
struct MinHeap: Sendable {
    struct Entry: Sendable {
        var time: Double
        var token: Int
        var hem: String
    }
    private var items: [Entry] = []

    var count: Int { items.count }
    var peek: Entry? { items.first }

    static func before(_ a: Entry, _ b: Entry) -> Bool { a.time != b.time ? a.time < b.time : a.token < b.token }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, Self.before(items[l], items[m]) { m = l }
            if r < items.count, Self.before(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }

    /// Keeps only the entries `live` accepts, in heap order again (a sorted array is a heap).
    mutating func keep(where live: (Entry) -> Bool) {
        items.removeAll { !live($0) }
        items.sort(by: Self.before)
    }
}
