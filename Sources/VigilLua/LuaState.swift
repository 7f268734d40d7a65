import CLua
import Foundation
import Logging
import VigilCore

/// One sandboxed Lua 5.4 state. Not thread-safe: it has exactly one owner (an actor or a serial
/// executor), as DESIGN.md asks. Every call into Lua is protected, runs under the limits of
/// `LuaLimits`, and fails with a `LuaError` that names the script, the line and the limit.
///
/// The standard library is trimmed: base without `dofile`/`loadfile` (and `load` accepts text only),
/// `collectgarbage("count")` only, `string` without `dump`, `table`, `math`, `utf8`, `coroutine`,
/// `os.time/clock/date`; no `io`, `debug` or `package`. `require` finds modules registered with
/// `registerModule` and `.lua` files below the rules folder.
public final class LuaState {
    /// The script's name, used in log lines and messages.
    public let name: String
    public let limits: LuaLimits
    public let rulesDirectory: String?
    /// Where `print` output goes. Defaults to the logger, one line each, with the script's name.
    public var printHandler: (String) -> Void

    /// True after a memory error left the state too full to trust; call `reopen()` and load again.
    public private(set) var needsReset = false

    private var L: OpaquePointer
    private let sandbox: UnsafeMutablePointer<clua_sandbox>
    private var hostBoxes: [ObjectIdentifier: Unmanaged<HostBox>] = [:]
    private var modules: [(String, LuaValue)] = []
    /// Chunk names loaded so far: Lua shortens long ones to `...tail` in messages; we restore them.
    private var chunkNames: Set<String> = []
    private var outputUsed = 0
    private var outputExceeded = false
    private let logger: Logger

    public init(name: String, limits: LuaLimits = .default, rulesDirectory: String? = nil, logger: Logger) throws {
        self.name = name
        self.limits = limits
        self.rulesDirectory = rulesDirectory
        self.logger = logger
        let script = name
        self.printHandler = { line in
            logger.info("script output", metadata: ["script.name": "\(script)", "script.output": "\(line)"])
        }
        sandbox = .allocate(capacity: 1)
        sandbox.initialize(to: clua_sandbox())
        sandbox.pointee.cap = limits.memoryBytes > 0 ? limits.memoryBytes : 0
        guard let state = clua_sandbox_newstate(sandbox) else {
            sandbox.deallocate()
            throw LuaError(kind: .memoryLimit, script: name, line: nil, message: "cannot create a Lua state")
        }
        L = state
        try openSandbox()
    }

    deinit {
        closeState()
        for box in hostBoxes.values { box.release() }
        sandbox.deinitialize(count: 1)
        sandbox.deallocate()
    }

    // MARK: - Public surface

    /// Bytes the state holds now.
    public var memoryUsed: Int { sandbox.pointee.used }

    /// VM instructions the last call ran, counted in whole steps of the count hook (1,000), so a call
    /// shorter than one step reads 0. Zero when the instruction budget is off.
    public var lastCallInstructions: Int {
        let total = sandbox.pointee.budget_total
        return total > 0 ? Int(total - max(sandbox.pointee.budget, 0)) : 0
    }

    /// Compiles `source` (text only) into a function kept in the registry. Syntax errors name
    /// `chunkName:line`.
    public func load(_ source: String, chunkName: String) throws -> LuaReference {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        try pushChunk(source, chunkName: chunkName)
        return unfailing { makeReference(at: -1) }
    }

    /// Compiles and runs `source`; returns what it returns.
    @discardableResult
    public func run(_ source: String, chunkName: String, arguments: [LuaValue] = []) throws -> [LuaValue] {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        unfailing { clua_push_traceback_handler(L) }
        try pushChunk(source, chunkName: chunkName)
        unfailing { arguments.forEach(push) }
        return try protectedCall(arguments: Int32(arguments.count), handler: base + 1)
    }

    /// Reads, compiles and runs a script file; errors name the path.
    @discardableResult
    public func runFile(_ path: String, arguments: [LuaValue] = []) throws -> [LuaValue] {
        let source: String
        do {
            source = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LuaError(kind: .file, script: path, line: nil, message: "cannot read script: \(error.localizedDescription)")
        }
        return try run(source, chunkName: path, arguments: arguments)
    }

    /// Calls a Lua function held by reference.
    @discardableResult
    public func call(_ function: LuaReference, _ arguments: [LuaValue] = []) throws -> [LuaValue] {
        precondition(function.stateID == ObjectIdentifier(self), "a LuaReference is only valid with the state that made it")
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        unfailing {
            clua_push_traceback_handler(L)
            lua_rawgeti(L, clua_registryindex(), lua_Integer(function.id))
            arguments.forEach(push)
        }
        return try protectedCall(arguments: Int32(arguments.count), handler: base + 1)
    }

    /// Keeps `value` (converted to Lua) in the registry and returns a reference to it. Passing the
    /// reference back as `.function(reference)` hands Lua that same object, whatever its type: a table
    /// made once can be reused across calls. Release it with `release(_:)`.
    public func reference(to value: LuaValue) -> LuaReference {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        return unfailing {
            push(value)
            return makeReference(at: -1)
        }
    }

    /// Calls the global function `name`.
    @discardableResult
    public func call(global name: String, _ arguments: [LuaValue] = []) throws -> [LuaValue] {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        unfailing {
            clua_push_traceback_handler(L)
            clua_pushglobaltable(L)
            lua_pushstring(L, name)
            lua_rawget(L, -2)
            clua_remove(L, -2)
            arguments.forEach(push)
        }
        return try protectedCall(arguments: Int32(arguments.count), handler: base + 1)
    }

    /// Sets a global variable (raw, no metamethods).
    public func setGlobal(_ name: String, _ value: LuaValue) {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        unfailing {
            clua_pushglobaltable(L)
            lua_pushstring(L, name)
            push(value)
            lua_rawset(L, -3)
        }
    }

    /// Reads a global variable (raw). Functions come back as references.
    public func global(_ name: String) -> LuaValue {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        return unfailing {
            clua_pushglobaltable(L)
            lua_pushstring(L, name)
            lua_rawget(L, -2)
            return value(at: -1)
        }
    }

    /// Makes `require(name)` return `value` (Vigil's own modules, such as `vigil`).
    public func registerModule(_ name: String, _ value: LuaValue) {
        modules.removeAll { $0.0 == name }
        modules.append((name, value))
        installModule(name, value)
    }

    /// Lets go of a reference made by `load` or by converting a function.
    public func release(_ reference: LuaReference) {
        guard reference.stateID == ObjectIdentifier(self) else { return }
        luaL_unref(L, clua_registryindex(), reference.id)
    }

    /// Replaces the state with a fresh one (same limits, same registered modules). References and
    /// globals of the old state are gone: the owner loads its script again.
    public func reopen() throws {
        closeState()
        sandbox.pointee = clua_sandbox()
        sandbox.pointee.cap = limits.memoryBytes > 0 ? limits.memoryBytes : 0
        guard let state = clua_sandbox_newstate(sandbox) else {
            throw LuaError(kind: .memoryLimit, script: name, line: nil, message: "cannot create a Lua state")
        }
        L = state
        needsReset = false
        try openSandbox()
        for (name, value) in modules { installModule(name, value) }
    }

    // MARK: - Sandbox setup

    private func closeState() {
        // Finalizers run on close: bound them like any call.
        clua_sandbox_arm(L, Int64(limits.instructions), limits.deadlineMilliseconds, Int32(limits.callDepth))
        sandbox.pointee.host_depth += 1
        lua_close(L)
    }

    private func openSandbox() throws {
        unfailing {
            for library in ["_G", "string", "table", "math", "utf8", "coroutine", "os"] {
                clua_open_library(L, library)
            }
        }
        let write = LuaHostFunction("print") { [unowned self] arguments in
            let line = try arguments.string(0)
            self.outputUsed += line.utf8.count + 1
            if self.outputUsed > self.limits.outputBytes {
                self.outputExceeded = true
                return [.string("output limit exceeded (\(self.limits.outputBytes) bytes of print output per call)")]
            }
            self.printHandler(line)
            return []
        }
        let findModule = LuaHostFunction("require") { [unowned self] arguments in
            let module = try arguments.string(0)
            switch self.findModule(module) {
            case .success(let (source, chunk)): return [.string(source), .string(chunk)]
            case .failure(let message): return [.nil, .string(message.message)]
            }
        }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        unfailing {
            clua_install_bounded_patterns(L)
            clua_push_traceback_handler(L)
        }
        try pushChunk(LuaSandboxPrelude.source, chunkName: "=" + LuaState.preludeChunk)
        unfailing {
            lua_getfield(L, clua_registryindex(), "_LOADED")
            push(.hostFunction(write))
            push(.hostFunction(findModule))
        }
        _ = try protectedCall(arguments: 3, handler: base + 1)
    }

    private func installModule(_ name: String, _ value: LuaValue) {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        unfailing {
            lua_getfield(L, clua_registryindex(), "_LOADED")
            push(value)
            lua_setfield(L, -2, name)
        }
    }

    private struct ModuleNotFound: Error { let message: String }

    /// `a.b` → `<rules>/a/b.lua`, only when the resolved file lies inside the rules folder.
    private func findModule(_ module: String) -> Result<(String, String), ModuleNotFound> {
        let rules = rulesDirectory ?? "(none configured)"
        let refusal = "module '\(module)' not found: require loads only Vigil's own modules and .lua files under the rules folder \(rules)"
        guard let rulesDirectory,
              !module.isEmpty,
              module.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }),
              !module.hasPrefix("."), !module.contains("..")
        else { return .failure(ModuleNotFound(message: refusal)) }
        let relative = module.replacingOccurrences(of: ".", with: "/") + ".lua"
        let root = URL(fileURLWithPath: rulesDirectory).standardizedFileURL.resolvingSymlinksInPath().path
        let candidate = URL(fileURLWithPath: rulesDirectory).appendingPathComponent(relative)
            .standardizedFileURL.resolvingSymlinksInPath().path
        guard candidate.hasPrefix(root + "/"), FileManager.default.fileExists(atPath: candidate) else {
            return .failure(ModuleNotFound(message: refusal))
        }
        guard let source = try? String(contentsOfFile: candidate, encoding: .utf8) else {
            return .failure(ModuleNotFound(message: "module '\(module)': cannot read \(candidate)"))
        }
        let shown = (rulesDirectory as NSString).appendingPathComponent(relative)
        return .success((source, "@" + shown))
    }

    // MARK: - Calls

    /// Runs `body` with allocations that never fail, so no Lua error can longjmp through Swift
    /// frames. The cap is enforced again at the next allocation inside a protected call.
    private func unfailing<T>(_ body: () throws -> T) rethrows -> T {
        sandbox.pointee.host_depth += 1
        defer { sandbox.pointee.host_depth -= 1 }
        return try body()
    }

    private func pushChunk(_ source: String, chunkName: String) throws {
        let chunk = chunkName.hasPrefix("=") || chunkName.hasPrefix("@") ? chunkName : "@" + chunkName
        chunkNames.insert(String(chunk.dropFirst()))
        let status = unfailing {
            var bytes = Array(source.utf8)
            return bytes.withUnsafeMutableBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(buffer.count, 1)) {
                    clua_loadbuffer(L, $0, buffer.count, chunk)
                }
            }
        }
        guard status == LUA_OK else {
            let text = unfailing { string(at: -1) } ?? "cannot load chunk"
            lua_settop(L, -2)
            throw makeError(kind: .syntax, text: text)
        }
    }

    /// Calls the function below `arguments` on the stack with the handler at `handler`.
    private func protectedCall(arguments: Int32, handler: Int32) throws -> [LuaValue] {
        outputUsed = 0
        outputExceeded = false
        clua_sandbox_arm(L, Int64(limits.instructions), limits.deadlineMilliseconds, Int32(limits.callDepth))
        let status = clua_pcall(L, arguments, LUA_MULTRET, handler)
        guard status == LUA_OK else {
            let text = unfailing { string(at: -1) } ?? "unknown error"
            throw errorForStatus(status, text: text)
        }
        let crossed = Int(clua_sandbox_crossed(L))
        if crossed != CLUA_LIMIT_NONE {
            // The script caught the limit's error (pcall, coroutine.resume) and returned: the call failed all the same.
            lua_settop(L, handler)
            let text = switch crossed {
            case CLUA_LIMIT_MEMORY: "not enough memory"
            case CLUA_LIMIT_INSTRUCTIONS: "instruction limit exceeded (\(limits.instructions) instructions per call; the script caught the error and went on)"
            case CLUA_LIMIT_DEADLINE: "deadline exceeded (\(limits.deadlineMilliseconds) ms per call; the script caught the error and went on)"
            default: "call depth limit exceeded (\(limits.callDepth) nested calls; the script caught the error and went on)"
            }
            throw errorForStatus(crossed == CLUA_LIMIT_MEMORY ? LUA_ERRMEM : LUA_ERRRUN, text: text)
        }
        let top = lua_gettop(L)
        guard top > handler else { return [] }
        return unfailing { (handler + 1...top).map { value(at: $0) } }
    }

    private func errorForStatus(_ status: Int32, text: String) -> LuaError {
        let hit = Int(sandbox.pointee.limit_hit)
        if status == LUA_ERRMEM || (hit == CLUA_LIMIT_MEMORY && text.contains("not enough memory")) {
            var error = makeError(kind: .memoryLimit, text: text)
            error.message = "memory limit exceeded (\(limits.memoryBytes) bytes per state)"
            if error.line == nil, sandbox.pointee.where_line > 0 {
                error.script = String(cString: clua_sandbox_where_source(sandbox))
                error.line = Int(sandbox.pointee.where_line)
            }
            unfailing { clua_gc_collect(L) }
            if limits.memoryBytes > 0 && memoryUsed > limits.memoryBytes / 4 * 3 { needsReset = true }
            return error
        }
        if outputExceeded { return makeError(kind: .outputLimit, text: text) }
        if hit == CLUA_LIMIT_INSTRUCTIONS { return makeError(kind: .instructionLimit, text: text) }
        if hit == CLUA_LIMIT_DEADLINE { return makeError(kind: .deadline, text: text) }
        if hit == CLUA_LIMIT_CALL_DEPTH || text.contains("stack overflow") {
            return makeError(kind: .callDepthLimit, text: text)
        }
        return makeError(kind: .runtime, text: text)
    }

    /// Splits `file:line: message\nstack traceback:…` into its parts.
    private func makeError(kind: LuaError.Kind, text: String) -> LuaError {
        var message = text
        var traceback: String?
        if let range = text.range(of: "\nstack traceback:") {
            message = String(text[..<range.lowerBound])
            traceback = String(text[text.index(after: range.lowerBound)...])
        }
        var script: String?
        var line: Int?
        if let (file, number, rest) = LuaState.splitPosition(message) {
            script = file
            line = number
            message = rest
        } else if let traceback {
            // No position in the message (an error object, or level 0): the first Lua frame.
            for frame in traceback.split(separator: "\n").dropFirst() {
                let trimmed = frame.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("[C]") { continue }
                if let (file, number, _) = LuaState.splitPosition(trimmed) {
                    script = file
                    line = number
                    break
                }
            }
        }
        // Errors raised inside the sandbox's own Lua (refused functions, require) belong to the
        // user's frame below it; after a tail call that frame is gone and only the script is known.
        if script == LuaState.preludeChunk {
            script = nil
            line = nil
            for frame in (traceback ?? "").split(separator: "\n").dropFirst() {
                let trimmed = frame.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("[C]") || trimmed.hasPrefix(LuaState.preludeChunk) { continue }
                if let (file, number, _) = LuaState.splitPosition(trimmed) {
                    script = file
                    line = number
                    break
                }
            }
        }
        return LuaError(kind: kind, script: restoreChunkName(script ?? name), line: line, message: message, traceback: traceback)
    }

    static let preludeChunk = "vigil.sandbox"

    private func restoreChunkName(_ shown: String) -> String {
        guard shown.hasPrefix("...") else { return shown }
        let tail = shown.dropFirst(3)
        return chunkNames.first { $0.hasSuffix(tail) } ?? shown
    }

    /// `path:12: rest` → (path, 12, rest).
    static func splitPosition(_ text: String) -> (String, Int, String)? {
        var search = text.startIndex
        while let colon = text[search...].firstIndex(of: ":") {
            var cursor = text.index(after: colon)
            let digitsStart = cursor
            while cursor < text.endIndex, text[cursor].isASCII, text[cursor].isNumber { cursor = text.index(after: cursor) }
            if cursor > digitsStart, cursor < text.endIndex, text[cursor] == ":", colon > text.startIndex,
               let number = Int(text[digitsStart..<cursor]) {
                var restStart = text.index(after: cursor)
                if restStart < text.endIndex, text[restStart] == " " { restStart = text.index(after: restStart) }
                return (String(text[..<colon]), number, String(text[restStart...]))
            }
            search = text.index(after: colon)
        }
        return nil
    }

    // MARK: - Values

    private func string(at index: Int32) -> String? {
        var length = 0
        guard lua_type(L, index) == LUA_TSTRING, let pointer = lua_tolstring(L, index, &length) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    private func makeReference(at index: Int32) -> LuaReference {
        lua_pushvalue(L, index)
        return LuaReference(id: luaL_ref(L, clua_registryindex()), stateID: ObjectIdentifier(self))
    }

    /// Converts the value at `index`. Functions become references; tables become arrays when their
    /// keys are exactly 1...n.
    /// The most values one conversion to Swift walks (a returned table, a host function's arguments): a table
    /// that holds itself, or a wide table nested 64 deep, would otherwise take forever and all memory.
    public static let conversionBudget = 200_000

    /// The value at `index` as Swift sees it. Tables are walked with a budget of `conversionBudget` values in all;
    /// a table met again on its own path is a cycle and becomes `.opaque("table (cycle)")`.
    func value(at index: Int32) -> LuaValue {
        var walk = Walk()
        return value(at: index, depth: 0, walk: &walk)
    }

    private struct Walk {
        var left = LuaState.conversionBudget
        var path: Set<UnsafeRawPointer> = []
    }

    private func value(at index: Int32, depth: Int, walk: inout Walk) -> LuaValue {
        walk.left -= 1
        guard walk.left >= 0 else { return .opaque("(more than \(Self.conversionBudget) values; the rest is left out)") }
        switch lua_type(L, index) {
        case LUA_TNIL, LUA_TNONE:
            return .nil
        case LUA_TBOOLEAN:
            return .boolean(lua_toboolean(L, index) != 0)
        case LUA_TNUMBER:
            return clua_isinteger(L, index) != 0 ? .integer(clua_tointeger(L, index)) : .number(clua_tonumber(L, index))
        case LUA_TSTRING:
            var length = 0
            let pointer = lua_tolstring(L, index, &length)!
            return .string(LuaString(bytes: Array(UnsafeRawBufferPointer(start: pointer, count: length))))
        case LUA_TTABLE:
            guard depth < 64, lua_checkstack(L, 4) != 0 else { return .opaque("table (nested too deeply)") }
            guard let identity = lua_topointer(L, index) else { return .opaque("table") }
            guard walk.path.insert(identity).inserted else { return .opaque("table (cycle)") }
            defer { walk.path.remove(identity) }
            let absolute = lua_absindex(L, index)
            var dict: [LuaValue: LuaValue] = [:]
            var maxInteger: Int64 = 0
            var integerKeys = 0
            lua_pushnil(L)
            while lua_next(L, absolute) != 0 {
                guard walk.left > 0 else {
                    lua_settop(L, -3)
                    dict[.string(LuaString("…"))] = .opaque("(more than \(Self.conversionBudget) values; the rest is left out)")
                    break
                }
                let key = value(at: -2, depth: depth + 1, walk: &walk)
                let item = value(at: -1, depth: depth + 1, walk: &walk)
                lua_settop(L, -2)
                if case .integer(let i) = key, i >= 1 {
                    integerKeys += 1
                    maxInteger = max(maxInteger, i)
                }
                dict[key] = item
            }
            if integerKeys > 0, integerKeys == dict.count, maxInteger == Int64(dict.count) {
                return .array((1...maxInteger).map { dict[.integer($0)]! })
            }
            return .table(dict)
        case LUA_TFUNCTION:
            return .function(makeReference(at: index))
        default:
            return .opaque(String(cString: lua_typename(L, lua_type(L, index))))
        }
    }

    func push(_ value: LuaValue) {
        switch value {
        case .nil, .opaque:
            lua_pushnil(L)
        case .boolean(let b):
            lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i):
            lua_pushinteger(L, i)
        case .number(let d):
            lua_pushnumber(L, d)
        case .string(let s):
            s.bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
            }
        case .array(let items):
            lua_createtable(L, Int32(items.count), 0)
            for (offset, item) in items.enumerated() {
                push(item)
                lua_rawseti(L, -2, lua_Integer(offset + 1))
            }
        case .table(let dict):
            lua_createtable(L, 0, Int32(dict.count))
            for (key, item) in dict {
                if key.isNil { continue }
                if case .number(let d) = key, d.isNaN { continue }
                push(key)
                push(item)
                lua_rawset(L, -3)
            }
        case .function(let reference):
            if reference.stateID == ObjectIdentifier(self) {
                lua_rawgeti(L, clua_registryindex(), lua_Integer(reference.id))
            } else {
                lua_pushnil(L)
            }
        case .hostFunction(let function):
            let box: Unmanaged<HostBox>
            if let existing = hostBoxes[ObjectIdentifier(function)] {
                box = existing
            } else {
                box = Unmanaged.passRetained(HostBox(function: function, state: self))
                hostBoxes[ObjectIdentifier(function)] = box
            }
            clua_push_host_function(L, luaHostDispatch, box.toOpaque())
        }
    }

    /// Called by the C trampoline: arguments in, results out, never a longjmp.
    fileprivate func invoke(_ function: LuaHostFunction, on thread: OpaquePointer) -> Int32 {
        // A host function may run on a coroutine's thread: read and push on that thread.
        let saved = L
        L = thread
        defer { L = saved }
        let count = lua_gettop(thread)
        do {
            switch function.body {
            case .scalar(let body):
                push(try body(LuaStackArguments(thread: thread, count: Int(count), functionName: function.name)))
                return 1
            case .values(let body):
                var values: [LuaValue] = []
                values.reserveCapacity(Int(count))
                if count > 0 {
                    for index in 1...count { values.append(value(at: index)) }
                }
                let results = try body(LuaArguments(values, functionName: function.name))
                for result in results { push(result) }
                return Int32(results.count)
            }
        } catch let error as LuaHostError {
            lua_pushstring(thread, error.message)
            return -1
        } catch {
            lua_pushstring(thread, "\(error)")
            return -1
        }
    }
}

/// The arguments of a `scalar` host function, read from the Lua stack only when asked for. Valid
/// only during the call.
public struct LuaStackArguments {
    let thread: OpaquePointer
    public let count: Int
    public let functionName: String

    private func typeName(_ index: Int) -> String {
        index >= count ? "no value" : String(cString: lua_typename(thread, lua_type(thread, Int32(index + 1))))
    }

    private func bad(_ index: Int, _ expected: String) -> LuaHostError {
        LuaHostError("bad argument #\(index + 1) to '\(functionName)' (\(expected) expected, got \(typeName(index)))")
    }

    public func string(_ index: Int) throws -> String {
        guard index < count, lua_type(thread, Int32(index + 1)) == LUA_TSTRING else { throw bad(index, "string") }
        var length = 0
        let pointer = lua_tolstring(thread, Int32(index + 1), &length)!
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    public func number(_ index: Int) throws -> Double {
        var isNumber: Int32 = 0
        let value = index < count ? lua_tonumberx(thread, Int32(index + 1), &isNumber) : 0
        guard isNumber != 0 else { throw bad(index, "number") }
        return value
    }
}

/// Keeps a host function and its state reachable from C.
private final class HostBox {
    let function: LuaHostFunction
    unowned let state: LuaState

    init(function: LuaHostFunction, state: LuaState) {
        self.function = function
        self.state = state
    }
}

private let luaHostDispatch: clua_host_fn = { thread, context in
    let box = Unmanaged<HostBox>.fromOpaque(context!).takeUnretainedValue()
    return box.state.invoke(box.function, on: thread!)
}
