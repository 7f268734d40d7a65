import VigilCore

/// PromQL's aggregation operators over an instant vector.
public enum AggregationOperator: String, Sendable, CaseIterable {
    case sum, avg, min, max, count, topk, bottomk, stddev, stdvar
}

/// How output groups are formed: `by` keeps only the named labels, `without` drops them (and the
/// metric name). Neither: one group.
public enum Grouping: Sendable, Hashable {
    case all
    case by(Set<String>)
    case without(Set<String>)

    func key(_ labels: Labels) -> Labels {
        switch self {
        case .all: Labels()
        case .by(let names): labels.keeping(names)
        case .without(let names): labels.removing(names.union([Labels.metricName]))
        }
    }
}

public enum Aggregation {
    /// Applies `operation` per group. `parameter` is k for topk/bottomk.
    public static func apply(_ operation: AggregationOperator, _ vector: [VectorSample], grouping: Grouping = .all,
                             parameter: Double? = nil) -> [VectorSample] {
        var groups: [Labels: [VectorSample]] = [:]
        var order: [Labels] = []
        for element in vector {
            let key = grouping.key(element.labels)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(element)
        }
        var out: [VectorSample] = []
        for key in order.sorted() {
            let members = groups[key]!
            let values = members.map(\.value)
            switch operation {
            case .sum: out.append(VectorSample(labels: key, value: values.reduce(0, +)))
            case .avg:
                var mean = 0.0
                for (i, v) in values.enumerated() { mean += (v - mean) / Double(i + 1) }
                out.append(VectorSample(labels: key, value: mean))
            case .min: out.append(VectorSample(labels: key, value: values.filter { !$0.isNaN }.min() ?? .nan))
            case .max: out.append(VectorSample(labels: key, value: values.filter { !$0.isNaN }.max() ?? .nan))
            case .count: out.append(VectorSample(labels: key, value: Double(values.count)))
            case .stddev, .stdvar:
                let variance = RangeFunction.variance(values.map { Sample(0, $0) })
                out.append(VectorSample(labels: key, value: operation == .stddev ? variance.squareRoot() : variance))
            case .topk, .bottomk:
                let k = max(0, Int(saturating: parameter ?? 1))
                let sorted = members.sorted { lhs, rhs in
                    if lhs.value.isNaN { return false }
                    if rhs.value.isNaN { return true }
                    return operation == .topk ? lhs.value > rhs.value : lhs.value < rhs.value
                }
                out.append(contentsOf: sorted.prefix(k))
            }
        }
        return out
    }
}
