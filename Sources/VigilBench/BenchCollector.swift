import Foundation
import VigilCollectors
import VigilState

/// `bench`: the latest `vigil bench` run of this host as metrics, so rules, recommendations, Prometheus and
/// dashboards read benchmark results like anything else. Reads the state database every minute; nothing is
/// reported before the first run.
public struct BenchCollector: Collector {
    public let name = "bench"
    let history: BenchHistory
    let host: String

    public init(database: StateDatabase, host: String = HostFacts.detect().hostname) {
        history = BenchHistory(database: database)
        self.host = host
    }

    public func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        let runs = try history.runs(host: host, limit: 50)
        // Full runs when there are any: quick ones are for a first look.
        guard let run = runs.first(where: { !$0.quick }) ?? runs.first else { return batch }
        let verdicts = try history.verdicts(for: run)
        batch.gauge("vigil_bench_last_run_timestamp_seconds", "When the benchmark run these figures come from ended.",
                    ["kind": run.quick ? "quick" : "full"], Double(run.time) / 1000)
        for result in run.results where result.skipped == nil {
            let labels = ["benchmark": result.name]
            batch.gauge("vigil_bench_result", "The latest figure of each benchmark, in its unit.",
                        ["benchmark": result.name, "unit": result.unit], result.value)
            batch.gauge("vigil_bench_score", "The latest score of each benchmark (1000 = the reference machine).", labels, result.score)
            if let efficiency = result.efficiency {
                batch.gauge("vigil_bench_efficiency_ratio", "The latest figure as a share of its peak (theoretical, or best seen here).",
                            labels, efficiency)
            }
            if let verdict = verdicts[result.name], verdict.kind != .notEnoughHistory {
                batch.gauge("vigil_bench_regression", "1 when the latest figure is a regression against this host's earlier runs.",
                            labels, verdict.kind == .regression ? 1 : 0)
                if let change = verdict.change {
                    batch.gauge("vigil_bench_change_ratio", "The latest figure's change against the median of earlier runs.", labels, change)
                }
            }
        }
        return batch
    }
}
