/// Just enough XML reading for AWS answers (S3 listings, query-protocol results, error
/// bodies): the text of named elements, without namespaces or attributes.
public enum XMLText {
    /// Decoded text of the first `<tag>...</tag>` (attributes on the open tag allowed).
    public static func firstValue(of tag: String, in xml: String) -> String? {
        elements(tag, in: Substring(xml)).first.map { decodeEntities(String($0)) }
    }

    /// Decoded text of every `<tag>...</tag>`, in document order.
    public static func values(of tag: String, in xml: String) -> [String] {
        elements(tag, in: Substring(xml)).map { decodeEntities(String($0)) }
    }

    /// Raw inner XML of every `<tag>...</tag>`, for reading nested elements.
    public static func blocks(of tag: String, in xml: String) -> [String] {
        elements(tag, in: Substring(xml)).map(String.init)
    }

    static func elements(_ tag: String, in xml: Substring) -> [Substring] {
        var found: [Substring] = []
        var rest = xml
        let open = "<" + tag
        let close = "</" + tag + ">"
        while let start = rest.range(of: open) {
            let afterName = start.upperBound
            guard afterName < rest.endIndex else { break }
            let next = rest[afterName]
            if next != ">" && next != " " && next != "/" {
                rest = rest[afterName...]
                continue
            }
            guard let gt = rest[afterName...].firstIndex(of: ">") else { break }
            if rest[rest.index(before: gt)] == "/" {  // <Tag/>
                found.append(rest[gt..<gt])
                rest = rest[rest.index(after: gt)...]
                continue
            }
            let contentStart = rest.index(after: gt)
            guard let end = rest[contentStart...].range(of: close) else { break }
            found.append(rest[contentStart..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return found
    }

    public static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let ch = text[i]
            if ch == "&", let semi = text[i...].firstIndex(of: ";"), text.distance(from: i, to: semi) <= 10 {
                let entity = text[text.index(after: i)..<semi]
                var replacement: String?
                switch entity {
                case "amp": replacement = "&"
                case "lt": replacement = "<"
                case "gt": replacement = ">"
                case "quot": replacement = "\""
                case "apos": replacement = "'"
                default:
                    if entity.hasPrefix("#x") || entity.hasPrefix("#X"), let v = UInt32(entity.dropFirst(2), radix: 16),
                        let scalar = Unicode.Scalar(v)
                    {
                        replacement = String(Character(scalar))
                    } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let scalar = Unicode.Scalar(v) {
                        replacement = String(Character(scalar))
                    }
                }
                if let replacement {
                    out += replacement
                    i = text.index(after: semi)
                    continue
                }
            }
            out.append(ch)
            i = text.index(after: i)
        }
        return out
    }

    /// Escapes text for inclusion in XML.
    public static func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(ch)
            }
        }
        return out
    }
}
