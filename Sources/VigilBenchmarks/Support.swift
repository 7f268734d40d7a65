import Foundation

/// Seconds taken by `body`.
func measure(_ body: () -> Void) -> Double {
    let start = ContinuousClock.now
    body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// The median of `runs` measurements.
func median(runs: Int, _ body: () -> Void) -> Double {
    let times = (0..<runs).map { _ in measure(body) }.sorted()
    return times[times.count / 2]
}

/// A deterministic generator, so every run sees the same data.
struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 11
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ oneIn: Int) -> Bool { below(oneIn) == 0 }
}

func row(_ label: String, _ value: String, _ note: String = "") {
    let padded = label.padding(toLength: 58, withPad: " ", startingAt: 0)
    print("  \(padded) \(value)\(note.isEmpty ? "" : "   \(note)")")
}

func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

/// Keeps a value alive and observed, so the optimiser cannot drop the work that made it.
@inline(never)
func consume<T>(_ value: T) {
    withExtendedLifetime(value) {}
}
