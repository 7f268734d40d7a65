import Testing
import VigilCore
@testable import VigilStore

private let second: Int64 = 1000
private let minute: Int64 = 60_000

private func store(_ series: [(String, [String: String], [(Int64, Double)])]) -> MetricStore {
    let store = MetricStore()
    for (name, labels, samples) in series {
        let ref = store.series(Labels(name: name, labels))
        for (t, v) in samples { store.append(ref, t, v) }
    }
    return store
}

private func value(_ vector: [VectorSample]) -> Double? {
    vector.count == 1 ? vector[0].value : nil
}

@Suite("store queries agree with hand-computed values")
struct QueryTests {
    @Test("rate and increase add counter resets back and extrapolate like Prometheus")
    func counterReset() throws {
        // 0, 10, 20, reset to 5, 15, 25 every 10 s; window (0 s, 60 s].
        let s = store([("requests_total", [:], [(10 * second, 0), (20 * second, 10), (30 * second, 20),
                                                (40 * second, 5), (50 * second, 15), (60 * second, 25)])])
        let sel = SeriesSelector(name: "requests_total")
        // Raw change 25 + 20 lost at the reset = 45; starts at 0, so no extrapolation to the left.
        #expect(value(s.evaluate(.increase, sel, range: minute, at: 60 * second)) == 45)
        #expect(value(s.evaluate(.rate, sel, range: minute, at: 60 * second)) == 0.75)
        #expect(value(s.evaluate(.resets, sel, range: minute, at: 60 * second)) == 1)
        // The function drops the metric name, as Prometheus does.
        #expect(s.evaluate(.rate, sel, range: minute, at: 60 * second).first?.labels.name == nil)
    }

    @Test("rate extrapolates to the window's start when the counter did not start in it")
    func extrapolation() {
        let s = store([("c_total", [:], (1...6).map { (Int64($0) * 10 * second, Double(90 + 10 * $0)) })])
        let sel = SeriesSelector(name: "c_total")
        // Change 50 over 50 s of samples, extrapolated by 10 s to the window start: 60.
        #expect(value(s.evaluate(.increase, sel, range: minute, at: 60 * second)) == 60)
        #expect(value(s.evaluate(.rate, sel, range: minute, at: 60 * second)) == 1)
        // One sample in the window: no rate.
        #expect(s.evaluate(.rate, sel, range: 5 * second, at: 60 * second).isEmpty)
    }

    @Test("delta, deriv and predict_linear of a gauge")
    func gaugeFunctions() {
        let s = store([("g", [:], [(20 * second, 1), (40 * second, 2), (60 * second, 3)]),
                       ("line", [:], (1...6).map { (Int64($0) * 10 * second, 2 * Double($0 * 10) + 1) })])
        // Change 2 over 40 s, extrapolated by 20 s (within 1.1 × the 20 s spacing) to 60 s: 3.
        #expect(value(s.evaluate(.delta, SeriesSelector(name: "g"), range: minute, at: 60 * second)) == 3)
        #expect(value(s.evaluate(.deriv, SeriesSelector(name: "line"), range: minute, at: 60 * second)) == 2)
        // v = 2t + 1: at 60 s it is 121, ten seconds later 141.
        let predicted = value(s.evaluate(.predictLinear(seconds: 10), SeriesSelector(name: "line"), range: minute, at: 60 * second))
        #expect(abs((predicted ?? 0) - 141) < 1e-9)
    }

    @Test("the *_over_time family")
    func overTime() {
        let values: [Double] = [2, 4, 4, 4, 5, 5, 7, 9]
        let s = store([("x", ["gpu": "0"], values.enumerated().map { (Int64($0.offset + 1) * second, $0.element) })])
        let sel = SeriesSelector(name: "x")
        let at = 8 * second
        #expect(value(s.evaluate(.avgOverTime, sel, range: minute, at: at)) == 5)
        #expect(value(s.evaluate(.minOverTime, sel, range: minute, at: at)) == 2)
        #expect(value(s.evaluate(.maxOverTime, sel, range: minute, at: at)) == 9)
        #expect(value(s.evaluate(.sumOverTime, sel, range: minute, at: at)) == 40)
        #expect(value(s.evaluate(.countOverTime, sel, range: minute, at: at)) == 8)
        #expect(value(s.evaluate(.stddevOverTime, sel, range: minute, at: at)) == 2)
        #expect(value(s.evaluate(.stdvarOverTime, sel, range: minute, at: at)) == 4)
        #expect(value(s.evaluate(.lastOverTime, sel, range: minute, at: at)) == 9)
        #expect(value(s.evaluate(.changes, sel, range: minute, at: at)) == 4)
        // Quantile by linear interpolation: rank 0.5 × 7 = 3.5 between 4 and 5.
        #expect(value(s.evaluate(.quantileOverTime(0.5), sel, range: minute, at: at)) == 4.5)
        #expect(value(s.evaluate(.quantileOverTime(0.9), sel, range: minute, at: at)) == 7 + 0.3 * 2)
        // The window is left-open: (t - range, t]. At 8 s with 3 s: samples at 6, 7, 8 s.
        #expect(value(s.evaluate(.avgOverTime, sel, range: 3 * second, at: at)) == 7)
        // last_over_time keeps the name; others drop it.
        #expect(s.evaluate(.lastOverTime, sel, range: minute, at: at).first?.labels.name == "x")
        #expect(s.evaluate(.maxOverTime, sel, range: minute, at: at).first?.labels == Labels(dictionary: ["gpu": "0"]))
    }

    @Test("instant queries look back 5 minutes and stop at a staleness marker")
    func staleness() {
        let s = store([("up", [:], [(0, 1)]), ("gone", [:], [(0, 1), (10 * second, StaleMarker.value)])])
        #expect(value(s.instant(SeriesSelector(name: "up"), at: 5 * minute - 1)) == 1)
        #expect(s.instant(SeriesSelector(name: "up"), at: 5 * minute).isEmpty)
        #expect(value(s.instant(SeriesSelector(name: "gone"), at: 9 * second)) == 1)
        #expect(s.instant(SeriesSelector(name: "gone"), at: 11 * second).isEmpty)
        // Range functions skip the marker.
        #expect(value(s.evaluate(.countOverTime, SeriesSelector(name: "gone"), range: minute, at: 11 * second)) == 1)
        // The exposition leaves stale and old series out.
        #expect(s.snapshot(at: 11 * second).map(\.name) == ["up"])
    }

    @Test("label matchers =, !=, =~, !~ (anchored)")
    func matchers() throws {
        let s = store([("gpu_temp", ["gpu": "0", "model": "H100"], [(1000, 50)]),
                       ("gpu_temp", ["gpu": "1", "model": "H100"], [(1000, 60)]),
                       ("gpu_temp", ["gpu": "10", "model": "A100"], [(1000, 70)])])
        func values(_ text: String) throws -> [Double] {
            try s.instant(SeriesSelector(parsing: text), at: 2000).sorted { $0.labels < $1.labels }.map(\.value)
        }
        #expect(try values(#"gpu_temp{gpu="1"}"#) == [60])
        #expect(try values(#"gpu_temp{gpu!="1"}"#) == [50, 70])
        #expect(try values(#"gpu_temp{gpu=~"1"}"#) == [60], "regex is anchored: 10 does not match 1")
        #expect(try values(#"gpu_temp{gpu=~"1.*"}"#) == [60, 70])
        #expect(try values(#"gpu_temp{model!~"H.*", gpu=~"[0-9]+"}"#) == [70])
        #expect(try values(#"{__name__=~"gpu_.*", model="A100"}"#) == [70])
        #expect(try values(#"gpu_temp{missing=""}"#).count == 3, "an empty value matches an absent label")
        #expect(throws: VigilError.self) { try SeriesSelector(parsing: #"gpu_temp{gpu="1""#) }
        #expect(throws: VigilError.self) { try SeriesSelector(parsing: #"{gpu=~".*"}"#) }
        #expect(throws: VigilError.self) { try SeriesSelector(parsing: #"x{a=~"("}"#) }
    }

    @Test("aggregation by and without labels, topk and bottomk")
    func aggregation() {
        func sample(_ labels: [String: String], _ v: Double) -> VectorSample {
            VectorSample(labels: Labels(name: "util", labels), value: v)
        }
        let vector = [sample(["gpu": "0", "host": "a"], 0.5), sample(["gpu": "1", "host": "a"], 0.7),
                      sample(["gpu": "0", "host": "b"], 0.1)]
        let byHost = Aggregation.apply(.sum, vector, grouping: .by(["host"]))
        #expect(byHost == [VectorSample(labels: Labels(dictionary: ["host": "a"]), value: 1.2),
                           VectorSample(labels: Labels(dictionary: ["host": "b"]), value: 0.1)])
        let withoutHost = Aggregation.apply(.max, vector, grouping: .without(["host"]))
        #expect(withoutHost.map(\.value) == [0.5, 0.7])
        #expect(withoutHost.first?.labels == Labels(dictionary: ["gpu": "0"]))
        #expect(Aggregation.apply(.avg, vector).map(\.value) == [(0.5 + 0.7 + 0.1) / 3])
        #expect(Aggregation.apply(.count, vector).map(\.value) == [3])
        #expect(Aggregation.apply(.min, vector).map(\.value) == [0.1])
        let top = Aggregation.apply(.topk, vector, parameter: 2)
        #expect(top.map(\.value) == [0.7, 0.5])
        #expect(top.first?.labels["gpu"] == "1", "topk keeps the original labels")
        #expect(Aggregation.apply(.bottomk, vector, grouping: .by(["host"]), parameter: 1).map(\.value) == [0.5, 0.1])
    }

    @Test("range queries evaluate at each step")
    func rangeQuery() {
        let s = store([("c_total", [:], (0...120).map { (Int64($0) * second, Double($0)) })])
        let result = s.rangeQuery(.rate, SeriesSelector(name: "c_total"), range: 10 * second,
                                  start: 60 * second, end: 120 * second, step: 30 * second)
        #expect(result.count == 1)
        #expect(result[0].samples.map(\.timestamp) == [60 * second, 90 * second, 120 * second])
        for sample in result[0].samples { #expect(abs(sample.value - 1) < 1e-9) }
    }

    @Test("retention drops old chunks and dead series; memory shrinks")
    func retention() {
        let s = MetricStore(retention: 10 * minute)
        let live = s.series(Labels(name: "live"))
        let dead = s.series(Labels(name: "dead"))
        for i in 0..<3600 { s.append(live, Int64(i) * second, Double(i % 7)) }
        for i in 0..<60 { s.append(dead, Int64(i) * second, 1) }
        let before = s.statistics()
        #expect(before.series == 2 && before.samples == 3660)
        #expect(s.compact(now: 3600 * second) == 1)
        let after = s.statistics()
        #expect(after.series == 1)
        #expect(after.samples <= 600 + 240 && after.samples >= 600, "only the retention window (plus one chunk) is kept")
        #expect(after.sampleBytes < before.sampleBytes)
        let kept = s.samples(live, after: 0, through: 3600 * second)
        #expect(kept.last == Sample(3599 * second, Double(3599 % 7)))
        #expect(s.instant(SeriesSelector(name: "dead"), at: 3600 * second).isEmpty)
    }

    @Test("many writers append at once without losing a sample")
    func concurrentWriters() async {
        let s = MetricStore()
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    let own = s.series(Labels(name: "w", ["writer": "\(writer)"]))
                    for i in 0..<5000 {
                        s.append(own, Int64(i) * 1000, Double(i))
                        s.append(Labels(name: "shared", ["n": "\(i % 50)"]), Int64(writer * 100_000 + i), 1)
                    }
                }
            }
        }
        let stats = s.statistics()
        #expect(stats.series == 8 + 50)
        for writer in 0..<8 {
            let ref = s.series(Labels(name: "w", ["writer": "\(writer)"]))
            #expect(s.samples(ref, after: -1, through: .max).count == 5000)
        }
        #expect(stats.appendedTotal + stats.outOfOrderTotal == 8 * 5000 * 2)
    }
}
