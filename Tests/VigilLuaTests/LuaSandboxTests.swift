import Foundation
import Synchronization
import Logging
import Testing
import VigilLua

private func fixtures() throws -> String {
    try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).path
}

private func makeState(_ limits: LuaLimits = .default, rules: String? = nil) throws -> LuaState {
    try LuaState(name: "test.lua", limits: limits, rulesDirectory: rules, logger: Logger(label: "test"))
}

private func expectError(_ state: LuaState, _ source: String, _ kind: LuaError.Kind, containing text: String? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try state.run(source, chunkName: "limits.lua")
        Issue.record("expected \(kind), the call succeeded", sourceLocation: sourceLocation)
    } catch let error as LuaError {
        #expect(error.kind == kind, "\(error.fullDescription)", sourceLocation: sourceLocation)
        if let text { #expect(error.description.contains(text), "\(error.description)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
}

/// After any failure, the next call on the same state must evaluate correctly.
private func expectHealthy(_ state: LuaState, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let result = try state.run("local t = {} for i = 1, 100 do t[i] = i end return #t + 0.5", chunkName: "next.lua")
    #expect(result == [.number(100.5)], sourceLocation: sourceLocation)
}

@Suite("Lua sandbox limits")
struct LuaLimitTests {
    @Test("an endless loop ends with the instruction limit")
    func endlessLoop() throws {
        let state = try makeState()
        expectError(state, "while true do end", .instructionLimit, containing: "limits.lua:1: instruction limit exceeded")
        try expectHealthy(state)
    }

    @Test("an endless loop that catches its own errors still ends")
    func endlessLoopWithPcall() throws {
        let state = try makeState()
        expectError(state, "while true do pcall(function() while true do end end) end", .instructionLimit)
        try expectHealthy(state)
    }

    @Test("the wall-clock deadline ends a call the instruction budget lets run")
    func deadline() throws {
        let state = try makeState(LuaLimits(instructions: 0, deadlineMilliseconds: 50))
        expectError(state, "local x = 0 while true do x = x + 1 end", .deadline, containing: "deadline exceeded (50 ms per call)")
        try expectHealthy(state)
    }

    @Test("a memory bomb ends with the memory limit and the state stays usable")
    func memoryBomb() throws {
        let state = try makeState(LuaLimits(memoryBytes: 4 << 20))
        expectError(state, "local t = {} for i = 1, 1e8 do t[i] = {i} end", .memoryLimit, containing: "memory limit exceeded")
        try expectHealthy(state)
        #expect(state.memoryUsed < 4 << 20)
        #expect(!state.needsReset)
    }

    @Test("a huge string ends with the memory limit")
    func hugeString() throws {
        let state = try makeState()
        expectError(state, "local s = string.rep('x', 1e9) return #s", .memoryLimit)
        expectError(state, "local s = 'x' for i = 1, 40 do s = s .. s end", .memoryLimit)
        try expectHealthy(state)
    }

    @Test("a state left too full to trust asks to be reset, and reopen gives a working one")
    func poisonedState() throws {
        let state = try makeState(LuaLimits(memoryBytes: 2 << 20))
        expectError(state, "keep = {} while true do keep[#keep + 1] = string.rep(tostring(#keep), 1000) end", .memoryLimit)
        #expect(state.needsReset)
        try state.reopen()
        #expect(!state.needsReset)
        try expectHealthy(state)
        #expect(state.global("keep") == .nil)
    }

    @Test("a print flood ends with the output limit; output goes to the handler")
    func printFlood() throws {
        let state = try makeState(LuaLimits(outputBytes: 1000))
        var lines: [String] = []
        state.printHandler = { lines.append($0) }
        try state.run("print('hello', 42, true, nil)", chunkName: "p.lua")
        #expect(lines == ["hello\t42\ttrue\tnil"])
        expectError(state, "\nfor i = 1, 1e6 do print(('y'):rep(100)) end", .outputLimit, containing: "limits.lua:2: output limit exceeded")
        #expect(lines.count == 10, "lines up to the cap were written")
        try expectHealthy(state)
        try state.run("print('again')", chunkName: "p.lua")
        #expect(lines.last == "again", "the cap is per call")
    }

    @Test("deep recursion ends with the call depth limit")
    func deepRecursion() throws {
        let state = try makeState()
        expectError(state, "local function f(n) return 1 + f(n + 1) end return f(1)", .callDepthLimit, containing: "call depth")
        try expectHealthy(state)
    }

    @Test("a coroutine that never ends, or never stops being resumed, is bounded too")
    func coroutines() throws {
        let state = try makeState()
        expectError(state, "local co = coroutine.wrap(function() while true do end end) co()", .instructionLimit)
        expectError(state, """
            local co = coroutine.create(function() while true do coroutine.yield() end end)
            while true do coroutine.resume(co) end
            """, .instructionLimit)
        // A coroutine created in an earlier call is still bounded in a later one.
        try state.run("spinner = coroutine.create(function() while true do end end)", chunkName: "c.lua")
        expectError(state, "coroutine.resume(spinner) error('not reached')", .instructionLimit)
        try expectHealthy(state)
    }
}

/// Ways out of the limits that the count hook alone cannot see (issue: hostile input, class 4).
@Suite("Lua sandbox: escapes from the limits")
struct LuaEscapeTests {
    @Test("a __gc finalizer is refused: it would run inside the collector with hooks off")
    func finalizer() throws {
        let state = try makeState()
        expectError(state, "setmetatable({}, { __gc = function() while true do end end })", .runtime,
                    containing: "__gc finalizers are not available in the Vigil sandbox")
        #expect(try state.run("return getmetatable(setmetatable({}, { __index = {} })) ~= nil", chunkName: "ok.lua") == [.boolean(true)])
        try expectHealthy(state)
    }

    @Test("a limit caught by pcall or coroutine.resume still fails the call", arguments: [
        ("local ok = pcall(function() while true do end end) return 'carried on'", LuaError.Kind.instructionLimit),
        ("local co = coroutine.create(function() while true do end end) local ok = coroutine.resume(co) return 'carried on'",
         .instructionLimit),
        ("local co = coroutine.wrap(function() local t = {} for i = 1, 1e8 do t[i] = {i} end end) pcall(co) return 'carried on'",
         .memoryLimit),
        ("local ok = pcall(function() local t = {} for i = 1, 1e8 do t[i] = {i} end end) return 'carried on'", .memoryLimit),
    ])
    func caughtLimits(source: String, kind: LuaError.Kind) throws {
        let limits = kind == .memoryLimit ? LuaLimits(memoryBytes: 4 << 20, instructions: 0, deadlineMilliseconds: 5000)
            : LuaLimits(memoryBytes: 4 << 20, instructions: 200_000)
        let state = try makeState(limits)
        expectError(state, source, kind)
        try expectHealthy(state)
    }

    @Test("pattern functions that backtrack in C stop at the instruction budget and the deadline", arguments: [
        "return string.find(('a'):rep(30000), '.-.-.-.-b')",
        "return ('a'):rep(30000):match('(.*)(.*)(.*)(.*)b')",
        "local n = 0 for w in ('a'):rep(20000):gmatch('a-a-a-a-b') do n = n + 1 end return n",
        "return (('a'):rep(30000):gsub('.-.-.-b', 'x'))",
        "local ok = pcall(string.find, ('a'):rep(30000), '.-.-.-.-b') return 'carried on'",
    ])
    func patterns(source: String) throws {
        let state = try makeState(LuaLimits(instructions: 1_000_000, deadlineMilliseconds: 0))
        expectError(state, source, .instructionLimit)
        let timed = try makeState(LuaLimits(instructions: 0, deadlineMilliseconds: 100))
        expectError(timed, source, .deadline)
        try expectHealthy(state)
    }

    @Test("the budgeted pattern functions keep Lua's semantics")
    func patternSemantics() throws {
        let state = try makeState()
        let cases: [(String, LuaValue)] = [
            ("return string.find('hello world', 'o w')", .integer(5)),
            ("return select(2, string.find('hello world', 'o w'))", .integer(7)),
            ("return string.find('a.b', '.', 1, true)", .integer(2)),
            ("return string.find('abc', 'b', -1)", .nil),
            ("return string.find('abc', '', 10)", .nil),
            ("return string.find('abc', '', 4)", .integer(4)),
            ("return string.match('key = value', '(%w+)%s*=%s*(%w+)')", .string("key")),
            ("return select(2, string.match('key = value', '(%w+)%s*=%s*(%w+)'))", .string("value")),
            ("return string.match('  trim  ', '^%s*(.-)%s*$')", .string("trim")),
            ("return string.match('hello', '()ll()')", .integer(3)),
            ("return string.match('THE (quick) fox', '%((%a+)%)')", .string("quick")),
            ("return string.match('f(a(b)c)d', '%b()')", .string("(a(b)c)")),
            ("return string.match('THE quick', '%f[%a]%a+', 4)", .string("quick")),
            ("return string.match('abcabc', '(abc)%1')", .string("abc")),
            ("return string.match('x=1, y=22', 'y=(%d+)')", .string("22")),
            ("return string.match('2026-12-03', '^(%d+)-(%d+)-(%d+)$')", .string("2026")),
            ("return string.match('[x]', '[]x[]+')", .string("[x]")),
            ("return string.match('a-b', '[%a-]+')", .string("a-b")),
            ("return (string.gsub('hello world', 'o', '0'))", .string("hell0 w0rld")),
            ("return select(2, string.gsub('hello world', 'o', '0'))", .integer(2)),
            ("return (string.gsub('hello world', '(%w+)', '<%1>'))", .string("<hello> <world>")),
            ("return (string.gsub('abc', '%w', '%0%0'))", .string("aabbcc")),
            ("return (string.gsub('abc', '', '-'))", .string("-a-b-c-")),
            ("return (string.gsub('hello', 'l', { l = 'L' }))", .string("heLLo")),
            ("return (string.gsub('$name is $age', '%$(%w+)', { name = 'ann' }))", .string("ann is $age")),
            ("return (string.gsub('abc', '%w', function(c) return c:upper() end))", .string("ABC")),
            ("return (string.gsub('abc', '^a', 'x'))", .string("xbc")),
            ("return (string.gsub('aaa', 'a', 'b', 2))", .string("bba")),
            ("local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t + 1] = k .. v end return table.concat(t, ',')",
             .string("a1,b2")),
            ("local n = 0 for w in ('one two  three'):gmatch('%a+') do n = n + 1 end return n", .integer(3)),
            ("local t = {} for w in ('abc'):gmatch('') do t[#t + 1] = 'x' end return #t", .integer(4)),
            ("return ('%d'):format(7) .. ('x'):rep(3)", .string("7xxx")),
        ]
        for (source, expected) in cases {
            #expect(try state.run(source, chunkName: "p.lua").first ?? .nil == expected, "\(source)")
        }
        for (source, message) in [("string.find('a', '%')", "malformed pattern (ends with '%')"), ("string.match('a', '[a')", "missing ']'"),
                                  ("string.match('a', '(a')", "unfinished capture"), ("string.gsub('a', 'a', '%2')", "invalid capture index %2"),
                                  ("string.match('a', 'a)')", "invalid pattern capture")] {
            expectError(state, source, .runtime, containing: message)
        }
    }

    @Test("a returned table that holds itself, or a huge nest, is walked with cycle and size limits")
    func cyclesAndSize() throws {
        let state = try makeState()
        let cyclic = try state.run("local t = {1, 2} t[3] = t t.self = t return t", chunkName: "cycle.lua")
        guard case .table(let table) = cyclic.first else { Issue.record("\(cyclic)"); return }
        #expect(table[.string("self")] == .opaque("table (cycle)"))
        #expect(table[.integer(1)] == .integer(1))
        // 2^30 paths through 30 levels of a table that holds the level below twice: no cycle, but far too many.
        let wide = try state.run("local t = {} for i = 1, 30 do t = {t, t} end return t", chunkName: "wide.lua")
        #expect("\(wide)".contains("the rest is left out"))
    }
}

@Suite("Lua sandbox: what scripts cannot do")
struct LuaForbiddenTests {
    @Test("forbidden functions fail with a clear error", arguments: [
        ("local f = io.open('/etc/passwd')", "io.open is not available in the Vigil sandbox"),
        ("local ok = os.execute('true')", "os.execute is not available in the Vigil sandbox"),
        ("local x = os.exit(1)", "os.exit is not available"),
        ("local home = os.getenv('HOME')", "os.getenv is not available"),
        ("local bytes = string.dump(function() end)", "string.dump is not available"),
        ("local bytes = ('x'):dump()", "string.dump is not available"),
        ("local t = dofile('/etc/passwd')", "dofile is not available"),
        ("local f = loadfile('/etc/passwd')", "loadfile is not available"),
        ("local i = debug.getinfo(1)", "debug.getinfo is not available"),
        ("local l = package.loadlib('x', 'y')", "package.loadlib is not available"),
        ("local n = collectgarbage('collect')", "only \"count\" is allowed"),
        ("local f = load('return 1', 'x', 'b')", "binary chunks are not allowed"),
        // A tail call leaves no caller frame: the script is still named.
        ("return io.open('/etc/passwd')", "io.open is not available"),
    ])
    func forbidden(source: String, message: String) throws {
        let state = try makeState()
        do {
            let script = source.hasPrefix("return") ? source : source + " return 'not refused'"
            let result = try state.run(script, chunkName: "forbidden.lua")
            Issue.record("\(source) returned \(result)")
        } catch let error as LuaError {
            #expect(error.description.contains(message), "\(error.description)")
            #expect(error.script == "forbidden.lua", "\(error.description)")
            if !source.hasPrefix("return") {
                #expect(error.description.hasPrefix("forbidden.lua:1:"), "\(error.description)")
            }
        }
        try expectHealthy(state)
    }

    @Test("load refuses binary chunks even in text mode, and accepts text")
    func binaryChunk() throws {
        let state = try makeState()
        let refused = try state.run(#"return load("\27Lua\84\0\25\147\13\10\26\10")"#, chunkName: "b.lua")
        #expect(refused.first == .nil)
        #expect(refused.last?.stringValue?.contains("attempt to load a binary chunk") == true)
        #expect(try state.run("return load('return 6 * 7')()", chunkName: "b.lua") == [.integer(42)])
        #expect(try state.run("return load('return x', 'env', 't', {x = 5})()", chunkName: "b.lua") == [.integer(5)])
    }

    @Test("the allowed libraries work")
    func allowed() throws {
        let state = try makeState()
        let result = try state.run("""
            return string.format('%d-%s', 7, ('abc'):upper()), table.concat({1, 2, 3}, ','), math.floor(2.5),
                   utf8.char(228), type(os.time()), type(os.clock()), os.date('!%Y', 0), collectgarbage('count') > 0
            """, chunkName: "ok.lua")
        #expect(result == ["7-ABC", "1,2,3", .integer(2), .string("ä"), "number", "number", "1970", true])
    }

    @Test("require finds modules in the rules folder only")
    func require() throws {
        let base = try fixtures()
        let state = try makeState(rules: base + "/rules")
        #expect(try state.run("return require('lib.helpers').double(21)", chunkName: "r.lua") == [.integer(42)])
        #expect(try state.run("return require('lib.helpers') == require('lib.helpers')", chunkName: "r.lua") == [true])
        for name in ["../outside/secret", "..outside.secret", "/etc/passwd", "outside.secret", "nonexistent"] {
            do {
                let result = try state.run("local m = require('\(name)') return m", chunkName: "r.lua")
                Issue.record("require('\(name)') returned \(result)")
            } catch let error as LuaError {
                #expect(error.description.contains("r.lua:1: module '\(name)' not found"), "\(error.description)")
            }
        }
        // A symbolic link inside the rules folder that points outside is refused too.
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }
        try FileManager.default.createSymbolicLink(atPath: temporary.appendingPathComponent("escape.lua").path,
                                                   withDestinationPath: base + "/outside/secret.lua")
        let linked = try makeState(rules: temporary.path)
        #expect(throws: LuaError.self) { try linked.run("return require('escape')", chunkName: "r.lua") }
        // No rules folder configured: nothing but registered modules.
        let bare = try makeState()
        bare.registerModule("vigil", .table(["answer": 42]))
        #expect(try bare.run("return require('vigil').answer", chunkName: "r.lua") == [.integer(42)])
        #expect(throws: LuaError.self) { try bare.run("return require('lib.helpers')", chunkName: "r.lua") }
    }
}

@Suite("Lua errors and values")
struct LuaErrorAndValueTests {
    @Test("a runtime error names the script file, the line and carries a traceback")
    func runtimeError() throws {
        let path = try fixtures() + "/rules/broken.lua"
        let state = try makeState()
        do {
            try state.runFile(path)
            Issue.record("expected an error")
        } catch let error as LuaError {
            #expect(error.kind == .runtime)
            #expect(error.script == path)
            #expect(error.line == 3)
            #expect(error.message == "value too high: 5")
            #expect(error.traceback?.contains("broken.lua:7: in main chunk") == true, "\(error.fullDescription)")
            #expect(error.traceback?.contains("in upvalue 'check'") == true || error.traceback?.contains("in local 'check'") == true)
        }
    }

    @Test("a syntax error gives file:line")
    func syntaxError() throws {
        let state = try makeState()
        do {
            try state.run("local a = 1\nlocal b = = 2", chunkName: "rules/bad.lua")
            Issue.record("expected an error")
        } catch let error as LuaError {
            #expect(error.kind == .syntax)
            #expect(error.description.hasPrefix("rules/bad.lua:2: unexpected symbol near '='"), "\(error.description)")
        }
    }

    @Test("an error object without a position takes it from the traceback")
    func errorObject() throws {
        let state = try makeState()
        do {
            try state.run("\n\nerror({code = 7})", chunkName: "obj.lua")
        } catch let error as LuaError {
            #expect(error.message == "(error object is a table value)")
            #expect(error.script == "obj.lua")
            #expect(error.line == 3)
        }
    }

    @Test("values cross both ways: integers and floats apart, bytes, arrays, tables, functions")
    func values() throws {
        let state = try makeState()
        let input: LuaValue = .table([
            "int": 3, "float": 3.0, "bytes": .string(LuaString(bytes: [0, 0xff, 65])), "flag": false,
            "list": .array([1, "two", 3.5]), "nested": .table(["deep": .array([.table(["x": 1])])]),
        ])
        state.setGlobal("input", input)
        let back = try state.run("return input, math.type(input.int), math.type(input.float), #input.bytes, input.list[2]",
                                 chunkName: "v.lua")
        #expect(back[0] == input)
        #expect(Array(back[1...]) == ["integer", "float", .integer(3), "two"])
        #expect(try state.run("return {}, {n = nil}, {1, nil, 3}", chunkName: "v.lua")
            == [.table([:]), .table([:]), .table([.integer(1): 1, .integer(3): 3])])
        // A Lua function comes back as a reference that can be called later.
        let made = try state.run("return function(a, b) return a .. b, a + 0 end", chunkName: "v.lua")
        guard case .function(let reference) = made.first else { Issue.record("not a function"); return }
        #expect(try state.call(reference, ["4", "2"]) == ["42", .integer(4)])
    }

    @Test("a chunk compiled once is called many times; globals are called by name")
    func loadAndCall() throws {
        let state = try makeState()
        let chunk = try state.load("local a, b = ... return a * b", chunkName: "rules/mul.lua")
        #expect(try state.call(chunk, [6, 7]) == [.integer(42)])
        #expect(try state.call(chunk, [1.5, 2]) == [.number(3)])
        try state.run("function greet(name) return 'hello ' .. name end", chunkName: "g.lua")
        #expect(try state.call(global: "greet", ["vigil"]) == ["hello vigil"])
        #expect(throws: LuaError.self) { try state.call(global: "missing") }
        #expect(throws: LuaError.self) { try state.load("return +", chunkName: "rules/bad.lua") }
        // A released reference frees its registry slot: the next reference reuses it.
        let other = try state.load("return 1", chunkName: "one.lua")
        state.release(other)
        let reused = try state.load("return 2", chunkName: "two.lua")
        #expect(reused.id == other.id)
        #expect(try state.call(reused) == [.integer(2)])
    }

    @Test("Swift host functions are callable from Lua; their errors point at the caller")
    func hostFunctions() throws {
        let state = try makeState()
        let add = LuaHostFunction("add") { args in [.number(try args.number(0) + args.number(1))] }
        state.setGlobal("add", .hostFunction(add))
        #expect(try state.run("return add(1, 2.5)", chunkName: "h.lua") == [.number(3.5)])
        do {
            try state.run("local x = 1\nreturn add(x, nil)", chunkName: "h.lua")
            Issue.record("expected an error")
        } catch let error as LuaError {
            #expect(error.description == "h.lua:2: bad argument #2 to 'add' (number expected, got nil)")
        }
        #expect(try state.run("local ok, err = pcall(add, {}) return ok, err", chunkName: "h.lua")
            == [false, "bad argument #1 to 'add' (number expected, got table)"])
        // Works from inside a coroutine too.
        #expect(try state.run("return coroutine.wrap(function() return add(40, 2) end)()", chunkName: "h.lua") == [.number(42)])
    }
}

/// Collects log records, to check what scripts print reaches the daemon's log.
private final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    struct Record { let message: String; let metadata: Logger.Metadata }
    let records = Mutex<[Record]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.withLock { $0.append(Record(message: event.message.description, metadata: event.metadata ?? [:])) }
    }
}

@Suite("Lua print")
struct LuaPrintTests {
    @Test("print writes each line to the daemon's log with the script's name")
    func printGoesToTheLog() throws {
        let handler = CapturingLogHandler()
        let state = try LuaState(name: "rules/gpu.lua", logger: Logger(label: "test") { _ in handler })
        try state.run("print('GPU', 3, 'is hot') print('second line')", chunkName: "rules/gpu.lua")
        let records = handler.records.withLock { $0 }
        #expect(records.map(\.message) == ["script output", "script output"])
        #expect(records.map { $0.metadata["script.output"]?.description } == ["GPU\t3\tis hot", "second line"])
        #expect(records.allSatisfy { $0.metadata["script.name"]?.description == "rules/gpu.lua" })
    }
}
