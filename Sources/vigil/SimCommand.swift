import ArgumentParser
import Foundation
import VigilAllocator
import VigilCore
import VigilLua
import VigilStore

struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Replay a job trace through the allocator in virtual time, beside a FIFO baseline.",
        discussion: """
            The trace is CSV with a header: job_id, num_gpu, submit_time and duration (seconds), and optionally
            model_name (the task kind durations are predicted from) and user (the owner for fair share); the
            Tiresias traces have this shape. No process runs: the allocator's planner places every job on the
            clock of the trace, predicting durations from the runs that finished before, exactly as the daemon
            does. Printed: average, p50 and p95 job completion time, makespan, GPU utilisation (allocated
            GPU-seconds over GPUs × makespan), wait p50 and p95, and cost, for the policy and for strict FIFO.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The job trace (CSV).", valueName: "file"))
    var trace: String

    @Option(name: .long, help: "GPUs of the simulated host.")
    var gpus: Int = 8

    @Option(name: .long, help: ArgumentHelp("Policy script (default: the configured one, rules/policy.lua).", valueName: "file"))
    var policy: String?

    @Option(name: .long, help: ArgumentHelp("Override the policy's strategy: immediate, batch or priority.", valueName: "strategy"))
    var strategy: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        if let strategy, Policy.Strategy(rawValue: strategy) == nil {
            throw ValidationError("--strategy must be immediate, batch or priority")
        }
        guard gpus > 0 else { throw ValidationError("--gpus must be at least 1") }
    }

    func run() throws {
        let configuration = try global.loadConfiguration()
        let logger = global.makeLogger()
        let text: String
        do { text = try String(contentsOfFile: trace, encoding: .utf8) } catch {
            throw VigilError(.io, "cannot read the trace: \(error.localizedDescription)", location: trace)
        }
        let jobs: [TraceJob]
        do { jobs = try TraceJob.parseCSV(text, file: trace) } catch { throw VigilError(.parse, "\(error)") }
        let path = policy ?? configuration.policyPath
        let script = PolicyScript(path: path, store: MetricStore(), clock: ManualWallClock(0),
                                  limits: LuaLimits(configuration.lua), logger: logger)
        if let policy, !FileManager.default.fileExists(atPath: policy) { throw VigilError(.io, "no such file", location: policy) }
        script.reloadIfChanged()
        if let error = script.lastError { throw VigilError(.invalidConfiguration, error) }
        var chosen = script.policy
        if let strategy { chosen.strategy = Policy.Strategy(rawValue: strategy)! }
        let simulator = Simulator(gpuCount: gpus, costs: CostModel(configuration.costs))
        var noScore = NoScorer()
        let baseline = simulator.run(jobs, policy: .fifo, name: "fifo", scorer: &noScore)
        var scorer = script
        let result = simulator.run(jobs, policy: chosen, name: "\(chosen.strategy.rawValue)/\(chosen.target.rawValue)", scorer: &scorer)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Reply: Encodable { var trace: String; var gpus: Int; var policy_file: String; var fifo: SimulationReport; var policy: SimulationReport }
            let data = try encoder.encode(Reply(trace: trace, gpus: gpus, policy_file: path, fifo: baseline, policy: result))
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("\(jobs.count) jobs from \(trace) on \(gpus) GPUs; policy \(path) (\(result.policy))\n")
        let rows: [(String, (SimulationReport) -> Double, String)] = [
            ("average JCT", \.averageJCT, "s"), ("p50 JCT", \.p50JCT, "s"), ("p95 JCT", \.p95JCT, "s"),
            ("makespan", \.makespan, "s"), ("GPU utilisation", { $0.utilization * 100 }, "%"),
            ("wait p50", \.p50Wait, "s"), ("wait p95", \.p95Wait, "s"), ("cost", \.cost, configuration.costs.currency),
        ]
        func cell(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        print("\("".padding(toLength: 20, withPad: " ", startingAt: 0))\(cell("FIFO", 12))\(cell(result.policy, 22))\(cell("ratio", 9))")
        for (name, value, unit) in rows {
            let (a, b) = (value(baseline), value(result))
            let ratio = a != 0 ? String(format: "%.2f", b / a) : "-"
            print("\((name + " (" + unit + ")").padding(toLength: 20, withPad: " ", startingAt: 0))\(cell(String(format: "%.1f", a), 12))\(cell(String(format: "%.1f", b), 22))\(cell(ratio, 9))")
        }
        print("\nscheduling passes: \(result.passes), mean \(String(format: "%.1f", result.meanPassMicroseconds)) µs each"
              + (script.hasScore ? "; the policy's score was called \(script.scoreCalls) times (\(script.scoreFailures) failed)" : ""))
    }
}
