import VigilCore

/// A function over the samples of one series in a window `(t - range, t]`, as in PromQL.
public enum RangeFunction: Sendable, Hashable {
    case avgOverTime, minOverTime, maxOverTime, sumOverTime, countOverTime
    case stddevOverTime, stdvarOverTime, lastOverTime, presentOverTime
    case quantileOverTime(Double)
    case rate, increase, delta, deriv
    case predictLinear(seconds: Double)
    case changes, resets

    /// PromQL's name.
    public var name: String {
        switch self {
        case .avgOverTime: "avg_over_time"
        case .minOverTime: "min_over_time"
        case .maxOverTime: "max_over_time"
        case .sumOverTime: "sum_over_time"
        case .countOverTime: "count_over_time"
        case .stddevOverTime: "stddev_over_time"
        case .stdvarOverTime: "stdvar_over_time"
        case .lastOverTime: "last_over_time"
        case .presentOverTime: "present_over_time"
        case .quantileOverTime: "quantile_over_time"
        case .rate: "rate"
        case .increase: "increase"
        case .delta: "delta"
        case .deriv: "deriv"
        case .predictLinear: "predict_linear"
        case .changes: "changes"
        case .resets: "resets"
        }
    }

    /// Whether the result keeps the metric name (only `last_over_time` does, as in Prometheus).
    var keepsName: Bool { self == .lastOverTime }

    /// Evaluates over `samples` (oldest first, stale markers already removed) for the window
    /// `(end - range, end]`. Nil when the function has no value (too few samples).
    public func evaluate(_ samples: [Sample], windowEnd end: Timestamp, range: Int64) -> Double? {
        guard let last = samples.last else { return nil }
        switch self {
        case .avgOverTime:
            var sum = 0.0
            for s in samples { sum += s.value }
            if sum.isFinite { return sum / Double(samples.count) }
            // The sum overflowed: an incremental mean stays finite for large values.
            var mean = 0.0
            for (i, s) in samples.enumerated() { mean += (s.value - mean) / Double(i + 1) }
            return mean
        case .minOverTime:
            return samples.reduce(Double.infinity) { $1.value.isNaN ? $0 : min($0, $1.value) }
        case .maxOverTime:
            return samples.reduce(-Double.infinity) { $1.value.isNaN ? $0 : max($0, $1.value) }
        case .sumOverTime:
            return samples.reduce(0) { $0 + $1.value }
        case .countOverTime:
            return Double(samples.count)
        case .presentOverTime:
            return 1
        case .lastOverTime:
            return last.value
        case .stddevOverTime:
            return Self.variance(samples).squareRoot()
        case .stdvarOverTime:
            return Self.variance(samples)
        case .quantileOverTime(let q):
            return Self.quantile(q, samples.map(\.value))
        case .rate:
            return Self.extrapolatedDelta(samples, end: end, range: range, isCounter: true, isRate: true)
        case .increase:
            return Self.extrapolatedDelta(samples, end: end, range: range, isCounter: true, isRate: false)
        case .delta:
            return Self.extrapolatedDelta(samples, end: end, range: range, isCounter: false, isRate: false)
        case .deriv:
            guard samples.count >= 2 else { return nil }
            return Self.linearRegression(samples, interceptTime: samples[0].timestamp).slope
        case .predictLinear(let seconds):
            guard samples.count >= 2 else { return nil }
            let fit = Self.linearRegression(samples, interceptTime: end)
            return fit.slope * seconds + fit.intercept
        case .changes:
            var changes = 0
            for i in samples.indices.dropFirst() where samples[i].value != samples[i - 1].value
                && !(samples[i].value.isNaN && samples[i - 1].value.isNaN) { changes += 1 }
            return Double(changes)
        case .resets:
            var resets = 0
            for i in samples.indices.dropFirst() where samples[i].value < samples[i - 1].value { resets += 1 }
            return Double(resets)
        }
    }

    /// Population variance (Welford).
    static func variance(_ samples: [Sample]) -> Double {
        var count = 0.0, mean = 0.0, m2 = 0.0
        for s in samples {
            count += 1
            let delta = s.value - mean
            mean += delta / count
            m2 += delta * (s.value - mean)
        }
        return m2 / count
    }

    /// PromQL's quantile: linear interpolation between the closest ranks.
    public static func quantile(_ q: Double, _ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        if q.isNaN { return .nan }
        if q < 0 { return -.infinity }
        if q > 1 { return .infinity }
        let sorted = values.sorted()
        let rank = q * Double(sorted.count - 1)
        let lower = max(0, Int(rank.rounded(.down)))
        let upper = min(sorted.count - 1, lower + 1)
        let weight = rank - rank.rounded(.down)
        return sorted[lower] * (1 - weight) + sorted[upper] * weight
    }

    /// Prometheus' `extrapolatedRate`: the change over the window, counter resets added back,
    /// extrapolated to the window's edges unless the series starts or ends inside it.
    static func extrapolatedDelta(_ samples: [Sample], end: Timestamp, range: Int64, isCounter: Bool, isRate: Bool) -> Double? {
        guard samples.count >= 2, let first = samples.first, let last = samples.last else { return nil }
        let start = end - range
        var result = last.value - first.value
        if isCounter {
            var previous = first.value
            for s in samples.dropFirst() {
                if s.value < previous { result += previous }
                previous = s.value
            }
        }
        var durationToStart = Double(first.timestamp - start) / 1000
        let durationToEnd = Double(end - last.timestamp) / 1000
        let sampledInterval = Double(last.timestamp - first.timestamp) / 1000
        let averageInterval = sampledInterval / Double(samples.count - 1)
        if isCounter && result > 0 && first.value >= 0 {
            let durationToZero = sampledInterval * (first.value / result)
            if durationToZero < durationToStart { durationToStart = durationToZero }
        }
        let threshold = averageInterval * 1.1
        var extrapolateTo = sampledInterval
        extrapolateTo += durationToStart < threshold ? durationToStart : averageInterval / 2
        extrapolateTo += durationToEnd < threshold ? durationToEnd : averageInterval / 2
        result *= extrapolateTo / sampledInterval
        if isRate { result /= Double(range) / 1000 }
        return result
    }

    /// Least squares over (seconds since `interceptTime`, value).
    static func linearRegression(_ samples: [Sample], interceptTime: Timestamp) -> (slope: Double, intercept: Double) {
        var n = 0.0, sumX = 0.0, sumY = 0.0, sumXY = 0.0, sumX2 = 0.0
        for s in samples {
            let x = Double(s.timestamp - interceptTime) / 1000
            n += 1
            sumX += x
            sumY += s.value
            sumXY += x * s.value
            sumX2 += x * x
        }
        let covariance = sumXY - sumX * sumY / n
        let variance = sumX2 - sumX * sumX / n
        let slope = variance == 0 ? 0 : covariance / variance
        let intercept = sumY / n - slope * sumX / n
        return (slope, intercept)
    }
}
