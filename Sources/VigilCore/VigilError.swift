/// An error that reaches a person: what went wrong, where, and how to fix it.
public struct VigilError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        public static let invalidConfiguration = Code(raw: "invalid configuration")
        public static let invalidQuery = Code(raw: "invalid query")
        public static let io = Code(raw: "i/o error")
        public static let parse = Code(raw: "parse error")
        public static let timeout = Code(raw: "timeout")
        public static let unavailable = Code(raw: "unavailable")
    }

    public var code: Code
    public var message: String
    /// A file, `file:line` or component the error is about, when there is one.
    public var location: String?
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, location: String? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.cause = cause
    }

    public var description: String {
        var text = location.map { "\($0): \(message)" } ?? message
        if let cause { text += " (\(cause))" }
        return text
    }
}
