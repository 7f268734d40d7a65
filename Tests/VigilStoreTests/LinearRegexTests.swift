import Testing
import VigilCore
@testable import VigilStore

@Suite("label matchers in linear time")
struct LinearRegexTests {
    @Test("RE2 syntax, anchored at both ends", arguments: [
        ("node_.*", "node_load1", true), ("node_.*", "xnode_load1", false),
        ("a|b|cd", "cd", true), ("a|b|cd", "c", false), ("(a|b)+c", "ababc", true), ("(?:ab){2}", "abab", true),
        ("(?:ab){2}", "ababab", false), ("a{2,3}", "aaa", true), ("a{2,3}", "aaaa", false), ("a{2,}", "aaaaa", true),
        ("a{,2}", "a{,2}", true), ("x{y", "x{y", true), ("[0-9]+\\.[0-9]+", "12.5", true), ("[^a-z]+", "ABC1", true),
        ("[^a-z]+", "ABc", false), ("\\d\\d?", "7", true), ("\\w+", "gpu_0", true), ("\\s", " ", true), ("[\\d.]+", "1.2.3", true),
        ("(?i)gpu", "GPU", true), ("(?i:gpu)x", "GPUx", true), ("(?i:gpu)x", "GPUX", false), ("gpu", "GPU", false),
        ("a.c", "a\nc", true), ("", "", true), ("", "x", false), ("a*", "", true), ("(a*)*b", "aaab", true),
        ("(?P<name>sd[a-z])", "sda", true), ("[[:digit:]]+", "123", true), ("\\x41\\x{263a}", "A☺", true),
        ("é+", "éé", true), ("ca.", "caé", true), ("^abc$", "abc", true), ("a\\|b", "a|b", true), ("[]a]", "]", true),
        ("[a-]", "-", true), ("a+?b", "aab", true),
    ])
    func syntax(pattern: String, text: String, matches: Bool) throws {
        #expect(try LinearRegex(pattern).wholeMatch(text) == matches, "\(pattern) on \(text)")
    }

    @Test("mistakes are errors naming the pattern and the offset", arguments: [
        ("(ab", "missing )"), ("ab)", "unmatched )"), ("*a", "nothing to repeat"), ("a{1001}", "repetition count over 1000"),
        ("a{3,2}", "bounds reversed"), ("[a", "missing ]"), ("\\1", "back-references are not supported"), ("(?=a)", "unknown flag ="),
        ("[z-a]", "range out of order"), ("[[:]", "missing :]"), ("[[:]]", "missing :]"), ("[[::]]", "unknown class [::]"), ("(a{1000}){1000}", "regular expression too large"),
    ])
    func mistakes(pattern: String, message: String) {
        #expect { try LinearRegex(pattern) } throws: { "\($0)".contains(message) }
    }

    /// Each would take minutes to years with a backtracking engine; here each is one pass over the text.
    @Test("patterns that make backtracking engines explode end at once")
    func catastrophic() throws {
        let text = String(repeating: "a", count: 20_000)
        for pattern in ["(.*.*.*.*.*.*.*)X", "(a+)+b", "(a|aa)+c", "(a*)*b", "(x+x+)+y", ".*.*.*.*.*.*.*.*.*.*b"] {
            #expect(try LinearRegex(pattern).wholeMatch(text) == false, "\(pattern)")
        }
        let matcher = try LabelMatcher(Labels.metricName, .matchesRegex, "(.*.*.*.*.*.*.*)X")
        #expect(!matcher.matches(text))
        #expect(matcher.matches(text + "X"))
    }
}

@Suite("numbers from outside")
struct BoundsTests {
    @Test("durations beyond 100 years, NaN, infinities and negatives are not durations")
    func durations() {
        #expect(DurationParser.milliseconds("1e300") == nil)
        #expect(DurationParser.milliseconds("100y") == Bounds.maxDuration)
        #expect(DurationParser.milliseconds("101y") == nil)
        #expect(DurationParser.milliseconds("100y1d") == nil)
        #expect(DurationParser.milliseconds("nan") == nil)
        #expect(DurationParser.milliseconds("inf") == nil)
        #expect(DurationParser.milliseconds("-5s") == nil)
        #expect(DurationParser.milliseconds("999999999999999999999999h") == nil)
        #expect(DurationParser.milliseconds("1h30m") == 5_400_000)
        #expect(DurationParser.format(milliseconds: -90_000) == "-1m30s")
        #expect(DurationParser.format(milliseconds: .min).hasPrefix("-"))
        #expect(ByteSizeParser.bytes("1e300GiB") == nil)
    }

    @Test("times and conversions never trap")
    func conversions() {
        #expect(Bounds.unixSeconds("1e300") == nil)
        #expect(Bounds.unixSeconds("-1") == nil)
        #expect(Bounds.unixSeconds("1764320000.5") == 1_764_320_000_500)
        #expect(Int64(saturating: 1e300) == .max)
        #expect(Int64(saturating: -.infinity) == .min)
        #expect(Int64(saturating: .nan) == 0)
        #expect(Int(saturating: 9.3e18) == .max)
        #expect(Bounds.memoryBytes(1e300) == Bounds.maxMemoryBytes)
        #expect(Bounds.memoryBytes(-5) == 0)
        #expect(Bounds.milliseconds(seconds: 1e300) == nil)
        // topk's k from a script: a huge or NaN k keeps every series instead of trapping.
        let vector = [VectorSample(labels: Labels(dictionary: ["a": "1"]), value: 1)]
        #expect(Aggregation.apply(.topk, vector, grouping: .all, parameter: 1e300).count == 1)
        #expect(Aggregation.apply(.topk, vector, grouping: .all, parameter: .nan).count == 0)
    }
}
