import Foundation
import JSON

/// A DynamoDB attribute value in the wire format's ten types. Numbers stay as their
/// decimal text (DynamoDB numbers have 38 digits of precision).
public indirect enum AttributeValue: Sendable, Hashable {
    case s(String)
    case n(String)
    case b([UInt8])
    case bool(Bool)
    case null
    case m([String: AttributeValue])
    case l([AttributeValue])
    case ss([String])
    case ns([String])
    case bs([[UInt8]])

    /// Decodes `{"S": "x"}`, `{"N": "1"}`, `{"B": "base64"}`, ... Errors never quote values.
    public init(json: JSON) throws {
        guard case .object(let members) = json, members.count == 1, let (type, value) = members.first else {
            throw AttributeValue.invalid("an AttributeValue must be an object with exactly one type key")
        }
        switch type {
        case "S":
            guard let s = value.stringValue else { throw AttributeValue.invalid("S must be a string") }
            self = .s(s)
        case "N":
            guard let n = value.stringValue ?? AttributeValue.numberText(value) else {
                throw AttributeValue.invalid("N must be a string")
            }
            self = .n(n)
        case "B":
            guard let text = value.stringValue, let bytes = AttributeValue.decodeBase64(text) else {
                throw AttributeValue.invalid("B must be a base64 string")
            }
            self = .b(bytes)
        case "BOOL":
            guard let b = value.boolValue else { throw AttributeValue.invalid("BOOL must be true or false") }
            self = .bool(b)
        case "NULL":
            guard value.boolValue == true else { throw AttributeValue.invalid("NULL must be true") }
            self = .null
        case "M":
            guard let members = value.objectValue else { throw AttributeValue.invalid("M must be an object") }
            var map: [String: AttributeValue] = [:]
            map.reserveCapacity(members.count)
            for (k, v) in members { map[k] = try AttributeValue(json: v) }
            self = .m(map)
        case "L":
            guard let items = value.arrayValue else { throw AttributeValue.invalid("L must be an array") }
            self = .l(try items.map(AttributeValue.init(json:)))
        case "SS":
            guard let items = value.arrayValue else { throw AttributeValue.invalid("SS must be an array") }
            self = .ss(try items.map {
                guard let s = $0.stringValue else { throw AttributeValue.invalid("SS members must be strings") }
                return s
            })
        case "NS":
            guard let items = value.arrayValue else { throw AttributeValue.invalid("NS must be an array") }
            self = .ns(try items.map {
                guard let s = $0.stringValue ?? AttributeValue.numberText($0) else {
                    throw AttributeValue.invalid("NS members must be strings")
                }
                return s
            })
        case "BS":
            guard let items = value.arrayValue else { throw AttributeValue.invalid("BS must be an array") }
            self = .bs(try items.map {
                guard let text = $0.stringValue, let bytes = AttributeValue.decodeBase64(text) else {
                    throw AttributeValue.invalid("BS members must be base64 strings")
                }
                return bytes
            })
        default:
            throw AttributeValue.invalid("unknown AttributeValue type '\(type.prefix(16))'")
        }
    }

    /// The wire form as a `JSON` value.
    public var json: JSON {
        switch self {
        case .s(let s): return .object(["S": .string(s)])
        case .n(let n): return .object(["N": .string(n)])
        case .b(let b): return .object(["B": .string(Data(b).base64EncodedString())])
        case .bool(let b): return .object(["BOOL": .bool(b)])
        case .null: return .object(["NULL": .bool(true)])
        case .m(let map): return .object(["M": .object(map.mapValues(\.json))])
        case .l(let items): return .object(["L": .array(items.map(\.json))])
        case .ss(let items): return .object(["SS": .array(items.map(JSON.string))])
        case .ns(let items): return .object(["NS": .array(items.map(JSON.string))])
        case .bs(let items): return .object(["BS": .array(items.map { .string(Data($0).base64EncodedString()) })])
        }
    }

    /// Writes the wire form straight into a writer (the hot path for request bodies).
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        switch self {
        case .s(let s):
            writer.key("S")
            writer.string(s)
        case .n(let n):
            writer.key("N")
            writer.string(n)
        case .b(let b):
            writer.key("B")
            writer.string(Data(b).base64EncodedString())
        case .bool(let b):
            writer.key("BOOL")
            writer.bool(b)
        case .null:
            writer.key("NULL")
            writer.bool(true)
        case .m(let map):
            writer.key("M")
            map.write(to: &writer)
        case .l(let items):
            writer.key("L")
            writer.beginArray()
            for item in items { item.write(to: &writer) }
            writer.endArray()
        case .ss(let items):
            writer.key("SS")
            writer.beginArray()
            for item in items { writer.string(item) }
            writer.endArray()
        case .ns(let items):
            writer.key("NS")
            writer.beginArray()
            for item in items { writer.string(item) }
            writer.endArray()
        case .bs(let items):
            writer.key("BS")
            writer.beginArray()
            for item in items { writer.string(Data(item).base64EncodedString()) }
            writer.endArray()
        }
        writer.endObject()
    }

    /// The string of an S value, else nil.
    public var stringValue: String? {
        if case .s(let s) = self { return s }
        return nil
    }

    static func numberText(_ json: JSON) -> String? {
        if case .number(let text) = json { return text }
        return nil
    }

    static func decodeBase64(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text).map { [UInt8]($0) }
    }

    static func invalid(_ message: String) -> AWSError {
        AWSError(kind: .malformedResponse, code: "InvalidAttributeValue", message: message)
    }
}

/// A DynamoDB item: attribute name to value.
public typealias Item = [String: AttributeValue]

extension Dictionary where Key == String, Value == AttributeValue {
    /// Decodes an item from its wire form (a JSON object of AttributeValues).
    public init(itemJSON json: JSON) throws {
        guard case .object(let members) = json else {
            throw AttributeValue.invalid("an item must be a JSON object")
        }
        var item: [String: AttributeValue] = [:]
        item.reserveCapacity(members.count)
        for (name, value) in members { item[name] = try AttributeValue(json: value) }
        self = item
    }

    /// The item's wire form as a `JSON` object.
    public var itemJSON: JSON { .object(mapValues(\.json)) }

    /// Writes the item's wire form, keys sorted so equal items serialize identically.
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        for name in keys.sorted() {
            writer.key(name)
            self[name]!.write(to: &writer)
        }
        writer.endObject()
    }
}
