import ArgumentParser
import Foundation
import VigilAllocator
import VigilCore

/// The daemon said no: its message, and exit status 1.
struct DaemonRefusal: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var description: String { message }
}

/// Prints the daemon's refusal and exits 1, rather than ArgumentParser's usage text.
func reportingRefusal(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let refusal as DaemonRefusal {
        FileHandle.standardError.write(Data("vigil: \(refusal.message)\n".utf8))
        throw ExitCode(1)
    } catch let error as VigilError {
        FileHandle.standardError.write(Data("vigil: \(error.message)\n".utf8))
        throw ExitCode(1)
    }
}

let taskDecoder = JSONDecoder()

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Queue a command as a task on the running daemon.",
        discussion: """
            The task starts at once when its GPUs are free, waits in the queue when they are not, and is refused
            when it could never fit this host. It runs in this folder with this environment, in a process group
            of its own, with CUDA_VISIBLE_DEVICES set to its GPUs' UUIDs and CUDA_DEVICE_ORDER=PCI_BUS_ID; its
            output goes to files `vigil task logs ID` shows. Prints the task id.
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions

    @Option(name: .long, help: "GPUs it needs at once (0 for none).") var gpus: Int = 0
    @Option(name: .customLong("gpu-mem"), help: ArgumentHelp("GPU memory per GPU it declares, such as 8G (default: whole GPUs).", valueName: "size"))
    var gpuMemory: String?
    @Option(name: .long, help: ArgumentHelp("Time limit, such as 2h; the task is stopped past it.", valueName: "duration")) var time: String?
    @Option(name: .long, help: ArgumentHelp("How long you expect it to run (planning only).", valueName: "duration")) var expect: String?
    @Option(name: .long, help: ArgumentHelp("low, normal, high, urgent or 0…100.", valueName: "priority")) var priority: String = "normal"
    @Option(name: .customLong("cost-limit"), help: ArgumentHelp("Most it may cost, in the configured currency.", valueName: "amount")) var costLimit: Double?
    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Start after task ID succeeds (ID or ok:ID), or ends at all (any:ID). Repeatable.", valueName: "id"))
    var after: [String] = []
    @Option(name: .long, help: "A name to show.") var name: String?
    @Option(name: .long, help: "The kind of task, for duration prediction (default: the program's name).") var kind: String?
    @Flag(name: .customLong("off-peak"), help: "Start only inside an off-peak window.") var offPeak = false
    @Flag(name: .long, help: "Print the task as JSON.") var json = false
    // Everything after `--` is the command, its own options included (`vigil submit --help` stays help).
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command after --, for example: vigil submit --gpus 1 -- python train.py") }
        if let gpuMemory, ByteSizeParser.bytes(gpuMemory) == nil { throw ValidationError("--gpu-mem must be a size such as 8G or 512M") }
        if let time, DurationParser.milliseconds(time) == nil { throw ValidationError("--time must be a duration such as 90m or 2h") }
        if let expect, DurationParser.milliseconds(expect) == nil { throw ValidationError("--expect must be a duration such as 90m or 2h") }
        if TaskPriority(parsing: priority) == nil { throw ValidationError("--priority must be low, normal, high, urgent or a number 0…100") }
        for item in after where Dependency(parsing: item) == nil { throw ValidationError("--after takes ID, ok:ID or any:ID, not \(item)") }
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        var spec = TaskSpec(command: command,
                            directory: FileManager.default.currentDirectoryPath,
                            owner: ProcessInfo.processInfo.environment["USER"] ?? String(cString: getpwuid(getuid()).pointee.pw_name))
        spec.environment = ProcessInfo.processInfo.environment
        spec.gpus = gpus
        spec.gpuMemory = gpuMemory.flatMap(ByteSizeParser.bytes).map(Int64.init) ?? 0
        spec.timeLimit = time.flatMap(DurationParser.milliseconds)
        spec.expectedDuration = expect.flatMap(DurationParser.milliseconds)
        spec.priority = TaskPriority(parsing: priority)!
        spec.costLimit = costLimit
        spec.after = after.compactMap(Dependency.init(parsing:))
        spec.name = name
        spec.kind = kind
        spec.offPeak = offPeak
        try await reportingRefusal {
            let data = try await daemon.send("POST", "/api/v1/tasks", body: spec, configuration)
            struct Submitted: Decodable { var id: Int64 }
            let id = try taskDecoder.decode(Submitted.self, from: data).id
            if json {
                print(String(decoding: try await daemon.send("GET", "/api/v1/tasks/\(id)", configuration), as: UTF8.self))
            } else {
                print(id)
            }
        }
    }
}

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "The running and waiting tasks, with estimated start and end and the reason each waits.",
        discussion: """
            Waiting tasks are listed in the order the allocator considers them. START and END are estimates from
            simulating the queue forward with the planner (durations from the history of the same kind, else the
            declared duration, the time limit, or the host's recent median); REASON is Slurm's: Priority (work ahead
            of it), Resources (GPUs or GPU memory), Dependency, BeginTime (off-peak), BatchWindow, CostLimit, Drained.
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let configuration = try global.loadConfiguration()
        try await reportingRefusal {
            let data = try await daemon.send("GET", "/api/v1/queue", configuration)
            if json { print(String(decoding: data, as: UTF8.self)); return }
            let queue = try taskDecoder.decode(QueueView.self, from: data)
            print(TaskTable.queue(queue, now: SystemWallClock().now()))
        }
    }
}

struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain",
        abstract: "Start nothing new; running tasks finish. Survives a restart. `vigil undrain` ends it.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await Self.set(drained: true, global, daemon)
    }

    static func set(drained: Bool, _ global: GlobalOptions, _ daemon: DaemonOptions) async throws {
        let configuration = try global.loadConfiguration()
        try await reportingRefusal {
            _ = try await daemon.send("POST", drained ? "/api/v1/drain" : "/api/v1/undrain", configuration)
            print(drained ? "drained: running tasks finish, queued tasks wait" : "undrained: queued tasks start as resources allow")
        }
    }
}

struct UndrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "undrain", abstract: "Start queued tasks again after `vigil drain`.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions

    func run() async throws { try await DrainCommand.set(drained: false, global, daemon) }
}

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Show, follow or control one task.",
        subcommands: [Show.self, Logs.self, Pause.self, Resume.self, Cancel.self, Priority.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Everything about a task.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument var id: Int64
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let data = try await daemon.send("GET", "/api/v1/tasks/\(id)", configuration)
                if json { print(String(decoding: data, as: UTF8.self)); return }
                print(TaskTable.details(try taskDecoder.decode(TaskView.self, from: data), now: SystemWallClock().now()))
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "logs", abstract: "The task's standard output (or --stderr).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument var id: Int64
        @Flag(name: .long, help: "Standard error instead.") var stderr = false

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let data = try await daemon.send("GET", "/api/v1/tasks/\(id)/logs?stream=\(stderr ? "stderr" : "stdout")", configuration)
                FileHandle.standardOutput.write(data)
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pause",
            abstract: "Stop the task's processes (SIGSTOP); its GPU memory stays reserved.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument var id: Int64
        func run() async throws { try await control(global, daemon, id, "pause", "paused; its GPU memory stays reserved") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resume", abstract: "Continue a paused task (SIGCONT).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument var id: Int64
        func run() async throws { try await control(global, daemon, id, "resume", "resumed") }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel",
            abstract: "Cancel a task: a queued one leaves the queue; a running one gets SIGTERM, then SIGKILL after the grace period.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument var id: Int64
        func run() async throws { try await control(global, daemon, id, "cancel", "cancelled") }
    }

    struct Priority: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "priority", abstract: "Change a task's priority.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument var id: Int64
        @Argument(help: "low, normal, high, urgent or 0…100.") var priority: String

        func validate() throws {
            if TaskPriority(parsing: priority) == nil { throw ValidationError("priority must be low, normal, high, urgent or a number 0…100") }
        }

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                struct Body: Encodable { var priority: String }
                _ = try await daemon.send("POST", "/api/v1/tasks/\(id)/priority", body: Body(priority: priority), configuration)
                print("task \(id): priority \(TaskPriority(parsing: priority)!)")
            }
        }
    }

    static func control(_ global: GlobalOptions, _ daemon: DaemonOptions, _ id: Int64, _ action: String, _ done: String) async throws {
        let configuration = try global.loadConfiguration()
        try await reportingRefusal {
            _ = try await daemon.send("POST", "/api/v1/tasks/\(id)/\(action)", configuration)
            print("task \(id): \(done)")
        }
    }
}

/// Text tables for `vigil queue` and `vigil task show`.
enum TaskTable {
    static func clock(_ time: Timestamp?, now: Timestamp) -> String {
        guard let time else { return "-" }
        let delta = (time - now) / 1000
        if abs(delta) < 1 { return "now" }
        return delta > 0 ? "in " + DurationParser.format(milliseconds: delta * 1000) : DurationParser.format(milliseconds: -delta * 1000) + " ago"
    }

    static func gpus(_ record: TaskRecord) -> String {
        if record.spec.gpus == 0 { return "-" }
        let memory = record.spec.gpuMemory == 0 ? "whole" : formatSize(record.spec.gpuMemory)
        let on = record.gpuIndices.isEmpty ? "" : " on " + record.gpuIndices.map(String.init).joined(separator: ",")
        return "\(record.spec.gpus)×\(memory)\(on)"
    }

    static func formatSize(_ bytes: Int64) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1 ? String(format: "%.0fG", gib) : String(format: "%.0fM", Double(bytes) / Double(1 << 20))
    }

    static func row(_ cells: [String], _ widths: [Int]) -> String {
        zip(cells, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces)
    }

    static func queue(_ queue: QueueView, now: Timestamp) -> String {
        var lines: [String] = []
        let policy = queue.policy
        lines.append("policy \(policy.strategy)/\(policy.target) (speed \(policy.speed), efficiency \(policy.efficiency), reliability \(policy.reliability))"
                     + (policy.customScore ? ", custom score" : "") + " from \(policy.file)"
                     + (queue.drained ? " — DRAINED: nothing new starts" : ""))
        if let error = policy.error { lines.append("policy error: \(error.split(separator: "\n").first ?? "")") }
        lines.append(String(format: "cost now: %.2f %@/h, today %.2f; %d running, %d waiting", queue.costPerHour, queue.currency,
                            queue.costToday, queue.active.count, queue.waiting.count))
        lines.append("")
        let widths = [4, 9, 8, 20, 7, 12, 12, 11, 30]
        lines.append(row(["ID", "STATE", "OWNER", "GPUS", "PRIO", "START", "END", "REASON", "NAME"], widths))
        for view in queue.active + queue.waiting {
            let record = view.record
            let reason = view.reason?.rawValue ?? (record.state == .paused ? "paused: memory kept" : "")
            let start = record.state == .queued ? clock(view.estimatedStart, now: now) : clock(record.started, now: now)
            lines.append(row([String(record.id), record.state.rawValue, record.spec.owner, gpus(record),
                              record.spec.priority.description, start, clock(view.estimatedEnd, now: now), reason,
                              String(record.displayName.prefix(40))], widths))
        }
        return lines.joined(separator: "\n")
    }

    static func details(_ view: TaskView, now: Timestamp) -> String {
        let record = view.record
        var lines = ["task \(record.id): \(record.displayName)", "state:      \(record.state.rawValue)" + (view.note.map { " — \($0)" } ?? "")]
        if let reason = view.reason { lines.append("waits for:  \(reason.rawValue)") }
        lines.append("owner:      \(record.spec.owner)")
        lines.append("command:    \(record.spec.command.joined(separator: " "))")
        lines.append("folder:     \(record.spec.directory)")
        lines.append("gpus:       \(gpus(record))" + (record.gpuUUIDs.isEmpty ? "" : " (\(record.gpuUUIDs.joined(separator: ",")))"))
        lines.append("priority:   \(record.spec.priority)" + (view.priorityBreakdown.map {
            String(format: " (score %.0f: class %.0f, age %.0f, fair share %.0f, size %.0f)", $0.total, $0.priorityClass, $0.age, $0.fairShare, $0.size)
        } ?? ""))
        lines.append("predicted:  \(DurationParser.format(milliseconds: view.predictedDuration)) (\(view.predictionBasis.rawValue))")
        if let limit = record.spec.timeLimit { lines.append("time limit: \(DurationParser.format(milliseconds: limit))") }
        if let limit = record.spec.costLimit { lines.append(String(format: "cost limit: %.2f", limit)) }
        if !record.spec.after.isEmpty { lines.append("after:      \(record.spec.after.map(\.description).joined(separator: ", "))") }
        if record.state == .queued {
            lines.append("est. start: \(clock(view.estimatedStart, now: now)); est. end: \(clock(view.estimatedEnd, now: now))")
        } else {
            lines.append("started:    \(clock(record.started, now: now)); ran \(DurationParser.format(milliseconds: max(view.runTime, 0)))"
                         + (record.ended == nil ? "; est. end \(clock(view.estimatedEnd, now: now))" : "; ended \(clock(record.ended, now: now))"))
        }
        if let pid = record.pid { lines.append("pid:        \(pid) (process group)") }
        lines.append(String(format: "cost:       %.4f (energy %.1f Wh)", record.cost, record.energyJoules / 3600)
                     + (view.costPerHour.map { String(format: ", %.4f per hour now", $0) } ?? ""))
        if let code = record.exitCode { lines.append("exit:       \(code)") }
        if let signal = record.signal { lines.append("signal:     \(signal)") }
        if let reason = record.reason { lines.append("reason:     \(reason)") }
        return lines.joined(separator: "\n")
    }
}
