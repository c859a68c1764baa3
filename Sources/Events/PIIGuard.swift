import Foundation

/// The last check on every event that leaves the process: a string that looks like an email
/// address anywhere in the encoded event stops it. Works on the bytes (no parsing), about a
/// byte comparison per byte, so it can sit on the hot path. It never returns or prints what it
/// found: callers name the event by position only.
public enum PIIGuard {
    /// True when `bytes` hold `local@domain.tld`: a local-part character before an `@`, and after
    /// it a domain of letters, digits, hyphens and dots with at least one dot and a TLD of two or
    /// more letters.
    public static func containsEmailAddress(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { containsEmailAddress($0) }
    }

    public static func containsEmailAddress(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard b.count > 4, let base = b.baseAddress else { return false }
        let start = UnsafeRawPointer(base)
        var i = 1
        // memchr finds each `@` (vectorised): an event rarely holds one, and the byte loop that
        // looked at every byte was a few per cent of the stream reader's CPU.
        while i < b.count - 3 {
            guard let at = memchr(start + i, Int32(UInt8(ascii: "@")), b.count - 3 - i) else { return false }
            i = start.distance(to: UnsafeRawPointer(at))
            if isLocal(b[i - 1]), domainFollows(b, from: i + 1) { return true }
            i += 1
        }
        return false
    }

    static func isLocal(_ c: UInt8) -> Bool {
        isAlnum(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "%")
            || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
    }

    static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c | 0x20 >= 97 && c | 0x20 <= 122)
    }

    /// A domain: labels of [A-Za-z0-9-] joined by dots, the last one two or more letters.
    static func domainFollows(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        var i = start
        var dots = 0
        var lastLabelLetters = 0
        var labelLength = 0
        while i < b.count {
            let c = b[i]
            if isAlnum(c) || c == UInt8(ascii: "-") {
                labelLength += 1
                lastLabelLetters = (c | 0x20 >= 97 && c | 0x20 <= 122) ? lastLabelLetters + 1 : -1_000
            } else if c == UInt8(ascii: "."), labelLength > 0 {
                dots += 1
                labelLength = 0
                lastLabelLetters = 0
            } else {
                break
            }
            i += 1
        }
        return dots > 0 && labelLength > 0 && lastLabelLetters >= 2
    }
}
