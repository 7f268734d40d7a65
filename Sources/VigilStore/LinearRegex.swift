import VigilCore

/// Regular expressions in RE2's syntax (the one Prometheus uses for `=~` and `!~`), matched in time linear in
/// the text: the pattern is compiled to a Thompson NFA and simulated with one set of states per position
/// (Pike's method), so no pattern, however nested (`(.*.*.*)*X`), can make a match backtrack. The work for one
/// match is at most `text length × program size`, and the program size is capped at compile time.
///
/// Supported: literals and escapes (`\.`, `\\`, `\n`, `\t`, `\x41`, `\x{263a}`), `.`, classes `[a-z0-9_]`, `[^…]`
/// and `\d \w \s \D \W \S` (inside classes too), groups `(…)`, `(?:…)`, `(?P<name>…)`, alternation `|`,
/// `* + ?` (lazy forms too, which cannot change whether a whole string matches), `{n}`, `{n,}`, `{n,m}` (at most
/// 1000, as RE2), `^` and `$`, and the flags `(?i)` and `(?s)` at the start of a group. Not supported, as in RE2:
/// back-references and look-around.
public struct LinearRegex: Sendable {
    /// Most instructions a compiled pattern may have (repetitions are expanded).
    public static let maxProgram = 50_000
    public static let maxRepeat = 1000

    private let program: [Instruction]

    public init(_ pattern: String) throws {
        var parser = Parser(Array(pattern.unicodeScalars))
        let tree = try parser.parseAll()
        var compiler = Compiler()
        try compiler.emit(tree)
        compiler.append(.match)
        program = compiler.program
    }

    /// Whether the whole of `text` matches (the pattern is anchored at both ends, as Prometheus anchors it).
    /// One pass over the text's scalars, with no copy of it.
    public func wholeMatch(_ text: String) -> Bool {
        // The two state sets live in one temporary (stack) allocation: no heap traffic per match.
        let n = program.count
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * n + 64) { memory in
            var states = StateSet(dense: UnsafeMutableBufferPointer(rebasing: memory[0..<n]),
                                  sparse: UnsafeMutableBufferPointer(rebasing: memory[n..<(2 * n)]))
            var next = StateSet(dense: UnsafeMutableBufferPointer(rebasing: memory[(2 * n)..<(3 * n)]),
                                sparse: UnsafeMutableBufferPointer(rebasing: memory[(3 * n)..<(4 * n)]))
            return run(text, &states, &next)
        }
    }

    private func run(_ text: String, _ states: inout StateSet, _ next: inout StateSet) -> Bool {
        var scalars = text.unicodeScalars.makeIterator()
        var current = scalars.next()
        var stack: [Int] = []
        follow(0, atStart: true, atEnd: current == nil, into: &states, stack: &stack)
        while !states.isEmpty {
            guard let scalar = current else {
                return states.members.contains { if case .match = program[$0] { true } else { false } }
            }
            let following = scalars.next()
            next.clear()
            for pc in states.members {
                if case .scalar(let set) = program[pc], set.contains(scalar) {
                    follow(pc + 1, atStart: false, atEnd: following == nil, into: &next, stack: &stack)
                }
            }
            swap(&states, &next)
            current = following
        }
        return false
    }

    /// Adds `pc` and every state reachable from it without reading a character.
    private func follow(_ start: Int, atStart: Bool, atEnd: Bool, into set: inout StateSet, stack: inout [Int]) {
        stack.append(start)
        while let pc = stack.popLast() {
            guard set.insert(pc) else { continue }
            switch program[pc] {
            case .jump(let target): stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .begin: if atStart { stack.append(pc + 1) }
            case .end: if atEnd { stack.append(pc + 1) }
            case .scalar, .match: break
            }
        }
    }

    enum Instruction: Sendable {
        case scalar(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case begin
        case end
        case match
    }

    /// The states of one step, each once, in the order added: O(1) insert, clear and membership (Briggs and
    /// Torczon's sparse set: the memory need not be initialised, since a slot is trusted only when both agree).
    struct StateSet {
        private let dense: UnsafeMutableBufferPointer<Int>
        private let sparse: UnsafeMutableBufferPointer<Int>
        private(set) var count = 0

        init(dense: UnsafeMutableBufferPointer<Int>, sparse: UnsafeMutableBufferPointer<Int>) {
            self.dense = dense
            self.sparse = sparse
        }

        var isEmpty: Bool { count == 0 }
        var members: Slice<UnsafeMutableBufferPointer<Int>> { dense[..<count] }

        mutating func insert(_ value: Int) -> Bool {
            let slot = sparse[value]
            if slot >= 0 && slot < count && dense[slot] == value { return false }
            sparse[value] = count
            dense[count] = value
            count += 1
            return true
        }

        mutating func clear() { count = 0 }
    }
}

/// A set of Unicode scalars: inclusive ranges, perhaps negated, perhaps case-folded.
struct ScalarSet: Sendable {
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false
    var foldCase = false

    static func single(_ scalar: Unicode.Scalar, foldCase: Bool) -> ScalarSet {
        ScalarSet(ranges: [scalar.value...scalar.value], foldCase: foldCase)
    }

    static let digits = ScalarSet(ranges: [48...57])
    static let word = ScalarSet(ranges: [48...57, 65...90, 95...95, 97...122])
    static let space = ScalarSet(ranges: [9...10, 12...13, 32...32])

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        var found = inRanges(value)
        if !found && foldCase {
            if (65...90).contains(value) {
                found = inRanges(value + 32)
            } else if (97...122).contains(value) {
                found = inRanges(value - 32)
            } else if value >= 128 {
                found = Self.caseVariants(scalar).contains(where: inRanges)
            }
        }
        return found != negated
    }

    private func inRanges(_ value: UInt32) -> Bool {
        for range in ranges where range.contains(value) { return true }
        return false
    }

    static func caseVariants(_ scalar: Unicode.Scalar) -> [UInt32] {
        let value = scalar.value
        if (65...90).contains(value) { return [value + 32] }
        if (97...122).contains(value) { return [value - 32] }
        if value < 128 { return [] }
        var out: [UInt32] = []
        for mapped in [scalar.properties.lowercaseMapping, scalar.properties.uppercaseMapping] {
            let scalars = Array(mapped.unicodeScalars)
            if scalars.count == 1, scalars[0] != scalar { out.append(scalars[0].value) }
        }
        return out
    }
}

extension LinearRegex {
    indirect enum Node {
        case empty
        case set(ScalarSet)
        case concat([Node])
        case alternate([Node])
        case repetition(Node, min: Int, max: Int?)
        case begin
        case end
    }

    struct Flags {
        var foldCase = false
        var dotAll = true   // Prometheus 3: `.` matches a newline too
    }

    struct Parser {
        let pattern: [Unicode.Scalar]
        var index = 0

        init(_ pattern: [Unicode.Scalar]) { self.pattern = pattern }

        func error(_ message: String) -> VigilError {
            VigilError(.invalidQuery, "invalid regular expression \"\(String(String.UnicodeScalarView(pattern)))\": \(message) at offset \(index)")
        }

        var peek: Unicode.Scalar? { index < pattern.count ? pattern[index] : nil }

        mutating func next() -> Unicode.Scalar? {
            guard index < pattern.count else { return nil }
            defer { index += 1 }
            return pattern[index]
        }

        mutating func parseAll() throws -> Node {
            var flags = Flags()
            let node = try alternation(&flags, depth: 0)
            if index < pattern.count { throw error("unmatched )") }
            return node
        }

        mutating func alternation(_ flags: inout Flags, depth: Int) throws -> Node {
            guard depth < 1000 else { throw error("groups nested too deeply") }
            var branches = [try concatenation(&flags, depth: depth)]
            while peek == "|" {
                index += 1
                branches.append(try concatenation(&flags, depth: depth))
            }
            return branches.count == 1 ? branches[0] : .alternate(branches)
        }

        mutating func concatenation(_ flags: inout Flags, depth: Int) throws -> Node {
            var items: [Node] = []
            while let scalar = peek, scalar != "|", scalar != ")" {
                var atom = try self.atom(&flags, depth: depth)
                atom = try quantified(atom)
                items.append(atom)
            }
            return items.isEmpty ? .empty : items.count == 1 ? items[0] : .concat(items)
        }

        mutating func quantified(_ atom: Node) throws -> Node {
            var node = atom
            while let scalar = peek {
                let bounds: (Int, Int?)
                switch scalar {
                case "*": index += 1; bounds = (0, nil)
                case "+": index += 1; bounds = (1, nil)
                case "?": index += 1; bounds = (0, 1)
                case "{":
                    guard let counted = try counts() else { return node }
                    bounds = counted
                default: return node
                }
                if case .begin = node { throw error("nothing to repeat") }
                if case .end = node { throw error("nothing to repeat") }
                if peek == "?" { index += 1 }   // lazy: the same language
                node = .repetition(node, min: bounds.0, max: bounds.1)
            }
            return node
        }

        /// `{n}`, `{n,}`, `{n,m}`; nil (and nothing consumed) when the brace is a literal, as RE2 reads it.
        mutating func counts() throws -> (Int, Int?)? {
            let start = index
            index += 1
            func number() -> Int? {
                var digits = ""
                while let scalar = peek, ("0"..."9").contains(scalar), digits.count < 5 {
                    digits.unicodeScalars.append(scalar)
                    index += 1
                }
                return Int(digits)
            }
            guard let low = number() else { index = start; return nil }
            var high: Int? = low
            if peek == "," {
                index += 1
                high = peek == "}" ? nil : number()
                if high == nil && peek != "}" { index = start; return nil }
            }
            guard peek == "}" else { index = start; return nil }
            index += 1
            guard low <= Self.maxRepeatBound, (high ?? low) <= Self.maxRepeatBound else {
                throw error("repetition count over \(LinearRegex.maxRepeat)")
            }
            if let high, high < low { throw error("repetition {\(low),\(high)} has its bounds reversed") }
            return (low, high)
        }

        static let maxRepeatBound = LinearRegex.maxRepeat

        mutating func atom(_ flags: inout Flags, depth: Int) throws -> Node {
            guard let scalar = next() else { throw error("unexpected end") }
            switch scalar {
            case "(":
                if peek == "?" {
                    index += 1
                    if peek == "P" || peek == "<" {
                        if peek == "P" { index += 1 }
                        guard next() == "<" else { throw error("expected a group name") }
                        while let c = next(), c != ">" {
                            guard c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" else { throw error("bad group name") }
                        }
                    } else {
                        // Flags: (?i) for the rest of the group, or (?i:…) for a group of its own.
                        var inner = flags
                        while let c = peek, c != ")", c != ":" {
                            index += 1
                            switch c {
                            case "i": inner.foldCase = true
                            case "s": inner.dotAll = true
                            case "m", "U": break
                            case "-":
                                while let off = peek, off != ")", off != ":" {
                                    index += 1
                                    if off == "i" { inner.foldCase = false } else if off == "s" { inner.dotAll = false }
                                }
                            default: throw error("unknown flag \(c)")
                            }
                        }
                        guard let end = next() else { throw error("missing )") }
                        if end == ")" {
                            flags = inner
                            return .empty
                        }
                        let node = try alternation(&inner, depth: depth + 1)
                        guard next() == ")" else { throw error("missing )") }
                        return node
                    }
                }
                var inner = flags
                let node = try alternation(&inner, depth: depth + 1)
                guard next() == ")" else { throw error("missing )") }
                return node
            case ")": throw error("unmatched )")
            case "^": return .begin
            case "$": return .end
            case ".":
                return .set(flags.dotAll ? ScalarSet(ranges: [0...0x10FFFF]) : ScalarSet(ranges: [10...10], negated: true))
            case "[": return .set(try characterClass(flags))
            case "*", "+", "?": throw error("nothing to repeat")
            case "\\":
                let escaped = try escape(inClass: false)
                var set = escaped
                if flags.foldCase { set.foldCase = true }
                return .set(set)
            default:
                return .set(.single(scalar, foldCase: flags.foldCase))
            }
        }

        mutating func escape(inClass: Bool) throws -> ScalarSet {
            guard let scalar = next() else { throw error("trailing backslash") }
            switch scalar {
            case "d": return .digits
            case "D": return ScalarSet(ranges: ScalarSet.digits.ranges, negated: true)
            case "w": return .word
            case "W": return ScalarSet(ranges: ScalarSet.word.ranges, negated: true)
            case "s": return .space
            case "S": return ScalarSet(ranges: ScalarSet.space.ranges, negated: true)
            case "n": return .single("\n", foldCase: false)
            case "t": return .single("\t", foldCase: false)
            case "r": return .single("\r", foldCase: false)
            case "f": return .single("\u{0C}", foldCase: false)
            case "v": return .single("\u{0B}", foldCase: false)
            case "x":
                var digits = ""
                if peek == "{" {
                    index += 1
                    while let c = next(), c != "}" {
                        digits.unicodeScalars.append(c)
                        guard digits.count <= 8 else { throw error("\\x{…} is too long") }
                    }
                } else {
                    for _ in 0..<2 { if let c = next() { digits.unicodeScalars.append(c) } }
                }
                guard let value = UInt32(digits, radix: 16), let decoded = Unicode.Scalar(value) else { throw error("bad \\x escape") }
                return .single(decoded, foldCase: false)
            default:
                // Punctuation escapes itself; an escaped letter or digit RE2 does not know is an error.
                if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                    throw error("unknown escape \\\(scalar)\(("1"..."9").contains(scalar) ? " (back-references are not supported)" : "")")
                }
                return .single(scalar, foldCase: false)
            }
        }

        mutating func characterClass(_ flags: Flags) throws -> ScalarSet {
            var set = ScalarSet(foldCase: flags.foldCase)
            if peek == "^" {
                set.negated = true
                index += 1
            }
            var first = true
            while true {
                guard let scalar = next() else { throw error("missing ]") }
                if scalar == "]" && !first { break }
                first = false
                var low: UInt32
                if scalar == "[", peek == ":" {
                    // POSIX classes: [[:alpha:]] and friends.
                    // The closing ":]" comes after the opening ":" (in "[[:]" they would overlap): found by fuzzing.
                    guard let close = ((index + 2)..<max(index + 2, pattern.count)).first(where: { pattern[$0] == "]" && pattern[$0 - 1] == ":" }) else {
                        throw error("missing :]")
                    }
                    let name = String(String.UnicodeScalarView(pattern[(index + 1)..<(close - 1)]))
                    index = close + 1
                    switch name {
                    case "alpha": set.ranges += [65...90, 97...122]
                    case "digit": set.ranges += [48...57]
                    case "alnum": set.ranges += [48...57, 65...90, 97...122]
                    case "upper": set.ranges += [65...90]
                    case "lower": set.ranges += [97...122]
                    case "space": set.ranges += [9...13, 32...32]
                    case "xdigit": set.ranges += [48...57, 65...70, 97...102]
                    case "word": set.ranges += ScalarSet.word.ranges
                    case "punct": set.ranges += [33...47, 58...64, 91...96, 123...126]
                    default: throw error("unknown class [:\(name):]")
                    }
                    continue
                }
                if scalar == "\\" {
                    let escaped = try escape(inClass: true)
                    guard !escaped.negated, escaped.ranges.count == 1, escaped.ranges[0].count == 1 else {
                        // \d, \W … inside a class: their ranges (a negated one as its complement).
                        set.ranges += escaped.negated ? Self.complement(escaped.ranges) : escaped.ranges
                        continue
                    }
                    low = escaped.ranges[0].lowerBound
                } else {
                    low = scalar.value
                }
                if peek == "-", index + 1 < pattern.count, pattern[index + 1] != "]" {
                    index += 1
                    guard var high = next()?.value else { throw error("missing ]") }
                    if high == 92 {   // backslash
                        let escaped = try escape(inClass: true)
                        guard escaped.ranges.count == 1, escaped.ranges[0].count == 1, !escaped.negated else { throw error("bad range end") }
                        high = escaped.ranges[0].lowerBound
                    }
                    guard low <= high else { throw error("range out of order") }
                    set.ranges.append(low...high)
                } else {
                    set.ranges.append(low...low)
                }
            }
            return set
        }

        static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            var out: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if range.lowerBound > next { out.append(next...(range.lowerBound - 1)) }
                next = max(next, range.upperBound + 1)
            }
            if next <= 0x10FFFF { out.append(next...0x10FFFF) }
            return out
        }
    }

    struct Compiler {
        var program: [Instruction] = []

        mutating func append(_ instruction: Instruction) {
            program.append(instruction)
        }

        mutating func emit(_ node: Node) throws {
            guard program.count < LinearRegex.maxProgram else {
                throw VigilError(.invalidQuery, "regular expression too large (over \(LinearRegex.maxProgram) states once repetitions are expanded)")
            }
            switch node {
            case .empty: break
            case .set(let set): append(.scalar(set))
            case .begin: append(.begin)
            case .end: append(.end)
            case .concat(let items):
                for item in items { try emit(item) }
            case .alternate(let branches):
                // split L1, next; L1: a; jump end; next: split L2, … ; last branch; end:
                var jumps: [Int] = []
                for (offset, branch) in branches.enumerated() {
                    if offset < branches.count - 1 {
                        let split = program.count
                        append(.split(split + 1, 0))
                        try emit(branch)
                        jumps.append(program.count)
                        append(.jump(0))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repetition(let inner, let min, let max):
                for _ in 0..<min { try emit(inner) }
                if let max {
                    // Each optional copy may be skipped to the end.
                    var splits: [Int] = []
                    for _ in min..<max {
                        splits.append(program.count)
                        append(.split(program.count + 1, 0))
                        try emit(inner)
                    }
                    for split in splits { program[split] = .split(split + 1, program.count) }
                } else {
                    let loop = program.count
                    append(.split(loop + 1, 0))
                    try emit(inner)
                    append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
        }
    }
}
