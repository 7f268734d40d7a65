import Foundation

/// The statistics behind results and comparisons.
public enum BenchStatistics {
    /// The q-quantile (0…1) with linear interpolation between ranks (as numpy's default and PromQL do).
    public static func quantile(_ q: Double, _ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = q * Double(sorted.count - 1)
        let low = Int(rank.rounded(.down)), high = Int(rank.rounded(.up))
        let weight = rank - Double(low)
        return sorted[low] * (1 - weight) + sorted[high] * weight
    }

    public static func median(_ values: [Double]) -> Double? { quantile(0.5, values) }

    /// The distribution in `bins` equal-width bins from the 0.1st to the 99.9th percentile (the rare extremes
    /// are counted in the end bins): `[lower, upper, count]` each. Empty for no samples.
    public static func histogram(_ values: [Double], bins: Int = 30) -> [[Double]] {
        guard bins > 0, let low = quantile(0.001, values), let high = quantile(0.999, values) else { return [] }
        guard high > low else { return [[low, high, Double(values.count)]] }
        let width = (high - low) / Double(bins)
        var counts = [Double](repeating: 0, count: bins)
        for value in values {
            counts[min(bins - 1, max(0, Int((value - low) / width)))] += 1
        }
        return counts.indices.map { [low + Double($0) * width, low + Double($0 + 1) * width, counts[$0]] }
    }

    /// The median absolute deviation scaled by 1.4826: a standard deviation that outliers do not move.
    public static func robustSpread(_ values: [Double]) -> Double? {
        guard let center = median(values) else { return nil }
        return median(values.map { abs($0 - center) }).map { $0 * 1.4826 }
    }

    /// Least-squares slope of `values` against their index, as a share of their mean per run.
    public static func trendPerRun(_ values: [Double]) -> Double? {
        guard values.count >= 3 else { return nil }
        let n = Double(values.count)
        let xs = values.indices.map(Double.init)
        let meanX = xs.reduce(0, +) / n, meanY = values.reduce(0, +) / n
        let sxx = xs.reduce(0) { $0 + ($1 - meanX) * ($1 - meanX) }
        let sxy = zip(xs, values).reduce(0) { $0 + ($1.0 - meanX) * ($1.1 - meanY) }
        guard sxx > 0, meanY != 0 else { return nil }
        return sxy / sxx / meanY
    }

    /// How a result stands against this host's earlier runs.
    public struct Verdict: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// Fewer than `minimumHistory` earlier runs.
            case notEnoughHistory = "not enough history"
            case normal, regression, improvement
        }

        public var kind: Kind
        /// Median of the earlier runs.
        public var baseline: Double?
        /// How far from the baseline a result must be to count: max(3 × robust spread, 5 % of the baseline).
        public var threshold: Double?
        /// (value − baseline) / baseline.
        public var change: Double?
    }

    public static let minimumHistory = 3

    /// Regression detection: a result worse than the median of earlier runs by more than three robust
    /// standard deviations of those runs, and by at least 5 % (so a very steady history does not flag noise).
    public static func verdict(value: Double, history: [Double], higherIsBetter: Bool) -> Verdict {
        guard history.count >= minimumHistory, let baseline = median(history), let spread = robustSpread(history),
              baseline != 0 else {
            return Verdict(kind: .notEnoughHistory, baseline: median(history), threshold: nil, change: nil)
        }
        let threshold = max(3 * spread, 0.05 * abs(baseline))
        let change = (value - baseline) / abs(baseline)
        let worse = higherIsBetter ? baseline - value : value - baseline
        let kind: Verdict.Kind = worse > threshold ? .regression : -worse > threshold ? .improvement : .normal
        return Verdict(kind: kind, baseline: baseline, threshold: threshold, change: change)
    }

    /// 1000 × value / reference, or 1000 × reference / value where lower is better.
    public static func score(value: Double, reference: Double, higherIsBetter: Bool) -> Double {
        guard value > 0, reference > 0 else { return 0 }
        return 1000 * (higherIsBetter ? value / reference : reference / value)
    }
}
