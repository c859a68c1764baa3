/// A JSON value. Numbers keep their source text so that 64-bit integers and DynamoDB's
/// arbitrary-precision numbers survive a round trip unchanged.
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public static func int(_ value: Int) -> JSON { .number(String(value)) }
    public static func double(_ value: Double) -> JSON {
        if value.rounded() == value, abs(value) < 1e15 { return .number(String(Int64(value))) }
        return .number(String(value))
    }

    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public subscript(index: Int) -> JSON? {
        if case .array(let items) = self, items.indices.contains(index) { return items[index] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var intValue: Int? {
        if case .number(let text) = self { return Int(text) ?? Double(text).flatMap { Int(exactly: $0) } }
        return nil
    }
    public var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }
    public var arrayValue: [JSON]? {
        if case .array(let items) = self { return items }
        return nil
    }
    public var objectValue: [String: JSON]? {
        if case .object(let members) = self { return members }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSON {
    /// The value's JSON Schema type name; a number without a fraction or exponent is "integer".
    public var schemaTypeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number(let raw): return raw.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? "number" : "integer"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSON: CustomStringConvertible {
    /// Compact JSON text with object keys sorted, so equal values print identically.
    public var description: String { serialized() }

    public func serialized() -> String {
        var writer = JSONWriter()
        writer.value(self)
        return writer.string
    }

    public func serializedBytes() -> [UInt8] {
        var writer = JSONWriter()
        writer.value(self)
        return writer.bytes
    }

    public static func parse(_ text: String) throws(JSONError) -> JSON {
        try JSONParser.parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSON {
        try JSONParser.parse(bytes)
    }
}

/// Why a text is not JSON, with the byte offset where parsing stopped.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}
