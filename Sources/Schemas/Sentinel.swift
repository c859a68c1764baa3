/// The table's rule for a HEM with no VUP (schemas/table.json's keys; DESIGN.md "The table"):
/// its `vup_id` is the sharded sentinel `UNRESOLVED#` + the hem's first two hex characters, so
/// unresolved items spread over 256 partitions. One home for the rule: the export's row rules,
/// the loader and the change detector all ask here.
public enum Sentinel {
    public static let prefix = "UNRESOLVED#"

    /// The sentinel `vup_id` of `hem`.
    public static func vupID(forHem hem: String) -> String {
        // Hems are validated lowercase hex: two ASCII bytes make a 13-byte small string, built
        // without Character indexing (the loader asks once per row). Anything else takes the
        // general path.
        let utf8 = hem.utf8
        if utf8.count >= 2 {
            let a = utf8[utf8.startIndex]
            let b = utf8[utf8.index(after: utf8.startIndex)]
            if a < 0x80 && b < 0x80 {
                return String(unsafeUninitializedCapacity: 13) { buffer in
                    let prefix: StaticString = "UNRESOLVED#"
                    for i in 0..<11 { buffer[i] = prefix.utf8Start[i] }
                    buffer[11] = a
                    buffer[12] = b
                    return 13
                }
            }
        }
        return prefix + hem.prefix(2)
    }

    /// True when `vupID` is a sentinel (of any hem): the HEM it keys is unresolved.
    public static func isSentinel(_ vupID: String) -> Bool { vupID.utf8.starts(with: prefix.utf8) }
}
