/// A failed Lua load or call: what kind, which script and line, the message and a traceback.
public struct LuaError: Error, Sendable, CustomStringConvertible {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        public static let syntax = Kind(raw: "syntax error")
        public static let runtime = Kind(raw: "runtime error")
        public static let memoryLimit = Kind(raw: "memory limit")
        public static let instructionLimit = Kind(raw: "instruction limit")
        public static let deadline = Kind(raw: "deadline")
        public static let outputLimit = Kind(raw: "output limit")
        public static let callDepthLimit = Kind(raw: "call depth limit")
        public static let file = Kind(raw: "file error")
    }

    public var kind: Kind
    /// The script the error is in (its chunk name without Lua's `@`), when known.
    public var script: String?
    public var line: Int?
    /// The message without its `file:line:` prefix.
    public var message: String
    public var traceback: String?

    public init(kind: Kind, script: String?, line: Int?, message: String, traceback: String? = nil) {
        self.kind = kind
        self.script = script
        self.line = line
        self.message = message
        self.traceback = traceback
    }

    /// `rules/gpu.lua:12: attempt to index a nil value`.
    public var description: String {
        var where_ = ""
        if let script { where_ = line.map { "\(script):\($0): " } ?? "\(script): " }
        return where_ + message
    }

    /// The description followed by the traceback.
    public var fullDescription: String {
        guard let traceback, !traceback.isEmpty else { return description }
        return description + "\n" + traceback
    }
}
