import ArgumentParser
import Foundation
import VigilCore
import VigilRules
import VigilServer
#if canImport(Glibc)
import Glibc
#endif

enum TopSort: String, ExpressibleByArgument, CaseIterable {
    case index, util, memory, temp, power

    /// The key that picks it on the live screen.
    var key: Character {
        switch self {
        case .index: "i"
        case .util: "u"
        case .memory: "m"
        case .temp: "t"
        case .power: "p"
        }
    }
}

struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live terminal view of the GPUs, their processes and tasks, the host, and firing alerts.",
        discussion: """
            In the manner of nvitop: bars per GPU for utilisation, memory, temperature (of 100 °C) and power (of
            its limit); the processes on the GPUs (with the Vigil task each belongs to); running tasks and how many
            wait; host CPU, memory and load; firing alerts. Reads the running daemon (GET /api/v1/top) every --interval. Keys: q quits;
            i, u, m, t, p sort the GPUs by index, utilisation, memory, temperature or power; s cycles the sort.
            Bars are green, yellow from half, red from 85 %, unless NO_COLOR is set or the output is not a terminal.
            --once prints one frame, for scripts.
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions
    @Option(name: .long, help: ArgumentHelp("Refresh interval, such as 1s or 500ms.", valueName: "duration")) var interval = "1s"
    @Option(name: .long, help: "Sort the GPUs by index, util, memory, temp or power.") var sort: TopSort = .index
    @Flag(name: .long, help: "Print one frame and exit.") var once = false

    func validate() throws {
        guard let ms = DurationParser.milliseconds(interval), ms >= 100 else { throw ValidationError("--interval must be a duration of at least 100ms") }
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let terminal = isatty(STDOUT_FILENO) == 1
        let color = terminal && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        try await reportingRefusal {
            if once {
                let snapshot = try await daemon.get("/api/v1/top", configuration, as: TopSnapshot.self)
                print(TopView.render(snapshot, width: terminal ? Self.width() : 120, color: color, sort: sort).joined(separator: "\n"))
                return
            }
            let raw = RawTerminal()
            defer { raw.restore() }
            var sort = self.sort
            let wait = Int32(DurationParser.milliseconds(interval)!)
            while true {
                let frame: [String]
                do {
                    let snapshot = try await daemon.get("/api/v1/top", configuration, as: TopSnapshot.self)
                    frame = TopView.render(snapshot, width: Self.width(), color: color, sort: sort)
                } catch let error as VigilError {
                    frame = ["vigil top: \(error.message)", "retrying every \(interval); q quits"]
                }
                // Home, the frame with each line cleared to its end, then the rest of the screen cleared.
                FileHandle.standardOutput.write(Data(("\u{1B}[H" + frame.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J").utf8))
                switch raw.key(within: wait) {
                case "q", "Q", "\u{03}", "\u{04}": return
                case "s": sort = TopSort.allCases[(TopSort.allCases.firstIndex(of: sort)! + 1) % TopSort.allCases.count]
                case let key?: if let chosen = TopSort.allCases.first(where: { $0.key == key }) { sort = chosen }
                case nil: break
                }
            }
        }
    }

    static func width() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 else { return 120 }
        return Int(size.ws_col)
    }
}

/// The terminal in raw mode (no echo, keys one at a time, Ctrl-C as a key) on the alternate screen with
/// the cursor hidden, put back as it was by `restore()`.
final class RawTerminal {
    private var saved = termios()
    private let active: Bool

    init() {
        active = isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &saved) == 0
        if active {
            var raw = saved
            raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
            tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        }
        FileHandle.standardOutput.write(Data("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J".utf8))
    }

    func restore() {
        FileHandle.standardOutput.write(Data("\u{1B}[?25h\u{1B}[?1049l".utf8))
        if active { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
    }

    /// A key pressed within `milliseconds`, or nil. At the end of input (a closed pipe) it waits, then nil.
    func key(within milliseconds: Int32) -> Character? {
        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, milliseconds) > 0, descriptor.revents & Int16(POLLIN) != 0 else { return nil }
        var byte: UInt8 = 0
        guard read(STDIN_FILENO, &byte, 1) == 1 else {
            usleep(useconds_t(milliseconds) * 1000)
            return nil
        }
        return Character(Unicode.Scalar(byte))
    }
}

/// One frame of `vigil top` as lines.
enum TopView {
    static func render(_ top: TopSnapshot, width: Int, color: Bool, sort: TopSort) -> [String] {
        func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
        func level(_ fraction: Double) -> String { fraction >= 0.85 ? "31" : fraction >= 0.5 ? "33" : "32" }
        /// `[████░░░░ 42%]` in `size` columns, coloured by how full it is.
        func bar(_ fraction: Double?, _ size: Int, label: String? = nil) -> String {
            guard let fraction, fraction.isFinite else { return "[" + String(repeating: " ", count: max(0, size - 5)) + "N/A]" }
            let text = label ?? String(format: "%3.0f%%", fraction * 100)
            let cells = max(1, size - 3 - text.count)
            let filled = Int((min(1, max(0, fraction)) * Double(cells)).rounded())
            return "[" + paint(String(repeating: "█", count: filled), level(fraction)) + String(repeating: "░", count: cells - filled) + " " + text + "]"
        }
        func gib(_ bytes: Double?) -> String { bytes.map { String(format: "%.1f", $0 / 1_073_741_824) } ?? "?" }

        let time = Date(timeIntervalSince1970: Double(top.time) / 1000)
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        var lines: [String] = []
        var header = paint("vigil top", "1") + " — \(top.host) — \(formatter.string(from: time))"
        header += "   CPU " + (top.cpuUtilization.map { String(format: "%.0f%%", $0 * 100) } ?? "?") + " of \(top.cpus)"
        header += "   MEM \(gib(top.memoryUsed))/\(gib(top.memoryTotal)) GiB"
        if let load = top.load1 { header += String(format: "   load %.2f", load) }
        lines.append(header)
        var summary = "tasks: \(top.tasks.count) active, \(top.queued) waiting"
        if let cost = top.costPerHour { summary += String(format: "   cost %.2f %@/h", cost, top.currency ?? "") }
        summary += "   \(top.alerts.count) alert\(top.alerts.count == 1 ? "" : "s") firing"
        lines.append(summary)
        lines.append("")

        let gpus = top.gpus.sorted { a, b in
            switch sort {
            case .index: return a.index < b.index
            case .util: return (a.utilization ?? -1, b.index) > (b.utilization ?? -1, a.index)
            case .memory: return (a.memoryUsed ?? -1, b.index) > (b.memoryUsed ?? -1, a.index)
            case .temp: return (a.temperature ?? -1, b.index) > (b.temperature ?? -1, a.index)
            case .power: return (a.power ?? -1, b.index) > (b.power ?? -1, a.index)
            }
        }
        if gpus.isEmpty {
            lines.append("No GPUs (no NVIDIA driver, or none reported).")
        } else {
            let nameWidth = min(24, gpus.map(\.model.count).max() ?? 10)
            // Utilisation and memory share what the name, temperature (14) and power (18) bars leave.
            let barWidth = max(12, (width - nameWidth - 45) / 2)
            func heading(_ text: String, _ size: Int) -> String { text.padding(toLength: size, withPad: " ", startingAt: 0) }
            lines.append(paint("GPU  " + heading("NAME", nameWidth) + "  " + heading("UTIL", barWidth) + "  " + heading("MEMORY", barWidth)
                + "  " + heading("TEMP", 12) + "  POWER", "1"))
            for gpu in gpus {
                let name = String(gpu.model.prefix(nameWidth)).padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                guard gpu.up else {
                    lines.append(String(format: "%3d  ", gpu.index) + name + "  " + paint("lost", "31"))
                    continue
                }
                let memory = gpu.memoryTotal.flatMap { total in gpu.memoryUsed.map { $0 / max(total, 1) } }
                // Temperature on a 0–100 °C scale (red from 85 °C), power against the enforced limit.
                let temperature = bar(gpu.temperature.map { $0 / 100 }, 12, label: gpu.temperature.map { String(format: "%.0f°C", $0) })
                let power = bar(gpu.power.flatMap { watts in gpu.powerLimit.map { watts / max($0, 1) } }, 16,
                                label: gpu.power.map { String(format: "%.0fW", $0) })
                lines.append(String(format: "%3d  ", gpu.index) + name + "  " + bar(gpu.utilization, barWidth) + "  "
                    + bar(memory, barWidth, label: "\(gib(gpu.memoryUsed))/\(gib(gpu.memoryTotal))G") + "  " + temperature + "  " + power)
            }
        }

        lines.append("")
        lines.append(paint("PROCESSES", "1"))
        if top.processes.isEmpty {
            lines.append("none")
        } else {
            var rows = [["GPU", "PID", "USER", "GPU MEM", "TASK", "COMMAND"]]
            for process in top.processes {
                rows.append(["\(process.gpu)", "\(process.pid)", process.user, Format.bytes(process.memory),
                             process.task.map { "#\($0)" } ?? "-", process.command])
            }
            lines += TextTable.render(rows, rightAligned: [0, 1, 3]).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        }

        lines.append("")
        lines.append(paint("TASKS", "1"))
        if top.tasks.isEmpty {
            lines.append(top.queued > 0 ? "none running; \(top.queued) waiting (vigil queue)" : "none")
        } else {
            var rows = [["ID", "STATE", "OWNER", "GPUS", "RUN", "COST", "NAME"]]
            for task in top.tasks {
                rows.append(["\(task.id)", task.state, task.owner, task.gpus.isEmpty ? "-" : task.gpus.map(String.init).joined(separator: ","),
                             Format.duration(seconds: task.runSeconds), String(format: "%.2f", task.cost), task.name])
            }
            lines += TextTable.render(rows, rightAligned: [0, 4, 5]).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        }

        lines.append("")
        lines.append(paint("ALERTS", "1"))
        if top.alerts.isEmpty { lines.append("none firing") }
        for alert in top.alerts {
            lines.append(paint(alert.severity.padding(toLength: 9, withPad: " ", startingAt: 0), alert.severity == "critical" ? "31" : "33")
                + alert.name + (alert.summary.isEmpty ? "" : ": \(alert.summary)"))
        }
        lines.append("")
        lines.append("q quit · i u m t p sort by index, util, memory, temp, power · s next · sorted by \(sort.rawValue)")
        // Long lines are cut to the terminal (escape codes do not take columns, so plain text is measured).
        return lines.map { line in
            color || line.count <= width ? line : String(line.prefix(width))
        }
    }
}
