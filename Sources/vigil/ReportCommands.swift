import ArgumentParser
import Foundation
import VigilCore
import VigilRules
import VigilServer

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text, markdown, csv, json
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Status, cost and per-task reports from the running daemon.",
        subcommands: [Status.self, Cost.self, TaskReportCommand.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Active and queued tasks, cost, estimated completion, resource usage, indicators, firing alerts, top recommendations.",
            discussion: """
                Indicators come from the `vigil.indicator` scripts in the rules folder (rules/indicators.lua by default):
                speed, efficiency and status for the host and for each task, with thresholds you edit there.
                """
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Option(name: .long, help: "text, markdown or json.") var format: ReportFormat = .text

        func validate() throws {
            if format == .csv { throw ValidationError("--format for the status report is text, markdown or json") }
        }

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let data = try await daemon.send("GET", "/api/v1/reports/status", configuration)
                if format == .json { print(String(decoding: data, as: UTF8.self)); return }
                let report = try taskDecoder.decode(StatusReport.self, from: data)
                print(ReportText.status(report, markdown: format == .markdown), terminator: "")
            }
        }
    }

    struct Cost: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cost",
            abstract: "What tasks cost over a window, by owner, task, GPU or day.",
            discussion: """
                Costs are charged as tasks run (GPU-hours at the model's rate, energy at costs.kwh, off-peak windows at
                their factor), kept per local day, owner, task and GPU. The window starts at the beginning of the local
                day `--since` ago reaches.
                """
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Option(name: .long, help: ArgumentHelp("How far back, such as 24h, 7d or 30d.", valueName: "duration")) var since = "7d"
        @Option(name: .long, help: "owner, task, gpu or day.") var by = "owner"
        @Option(name: .long, help: "text, markdown, csv or json.") var format: ReportFormat = .text

        func validate() throws {
            guard DurationParser.milliseconds(since) != nil else { throw ValidationError("--since must be a duration such as 7d") }
            guard CostReport.Grouping(rawValue: by) != nil else { throw ValidationError("--by must be owner, task, gpu or day") }
        }

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let data = try await daemon.send("GET", "/api/v1/reports/cost?since=\(since)&by=\(by)", configuration)
                if format == .json { print(String(decoding: data, as: UTF8.self)); return }
                let report = try taskDecoder.decode(CostReport.self, from: data)
                print(ReportText.cost(report, format: format), terminator: "")
            }
        }
    }

    struct TaskReportCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "task",
            abstract: "One task: duration, GPU-hours, mean utilisation, peak memory, cost and indicators, beside similar tasks.",
            discussion: "Similar tasks are the last 20 of the same kind (`--kind`, else the program's name) that succeeded."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument(help: "The task id.") var id: Int64
        @Option(name: .long, help: "text, markdown or json.") var format: ReportFormat = .text

        func validate() throws {
            if format == .csv { throw ValidationError("--format for a task report is text, markdown or json") }
        }

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let data = try await daemon.send("GET", "/api/v1/reports/tasks/\(id)", configuration)
                if format == .json { print(String(decoding: data, as: UTF8.self)); return }
                let report = try taskDecoder.decode(TaskReport.self, from: data)
                print(ReportText.task(report, markdown: format == .markdown), terminator: "")
            }
        }
    }
}

struct RecommendationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommendations",
        abstract: "What the recommendation scripts advise now, most valuable first.",
        discussion: """
            Each comes from a `vigil.recommend` script in the rules folder (rules/recommendations.lua by default),
            names what it concerns and, where it can be computed, the saving per month. One stays while its
            condition holds and expires when it stops holding; `--expired 24h` lists those that expired lately.
            """
    )
    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Option(name: .long, help: ArgumentHelp("Also list those that expired within this window.", valueName: "duration")) var expired: String?

    struct Reply: Decodable {
        var recommendations: [Recommendation]
        var expired: [Recommendation]?
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        try await reportingRefusal {
            let query = expired.map { "?expired=\($0)" } ?? ""
            let data = try await daemon.send("GET", "/api/v1/recommendations\(query)", configuration)
            if json { print(String(decoding: data, as: UTF8.self)); return }
            let reply = try taskDecoder.decode(Reply.self, from: data)
            if reply.recommendations.isEmpty {
                print("no recommendations")
            } else {
                print(ReportText.recommendations(reply.recommendations, markdown: false), terminator: "")
            }
            if let gone = reply.expired, !gone.isEmpty {
                print("\nExpired:")
                print(ReportText.recommendations(gone, markdown: false), terminator: "")
            }
        }
    }
}

/// The reports as text, Markdown or CSV.
enum ReportText {
    static func money(_ value: Double, _ currency: String) -> String { String(format: "%.2f %@", value, currency) }

    static func when(_ time: Timestamp?, now: Timestamp) -> String {
        guard let time else { return "-" }
        let date = Date(timeIntervalSince1970: Double(time) / 1000)
        let formatter = DateFormatter()
        formatter.dateFormat = abs(time - now) < 86_400_000 ? "HH:mm" : "yyyy-MM-dd HH:mm"
        let relative = time > now ? " (in \(Format.duration(seconds: Double(time - now) / 1000)))" : ""
        return formatter.string(from: date) + relative
    }

    static func percent(_ value: Double?) -> String { value.map { String(format: "%.0f%%", $0 * 100) } ?? "-" }

    /// Rows as an aligned table or a Markdown table.
    static func table(_ rows: [[String]], rightAligned: Set<Int>, markdown: Bool) -> String {
        guard markdown, let header = rows.first else { return TextTable.render(rows, rightAligned: rightAligned) }
        func line(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |" }
        let rule = "|" + header.indices.map { rightAligned.contains($0) ? "---:|" : "---|" }.joined()
        return ([line(header), rule] + rows.dropFirst().map(line)).joined(separator: "\n") + "\n"
    }

    static func indicators(_ readings: [IndicatorReading]) -> String {
        readings.isEmpty ? "-" : readings.map { "\($0.name) \($0.level)" }.joined(separator: ", ")
    }

    static func status(_ report: StatusReport, markdown: Bool) -> String {
        let now = report.generatedAt
        var out = markdown ? "## Status of \(report.host)\n\n" : "Status of \(report.host) at \(when(now, now: now))\n\n"
        let usage = report.usage
        var summary: [[String]] = [
            ["Active tasks", "\(report.activeJobs)"],
            ["Queued tasks", "\(report.queuedJobs)"],
            ["Finished today", "\(report.finishedToday)"],
            ["Cost per hour", money(report.costPerHour, report.currency)],
            ["Cost today", money(report.costToday, report.currency)],
            ["Estimated completion", when(report.estimatedCompletion, now: now)],
            ["GPUs busy", "\(usage.busyGPUs) of \(usage.gpus)"],
            ["GPU utilisation", percent(usage.gpuUtilization)],
            ["GPU memory", usage.gpuMemoryTotal > 0 ? "\(Format.bytes(usage.gpuMemoryUsed)) of \(Format.bytes(usage.gpuMemoryTotal))" : "-"],
            ["CPU", percent(usage.cpuUtilization)],
            ["Memory", usage.memoryTotal.map { total in "\(Format.bytes(usage.memoryUsed ?? 0)) of \(Format.bytes(total))" } ?? "-"],
        ]
        for reading in report.indicators { summary.append([reading.name.prefix(1).uppercased() + reading.name.dropFirst(), reading.level]) }
        out += table(markdown ? [["", ""]] + summary : summary, rightAligned: [], markdown: markdown)
        if !report.tasks.isEmpty {
            out += markdown ? "\n### Tasks\n\n" : "\nTasks\n"
            var rows = [["ID", "STATE", "OWNER", "NAME", "GPUS", "UTIL", "RUN", "COST", "END", "INDICATORS"]]
            for line in report.tasks {
                let task = line.task
                rows.append(["\(task.id)", task.state, task.owner, String(task.name.prefix(32)), task.gpuIndices.isEmpty ? "\(task.gpus)" : task.gpuIndices.map(String.init).joined(separator: ","),
                             percent(task.meanUtilization), task.started == nil ? "-" : Format.duration(seconds: task.runSeconds),
                             String(format: "%.2f", task.cost),
                             when(task.estimatedEnd, now: now), indicators(line.indicators)])
            }
            out += table(rows, rightAligned: [0, 4, 5, 6, 7], markdown: markdown)
        }
        out += markdown ? "\n### Firing alerts\n\n" : "\nFiring alerts\n"
        if report.alerts.isEmpty {
            out += "none\n"
        } else {
            var rows = [["ALERT", "SEVERITY", "SINCE", "SUMMARY"]]
            for alert in report.alerts { rows.append([alert.name, alert.severity, when(alert.since, now: now), alert.summary]) }
            out += table(rows, rightAligned: [], markdown: markdown)
        }
        out += markdown ? "\n### Top recommendations\n\n" : "\nTop recommendations\n"
        out += report.recommendations.isEmpty ? "none\n" : recommendations(report.recommendations, markdown: markdown)
        for error in report.indicatorErrors { out += "\nindicator error: \(error)\n" }
        return out
    }

    static func recommendations(_ items: [Recommendation], markdown: Bool) -> String {
        var rows = [["SEVERITY", "ABOUT", "SAVING/MONTH", "RECOMMENDATION"]]
        for item in items {
            var saving: [String] = []
            if let amount = item.savingPerMonth { saving.append(money(amount, item.currency ?? "")) }
            if let hours = item.gpuHoursPerMonth { saving.append(String(format: "%.0f GPU-h", hours)) }
            let about = item.subjectID.isEmpty ? item.subject : "\(item.subject) \(item.subjectID)"
            let text = item.advice.isEmpty ? item.title : "\(item.title): \(item.advice)"
            rows.append([item.severity, about, saving.isEmpty ? "-" : saving.joined(separator: ", "), text])
        }
        return table(rows, rightAligned: [2], markdown: markdown)
    }

    static func cost(_ report: CostReport, format: ReportFormat) -> String {
        let header = [report.by.rawValue.uppercased(), report.by == .task ? "NAME" : report.by == .gpu ? "MODEL" : "", "TASKS", "GPU-HOURS", "COST", "SHARE"]
        let keep = header.indices.filter { !header[$0].isEmpty }
        var rows = [keep.map { header[$0] }]
        for row in report.rows {
            let cells = [row.key, row.label, "\(row.tasks)", String(format: "%.2f", row.gpuHours), String(format: "%.2f", row.cost), percent(row.share)]
            rows.append(keep.map { cells[$0] })
        }
        if format == .csv {
            let csvHeader = [report.by.rawValue, report.by == .task ? "name" : report.by == .gpu ? "model" : "", "tasks", "gpu_hours", "cost", "share"]
            let lines = [keep.map { csvHeader[$0] }.joined(separator: ",")] + report.rows.map { row in
                let cells = [row.key, row.label, "\(row.tasks)", String(format: "%.4f", row.gpuHours), String(format: "%.4f", row.cost), String(format: "%.4f", row.share)]
                return keep.map { csvField(cells[$0]) }.joined(separator: ",")
            }
            return lines.joined(separator: "\n") + "\n"
        }
        let markdown = format == .markdown
        rows.append(keep.map { ["TOTAL", "", "", String(format: "%.2f", report.gpuHours), String(format: "%.2f", report.total), ""][$0] })
        let title = "Cost since \(report.since) by \(report.by.rawValue), in \(report.currency)"
        let right = Set(keep.enumerated().filter { [2, 3, 4, 5].contains($0.element) }.map(\.offset))
        return (markdown ? "## \(title)\n\n" : "\(title)\n") + table(rows, rightAligned: right, markdown: markdown)
    }

    static func csvField(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    static func task(_ report: TaskReport, markdown: Bool) -> String {
        let task = report.task
        let similar = report.similar
        func compare(_ mine: Double?, _ theirs: Double?, _ format: (Double) -> String) -> [String] {
            [mine.map(format) ?? "-", theirs.map(format) ?? "-", mine.flatMap { m in theirs.flatMap { $0 > 0 ? String(format: "%.2f×", m / $0) : nil } } ?? "-"]
        }
        var rows = [["", "THIS TASK", similar.map { "MEDIAN OF \($0.count) SIMILAR" } ?? "SIMILAR", "RATIO"]]
        rows.append(["Duration"] + compare(task.runSeconds, similar?.runSeconds) { Format.duration(seconds: $0) })
        rows.append(["GPU-hours"] + compare(task.gpuHours, similar?.gpuHours) { String(format: "%.2f", $0) })
        rows.append(["Mean GPU utilisation"] + compare(task.meanUtilization, similar?.meanUtilization) { percent($0) })
        rows.append(["Peak GPU memory"] + compare(task.gpuMemoryPeak.map(Double.init), similar?.gpuMemoryPeak) { Format.bytes($0) })
        rows.append(["Cost (\(report.currency))"] + compare(task.cost, similar?.cost) { String(format: "%.2f", $0) })
        var out = markdown ? "## Task \(task.id): \(task.name)\n\n" : "Task \(task.id): \(task.name)\n"
        out += "\(task.state), owner \(task.owner), kind \(task.kind), \(task.gpus) GPU\(task.gpus == 1 ? "" : "s")"
        out += task.gpuMemoryDeclared > 0 ? ", \(Format.bytes(Double(task.gpuMemoryDeclared))) declared per GPU\n" : "\n"
        out += "Indicators: \(indicators(report.indicators))\n\n"
        out += table(rows, rightAligned: [1, 2, 3], markdown: markdown)
        return out
    }
}
