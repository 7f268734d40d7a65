import Foundation

/// Bytes of a Lua string. Lua strings are byte arrays; most are UTF-8 text.
public struct LuaString: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }

    /// The text, with invalid UTF-8 repaired.
    public var string: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { string }

    // The bytes hashed as one buffer (the synthesized hash feeds them one at a time).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// A reference to a Lua value (usually a function) kept in the registry of the state that made it.
/// Only valid with that state; released with `LuaState.release(_:)` or when the state closes.
public struct LuaReference: Hashable, Sendable {
    public let id: Int32
    let stateID: ObjectIdentifier
}

/// A value crossing between Swift and Lua. Integers and floats stay apart as in Lua 5.4.
public enum LuaValue: Hashable, Sendable {
    case `nil`
    case boolean(Bool)
    case integer(Int64)
    case number(Double)
    case string(LuaString)
    /// A table whose keys are exactly 1...n.
    case array([LuaValue])
    /// Any other table (an empty table is an empty `table`).
    case table([LuaValue: LuaValue])
    /// A Lua function, held in the registry of its state. (A reference made by `LuaState.reference(to:)`
    /// travels the same way and reaches Lua as the object it holds.)
    case function(LuaReference)
    /// A Swift function callable from Lua (Swift → Lua only).
    case hostFunction(LuaHostFunction)
    /// A value Swift cannot represent (userdata, thread), by its Lua type name.
    case opaque(String)

    public static func string(_ text: String) -> LuaValue { .string(LuaString(text)) }

    public var isNil: Bool { if case .nil = self { true } else { false } }

    public var stringValue: String? {
        if case .string(let s) = self { return s.string }
        return nil
    }

    /// The value as a Double for integers and floats.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: nil
        }
    }

    public var intValue: Int64? {
        switch self {
        case .integer(let i): i
        case .number(let d) where d.rounded() == d && abs(d) < 9.2e18: Int64(d)
        default: nil
        }
    }

    /// Lua truthiness: everything but nil and false.
    public var isTruthy: Bool {
        switch self {
        case .nil, .boolean(false): false
        default: true
        }
    }

    /// Field access for `.table` values (string keys) and `.array` values (integer keys).
    public subscript(key: String) -> LuaValue {
        if case .table(let dict) = self { return dict[.string(key)] ?? .nil }
        return .nil
    }

    public var arrayValue: [LuaValue]? {
        switch self {
        case .array(let items): items
        case .table(let dict) where dict.isEmpty: []
        default: nil
        }
    }

    public var tableValue: [LuaValue: LuaValue]? {
        switch self {
        case .table(let dict): dict
        case .array(let items):
            Dictionary(uniqueKeysWithValues: items.enumerated().map { (LuaValue.integer(Int64($0.offset + 1)), $0.element) })
        default: nil
        }
    }

    /// Lua's name of the value's type.
    public var typeName: String {
        switch self {
        case .nil: "nil"
        case .boolean: "boolean"
        case .integer, .number: "number"
        case .string: "string"
        case .array, .table: "table"
        case .function, .hostFunction: "function"
        case .opaque(let name): name
        }
    }
}

extension LuaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(LuaString(value)) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    public init(nilLiteral: ()) { self = .nil }
}

/// Arguments a host function receives, with Lua-worded checks
/// (`bad argument #2 to 'rate' (string expected, got nil)`).
public struct LuaArguments: Sendable {
    public let values: [LuaValue]
    public let functionName: String

    public init(_ values: [LuaValue], functionName: String) {
        self.values = values
        self.functionName = functionName
    }

    public var count: Int { values.count }

    public subscript(index: Int) -> LuaValue {
        index < values.count ? values[index] : .nil
    }

    public func string(_ index: Int) throws -> String {
        switch self[index] {
        case .string(let s): return s.string
        case .integer(let i): return String(i)
        case .number(let d): return LuaFormat.number(d)
        default: throw badArgument(index, expected: "string")
        }
    }

    public func number(_ index: Int) throws -> Double {
        switch self[index] {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        case .string(let s): if let d = Double(s.string) { return d }
        default: break
        }
        throw badArgument(index, expected: "number")
    }

    public func table(_ index: Int) throws -> LuaValue {
        switch self[index] {
        case .table, .array: return self[index]
        default: throw badArgument(index, expected: "table")
        }
    }

    public func optionalTable(_ index: Int) throws -> LuaValue? {
        self[index].isNil ? nil : try table(index)
    }

    public func badArgument(_ index: Int, expected: String) -> LuaHostError {
        LuaHostError("bad argument #\(index + 1) to '\(functionName)' (\(expected) expected, got \(self[index].isNil && index >= values.count ? "no value" : self[index].typeName))")
    }

    public func badArgument(_ index: Int, _ message: String) -> LuaHostError {
        LuaHostError("bad argument #\(index + 1) to '\(functionName)' (\(message))")
    }
}

/// Thrown by a host function: becomes a Lua error at the caller's position.
public struct LuaHostError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A Swift function Lua can call. Compared by identity. The body runs only on the thread of the
/// state's owner (a state is never shared), which is why it may capture that owner's state.
public final class LuaHostFunction: Hashable, @unchecked Sendable {
    public let name: String
    enum Body {
        case values((LuaArguments) throws -> [LuaValue])
        case scalar((LuaStackArguments) throws -> LuaValue)
    }
    let body: Body

    /// A host function that receives its arguments converted and returns any number of values.
    public init(_ name: String, _ body: @escaping (LuaArguments) throws -> [LuaValue]) {
        self.name = name
        self.body = .values(body)
    }

    /// A host function for hot paths: it reads only the arguments it needs, straight from the Lua
    /// stack, and returns one value.
    public init(_ name: String, scalar body: @escaping (LuaStackArguments) throws -> LuaValue) {
        self.name = name
        self.body = .scalar(body)
    }

    public static func == (lhs: LuaHostFunction, rhs: LuaHostFunction) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

/// Lua-like text of values, for `vigil eval` and messages.
public enum LuaFormat {
    public static func number(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d == d.rounded(), abs(d) < 1e15 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    /// A Lua table constructor that reads back as the same value; keys sorted for stable output.
    public static func describe(_ value: LuaValue, indent: String = "") -> String {
        switch value {
        case .nil: return "nil"
        case .boolean(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return number(d)
        case .string(let s): return quoted(s.string)
        case .function: return "function"
        case .hostFunction(let f): return "function: builtin \(f.name)"
        case .opaque(let t): return t
        case .array(let items):
            if items.isEmpty { return "{}" }
            let inner = indent + "  "
            let simple = items.allSatisfy { if case .array = $0 { false } else if case .table = $0 { false } else { true } }
            if simple {
                return "{ " + items.map { describe($0) }.joined(separator: ", ") + " }"
            }
            return "{\n" + items.map { inner + describe($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)}"
        case .table(let dict):
            if dict.isEmpty { return "{}" }
            let inner = indent + "  "
            let entries = dict.sorted { keyOrder($0.key) < keyOrder($1.key) }.map { key, value -> String in
                let keyText: String
                if case .string(let s) = key, isIdentifier(s.string) { keyText = s.string } else { keyText = "[\(describe(key))]" }
                return "\(inner)\(keyText) = \(describe(value, indent: inner))"
            }
            return "{\n" + entries.joined(separator: ",\n") + "\n\(indent)}"
        }
    }

    private static func keyOrder(_ key: LuaValue) -> String {
        switch key {
        case .integer(let i): String(format: "0%020lld", i)
        case .string(let s): "1" + s.string
        default: "2" + describe(key)
        }
    }

    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        let keywords: Set<String> = ["and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                                     "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"]
        return !keywords.contains(s) && s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 { out += String(format: "\\%03d", ch.value) } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }
}
