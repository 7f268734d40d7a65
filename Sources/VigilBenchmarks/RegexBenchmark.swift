import Foundation
import VigilStore

/// Label matchers: Vigil's linear-time engine (`LinearRegex`) against Swift's backtracking `Regex` on typical
/// matchers over 20,000 label values, and on a pathological one where only the linear engine finishes.
enum RegexBenchmark {
    static func run() {
        print("Label regex matching (20,000 label values; median of 5; Swift Regex as the baseline):")
        var generator = Generator(state: 7)
        let values = (0..<20_000).map { i -> String in
            switch generator.below(4) {
            case 0: "node\(i % 300).example.org:9100"
            case 1: "GPU-8f3c2a10-6b1e-4c2d-9a7f-\(String(format: "%012d", i))"
            case 2: ["sda", "sdb", "nvme0n1", "nvme1n1", "loop3"][i % 5]
            default: "NVIDIA H100 80GB HBM3"
            }
        }
        let patterns = ["node1[0-9]+\\..*", "nvme[0-9]n1|sd[a-z]", ".*H100.*", "GPU-[0-9a-f-]+", "(?i)nvidia a100.*"]
        for pattern in patterns {
            guard let linear = try? LinearRegex(pattern), let swift = try? Regex("^(?:" + pattern + ")$") else { continue }
            var matchedLinear = 0, matchedSwift = 0
            let linearTime = median(runs: 5) { matchedLinear = values.reduce(0) { $0 + (linear.wholeMatch($1) ? 1 : 0) } }
            let swiftTime = median(runs: 5) { matchedSwift = values.reduce(0) { $0 + ((try? swift.wholeMatch(in: $1)) != nil ? 1 : 0) } }
            precondition(matchedLinear == matchedSwift, "the engines disagree on \(pattern)")
            row("\(pattern) (\(matchedLinear) match)", "\(format(linearTime * 1e9 / Double(values.count), 0)) ns/value",
                "Swift Regex \(format(swiftTime * 1e9 / Double(values.count), 0)) ns/value, ratio \(format(linearTime / swiftTime))")
        }
        let pathological = String(repeating: "a", count: 40)
        let evil = try! LinearRegex("(a|aa)+b")
        let time = median(runs: 5) { consume(evil.wholeMatch(pathological)) }
        row("(a|aa)+b on 40 a's (backtracking: ~2^40 steps)", "\(format(time * 1e6, 1)) µs", "Swift Regex not run: it would take hours")
    }
}
