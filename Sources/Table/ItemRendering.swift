import JSON

/// Turns DynamoDB items (AttributeValue JSON) into plain JSON for people and scripts, with
/// PII attributes replaced by "<redacted>".
public enum ItemRendering {
    public static let redacted = "<redacted>"

    /// `{"hem":{"S":"ab"},"n":{"N":"1"}}` → `{"hem":"ab","n":1}`; attributes named in
    /// `redacting` become "<redacted>" whatever their type.
    public static func plain(_ item: JSON, redacting: Set<String>) -> JSON {
        guard case .object(let attributes) = item else { return item }
        var out: [String: JSON] = [:]
        for (name, value) in attributes {
            out[name] = redacting.contains(name) ? .string(redacted) : plain(attribute: value)
        }
        return .object(out)
    }

    static func plain(attribute: JSON) -> JSON {
        guard case .object(let typed) = attribute, typed.count == 1, let (type, value) = typed.first else {
            return attribute
        }
        switch type {
        case "S", "B": return value
        case "N": return value.stringValue.map { JSON.number($0) } ?? value
        case "BOOL": return value
        case "NULL": return .null
        case "M":
            guard case .object(let members) = value else { return value }
            return .object(members.mapValues { plain(attribute: $0) })
        case "L":
            guard case .array(let items) = value else { return value }
            return .array(items.map { plain(attribute: $0) })
        case "SS", "BS": return value
        case "NS": return .array((value.arrayValue ?? []).map { $0.stringValue.map { JSON.number($0) } ?? $0 })
        default: return attribute
        }
    }
}
