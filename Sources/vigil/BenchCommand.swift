import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import VigilBench
import VigilCore
import VigilRules
import VigilState

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark this host (compute, memory, network, disk, GPU), keep the results, compare them.",
        subcommands: [BenchRunCommand.self, BenchHistoryCommand.self, BenchCompareCommand.self, BenchExportCommand.self,
                      BenchServeCommand.self],
        defaultSubcommand: BenchRunCommand.self
    )
}

struct BenchRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run benchmarks: vigil bench [compute|memory|network|disk|gpu|all]… [--quick] [--json].",
        discussion: """
            Each result has its throughput or latency (p50/p99), the peak it is compared with (the hardware's \
            theoretical figure where Vigil can compute one, else the best seen on this host), the efficiency, \
            the cost per operation at costs.cpu_core_hour, a score (1000 = the reference machine in \
            `vigil bench` docs) and how it compares with this host's earlier runs. Results are kept in the \
            data folder. Without a GPU the gpu suite says so; that is not a failure.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: ArgumentHelp("Suites: compute, memory, network, disk, gpu or all (default all).", valueName: "suite"))
    var suites: [String] = []
    @Flag(name: .long, help: "Shorter runs (under 30 s in all).") var quick = false
    @Flag(name: .long, help: "Print the run as JSON.") var json = false
    @Option(name: .long, help: ArgumentHelp("HOST:PORT of a `vigil bench serve` for network figures to a peer.", valueName: "address"))
    var peer: String?
    @Flag(name: .long, help: "Do not keep the results.") var noSave = false

    func validate() throws {
        for suite in suites where suite != "all" && BenchSuite(rawValue: suite) == nil {
            throw ValidationError("unknown suite '\(suite)' (compute, memory, network, disk, gpu, all)")
        }
    }

    func run() throws {
        let configuration = try global.loadConfiguration()
        let chosen: [BenchSuite] = suites.isEmpty || suites.contains("all") ? BenchSuite.allCases : suites.compactMap(BenchSuite.init)
        let database = try StateDatabase(dataDirectory: configuration.dataDirectory)
        let history = BenchHistory(database: database)
        let facts = HostFacts.detect()
        var options = BenchRunner.Options()
        options.quick = quick
        options.directory = configuration.dataDirectory
        options.peer = peer
        options.coreHourPrice = configuration.costs.cpuCoreHour
        options.currency = configuration.costs.currency
        let terminal = isatty(STDERR_FILENO) == 1 && !json
        let runner = BenchRunner(options: options, facts: facts, bestSeen: { history.best($0, host: facts.hostname) }) { name, done, total in
            guard terminal else { return }
            let width = 24
            let filled = total == 0 ? width : width * done / total
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = done == total ? "" : "[\(bar)] \(done + 1)/\(total) \(name)"
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        }
        let run = runner.run(chosen)
        let verdicts = try history.verdicts(for: run)
        if !noSave { try history.save(run) }
        if json {
            print(try BenchHistory.encode(run))
            return
        }
        print(BenchReport.facts(run.facts))
        print(BenchReport.table(run, verdicts: verdicts), terminator: "")
        for result in run.results where result.skipped != nil {
            print("\(result.name): \(result.skipped!)")
        }
        print("Scores: 1000 = \(BenchReference.machine). Results kept in \(database.path)\(noSave ? " (not this run: --no-save)" : "").")
    }
}

/// The tables the bench commands print.
enum BenchReport {
    static func facts(_ facts: HostFacts) -> String {
        String(format: "%@: %@, %d CPUs at up to %.0f MHz (%d-wide vectors%@), %@ memory, Linux %@", facts.hostname, facts.cpuModel,
               facts.cpus, facts.maxMegahertz, facts.vectorDoubles, facts.fma ? ", FMA" : "", Format.bytes(Double(facts.memoryBytes)),
               facts.kernel)
    }

    static func figure(_ value: Double?) -> String {
        guard let value else { return "" }
        if value == 0 { return "0" }
        if abs(value) >= 100 { return String(format: "%.0f", value) }
        if abs(value) >= 10 { return String(format: "%.1f", value) }
        if abs(value) >= 0.01 { return String(format: "%.2f", value) }
        return String(format: "%.2e", value)
    }

    static func verdictText(_ verdict: BenchStatistics.Verdict?) -> String {
        guard let verdict else { return "" }
        let change = verdict.change.map { String(format: " (%+.1f%%)", $0 * 100) } ?? ""
        switch verdict.kind {
        case .notEnoughHistory: return "first runs"
        case .normal: return "as before" + change
        case .regression: return "REGRESSION" + change
        case .improvement: return "better" + change
        }
    }

    static func table(_ run: BenchRun, verdicts: [String: BenchStatistics.Verdict]) -> String {
        var rows = [["Benchmark", "Result", "p50 / p99", "Peak", "Efficiency", "Score", "Cost", "vs earlier runs"]]
        for result in run.results where result.skipped == nil {
            let percentiles = result.p50.map { "\(figure($0)) / \(figure(result.p99))" } ?? ""
            let peak = result.peak.map { "\(figure($0)) \(result.unit) (\(result.peakSource ?? ""))" } ?? ""
            rows.append([result.name, "\(figure(result.value)) \(result.unit)", percentiles, peak,
                         result.efficiency.map { String(format: "%.0f%%", $0 * 100) } ?? "",
                         String(format: "%.0f", result.score),
                         result.cost.map { String(format: "%.2e %@", $0, result.costUnit ?? "") } ?? "",
                         verdictText(verdicts[result.name])])
        }
        return TextTable.render(rows, rightAligned: [1, 4, 5])
    }
}

struct BenchHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "This host's earlier runs: per benchmark the median, spread, trend and the latest verdict."
    )

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Only this benchmark, run by run.") var name: String?
    @Flag(name: .long, help: "Quick runs instead of full ones.") var quick = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let history = BenchHistory(database: try StateDatabase(dataDirectory: configuration.dataDirectory))
        let host = HostFacts.detect().hostname
        let runs = try history.runs(host: host, limit: 200).filter { $0.quick == quick }
        guard !runs.isEmpty else {
            print("no \(quick ? "quick" : "full") runs on \(host) yet: `vigil bench\(quick ? " --quick" : "")` makes one")
            return
        }
        if let name {
            var rows = [["Time", "Result", "vs the runs before it"]]
            for run in runs.reversed() {
                guard let result = run.results.first(where: { $0.name == name && $0.skipped == nil }) else { continue }
                let earlier = try history.values(name, host: host, quick: quick, before: run.time)
                let verdict = BenchStatistics.verdict(value: result.value, history: earlier, higherIsBetter: result.higherIsBetter)
                rows.append([RFC3339.string(run.time), "\(BenchReport.figure(result.value)) \(result.unit)", BenchReport.verdictText(verdict)])
            }
            print(TextTable.render(rows, rightAligned: [1]), terminator: "")
            return
        }
        var rows = [["Benchmark", "Runs", "Median", "Spread", "Trend per run", "Latest", "Latest vs before"]]
        let names = runs.flatMap { $0.results.filter { $0.skipped == nil }.map(\.name) }
        var seen = Set<String>()
        for benchmark in names where seen.insert(benchmark).inserted {
            let values = try history.values(benchmark, host: host, quick: quick, limit: 200)
            guard let latest = runs.first(where: { $0.results.contains { $0.name == benchmark } }),
                  let result = latest.results.first(where: { $0.name == benchmark }) else { continue }
            let before = try history.values(benchmark, host: host, quick: quick, before: latest.time)
            rows.append([benchmark, "\(values.count)", "\(BenchReport.figure(BenchStatistics.median(values))) \(result.unit)",
                         BenchReport.figure(BenchStatistics.robustSpread(values)),
                         BenchStatistics.trendPerRun(values).map { String(format: "%+.1f%%", $0 * 100) } ?? "",
                         "\(BenchReport.figure(result.value)) \(result.unit)",
                         BenchReport.verdictText(BenchStatistics.verdict(value: result.value, history: before, higherIsBetter: result.higherIsBetter))])
        }
        print(TextTable.render(rows, rightAligned: [1, 2, 3, 4, 5]), terminator: "")
    }
}

struct BenchExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "This host's facts and runs as JSON, for `vigil bench compare --with` on another host."
    )

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?

    func run() throws {
        let configuration = try global.loadConfiguration()
        let history = BenchHistory(database: try StateDatabase(dataDirectory: configuration.dataDirectory))
        let facts = HostFacts.detect()
        let text = try BenchHistory.encode(BenchHistory.Export(facts: facts, runs: try history.runs(host: facts.hostname, limit: 100)))
        if let output {
            try text.write(toFile: output, atomically: true, encoding: .utf8)
        } else {
            print(text)
        }
    }
}

struct BenchCompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "The latest run side by side with a peer's (an export file or a daemon's URL), the optimum and history.",
        discussion: """
            --with takes a file written by `vigil bench export` on another host, or the base URL of a running \
            daemon there (its /api/v1/benchmarks). Without --with, the latest run is compared with this \
            host's earlier runs and with the peaks.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: ArgumentHelp("A peer's export file, or http://HOST:PORT of its daemon.", valueName: "file-or-url"))
    var with: String?
    @Flag(name: .long, help: "Compare quick runs.") var quick = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let history = BenchHistory(database: try StateDatabase(dataDirectory: configuration.dataDirectory))
        let host = HostFacts.detect().hostname
        guard let mine = try history.runs(host: host, limit: 200).first(where: { $0.quick == quick }) else {
            throw ValidationError("no \(quick ? "quick" : "full") run on \(host) yet: run `vigil bench\(quick ? " --quick" : "")` first")
        }
        var peer: BenchRun?
        if let with {
            let export = try Self.load(with)
            peer = export.runs.first { $0.quick == quick } ?? export.runs.first
            guard peer != nil else { throw ValidationError("\(with) holds no runs") }
            print("here: " + BenchReport.facts(mine.facts))
            print("peer: " + BenchReport.facts(export.facts))
        }
        let verdicts = try history.verdicts(for: mine)
        var header = ["Benchmark", "Here"]
        if peer != nil { header += ["Peer", "Here ÷ peer"] }
        header += ["Share of peak", "Score", "vs earlier runs"]
        var rows = [header]
        for result in mine.results where result.skipped == nil {
            var row = [result.name, "\(BenchReport.figure(result.value)) \(result.unit)"]
            if let peer {
                if let other = peer.results.first(where: { $0.name == result.name && $0.skipped == nil }), other.value > 0 {
                    let ratio = result.higherIsBetter ? result.value / other.value : other.value / result.value
                    row += ["\(BenchReport.figure(other.value)) \(other.unit)", String(format: "%.2f× %@", ratio, ratio >= 1 ? "faster" : "slower")]
                } else {
                    row += ["—", ""]
                }
            }
            row += [result.efficiency.map { String(format: "%.0f%%", $0 * 100) } ?? "", String(format: "%.0f", result.score),
                    BenchReport.verdictText(verdicts[result.name])]
            rows.append(row)
        }
        print(TextTable.render(rows, rightAligned: [1, 2]), terminator: "")
    }

    static func load(_ source: String) throws -> BenchHistory.Export {
        let data: Data
        if source.hasPrefix("http://") || source.hasPrefix("https://") {
            let base = source.hasSuffix("/") ? String(source.dropLast()) : source
            guard let url = URL(string: base + "/api/v1/benchmarks") else { throw ValidationError("\(source) is not a URL") }
            var request = URLRequest(url: url)
            // Another host's daemon answers API reads from beyond its loopback only with its token.
            if let token = ProcessInfo.processInfo.environment["VIGIL_TOKEN"], !token.isEmpty {
                request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            }
            let semaphore = DispatchSemaphore(value: 0)
            let box = ResultBox()
            URLSession.shared.dataTask(with: request) { body, response, error in
                box.result = (body, (response as? HTTPURLResponse)?.statusCode, error)
                semaphore.signal()
            }.resume()
            semaphore.wait()
            guard let (body, status, error) = box.result, error == nil, status == 200, let body else {
                let status = box.result?.1 ?? 0
                let hint = status == 401 ? " (that daemon wants its API token: set VIGIL_TOKEN to the contents of its DATA_DIR/api-token)" : ""
                throw ValidationError("cannot fetch \(url): \(box.result?.2.map { "\($0.localizedDescription)" } ?? "status \(status)")\(hint)")
            }
            data = body
        } else {
            guard let contents = FileManager.default.contents(atPath: source) else { throw ValidationError("cannot read \(source)") }
            data = contents
        }
        do {
            return try JSONDecoder().decode(BenchHistory.Export.self, from: data)
        } catch {
            throw ValidationError("\(source) is not a `vigil bench export`: \(error)")
        }
    }

    private final class ResultBox: @unchecked Sendable {
        var result: (Data?, Int?, (any Error)?)?
    }
}

struct BenchServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The far end of `vigil bench network --peer HOST:PORT`: a TCP sink and echo server. Ctrl-C stops it."
    )

    /// Loopback by default, as every Vigil listener: a sink and echo server on every interface is for the
    /// person who asks for it (`--listen 0.0.0.0:9479` on the far host of a network benchmark).
    @Option(name: .long, help: ArgumentHelp("Address to listen on (default 127.0.0.1:9479; give 0.0.0.0:9479 to let other hosts in).",
                                            valueName: "address"))
    var listen = "127.0.0.1:9479"

    func run() throws {
        guard let address = ListenAddress(parsing: listen) else { throw ValidationError("--listen must be HOST:PORT") }
        let server = try BenchServer(host: address.host, port: address.port)
        server.start()
        if !address.isLoopback {
            FileHandle.standardError.write(Data("vigil bench serve: listening beyond loopback; anyone who can reach \(address) can send to it\n".utf8))
        }
        print("vigil bench serve: listening on \(address.host):\(server.port); run `vigil bench network --peer THIS-HOST:\(server.port)` elsewhere")
        while true { sleep(3600) }
    }
}
