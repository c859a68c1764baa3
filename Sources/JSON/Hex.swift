/// Lowercase hexadecimal, written in place: the one home for it (SigV4's hashes and signatures,
/// event ids, PII hashes, JSON's `\u00XX` escapes).
public enum Hex {
    public static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes the hex of `bytes` at `out` (two bytes each).
    @inlinable
    public static func write(_ bytes: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>) {
        digits.withUnsafeBufferPointer { d in
            for (i, b) in bytes.enumerated() {
                out[2 * i] = d[Int(b >> 4)]
                out[2 * i + 1] = d[Int(b & 15)]
            }
        }
    }

    /// The hex of `bytes`, written straight into the string's storage (no array on the way).
    /// (`digest.withUnsafeBytes(Hex.string)`).
    public static func string(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            if let base = out.baseAddress { write(bytes, to: base) }
            return bytes.count * 2
        }
    }
}
