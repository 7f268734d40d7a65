import Foundation
import Testing
import VigilCore
import VigilServer
import VigilState

@Suite("report figures")
struct ReportTests {
    /// Two days, two owners, three tasks (one CPU-only), two GPUs, and a total carried over from before
    /// costs were split by task.
    let shares = [
        CostShareRow(day: "2026-11-26", owner: "ana", task: 1, gpu: "0", cost: 4, gpuSeconds: 3600),
        CostShareRow(day: "2026-11-26", owner: "ana", task: 1, gpu: "1", cost: 4, gpuSeconds: 3600),
        CostShareRow(day: "2026-11-27", owner: "ana", task: 1, gpu: "0", cost: 2, gpuSeconds: 1800),
        CostShareRow(day: "2026-11-27", owner: "ben", task: 2, gpu: "1", cost: 1.5, gpuSeconds: 900),
        CostShareRow(day: "2026-11-27", owner: "ben", task: 3, gpu: "", cost: 0.5, gpuSeconds: 0),
        CostShareRow(day: "2026-11-26", owner: "carl", task: 0, gpu: "", cost: 3, gpuSeconds: 7200),
    ]

    func report(_ by: CostReport.Grouping) -> CostReport {
        CostReport(shares: shares, since: "2026-11-26", by: by, currency: "EUR", names: [1: "train", 2: "eval", 3: "etl"],
                   models: ["0": "NVIDIA H100", "1": "NVIDIA L40S"])
    }

    func rows(_ report: CostReport) -> [[String]] {
        report.rows.map { [$0.key, $0.label, String(format: "%.2f", $0.cost), String(format: "%.2f", $0.gpuHours), "\($0.tasks)", String(format: "%.3f", $0.share)] }
    }

    @Test("cost by owner, task, GPU and day add the same rows up to the same total")
    func costGroupings() {
        // Total 15; GPU-hours (3600 + 3600 + 1800 + 900 + 7200) / 3600 = 4.75.
        for by in CostReport.Grouping.allCases {
            let report = report(by)
            #expect(report.total == 15 && report.gpuHours == 4.75 && report.currency == "EUR" && report.since == "2026-11-26")
            #expect(abs(report.rows.reduce(0) { $0 + $1.share } - 1) < 1e-12)
        }
        #expect(rows(report(.owner)) == [["ana", "", "10.00", "2.50", "1", "0.667"], ["carl", "", "3.00", "2.00", "0", "0.200"],
                                         ["ben", "", "2.00", "0.25", "2", "0.133"]])
        #expect(rows(report(.task)) == [["1", "train", "10.00", "2.50", "1", "0.667"],
                                        ["0", "(before per-task accounting)", "3.00", "2.00", "0", "0.200"],
                                        ["2", "eval", "1.50", "0.25", "1", "0.100"], ["3", "etl", "0.50", "0.00", "1", "0.033"]])
        #expect(rows(report(.gpu)) == [["0", "NVIDIA H100", "6.00", "1.50", "1", "0.400"], ["1", "NVIDIA L40S", "5.50", "1.25", "2", "0.367"],
                                       ["cpu", "CPU-only tasks", "3.50", "2.00", "1", "0.233"]])
        #expect(rows(report(.day)) == [["2026-11-26", "", "11.00", "4.00", "1", "0.733"], ["2026-11-27", "", "4.00", "0.75", "3", "0.267"]])
    }

    @Test("a task report sets the task beside the median of the last 20 similar tasks that succeeded")
    func taskReport() throws {
        func task(_ id: Int64, kind: String = "train", state: String = "succeeded", run: Double, util: Double?, peak: Int64?, cost: Double) -> TaskFacts {
            TaskFacts(id: id, name: "t\(id)", owner: "ana", kind: kind, state: state, priority: 50, offPeak: false, gpus: 2, gpuIndices: [0, 1],
                      gpuModel: nil, gpuMemoryDeclared: 0, gpuMemoryPeak: peak, meanUtilization: util, submitted: id * 1000,
                      started: id * 1000, ended: id * 1000 + Int64(run * 1000), runSeconds: run, waitSeconds: 0,
                      gpuHours: 2 * run / 3600, cost: cost, offPeakCost: 0, timeLimitSeconds: nil)
        }
        let all = [
            task(1, run: 3600, util: 0.5, peak: 10 << 30, cost: 8),
            task(2, run: 5400, util: 0.7, peak: 20 << 30, cost: 12),
            task(3, run: 1800, util: nil, peak: nil, cost: 4),
            task(4, kind: "other", run: 99999, util: 0.1, peak: 1 << 30, cost: 99),
            task(5, state: "failed", run: 60, util: 0.1, peak: 1 << 30, cost: 1),
            task(6, run: 7200, util: 0.9, peak: 30 << 30, cost: 16),
        ]
        let report = TaskReport(task: all[5], all: all, indicators: [], currency: "EUR")
        // Similar: tasks 1, 2, 3 (same kind, succeeded; 4 is another kind, 5 failed, 6 is itself).
        let similar = try #require(report.similar)
        #expect(similar.count == 3 && similar.runSeconds == 3600 && similar.gpuHours == 2 && similar.cost == 8)
        #expect(similar.meanUtilization == 0.6 && similar.gpuMemoryPeak == Double(15 << 30), "medians of the two that have them")
        #expect(TaskReport(task: all[3], all: all, indicators: [], currency: "EUR").similar == nil)
    }
}
