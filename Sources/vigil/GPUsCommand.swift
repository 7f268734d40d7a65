import ArgumentParser
import Foundation
import Logging
import VigilCollectors
import VigilCore

struct GPUsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpus",
        abstract: "Show the NVIDIA GPUs, read through NVML now.",
        discussion: """
            A compact table like nvidia-smi's summary, then the processes on the GPUs. --json prints the same \
            reading for scripts (units in the key names). The library is libnvidia-ml.so.1, or \
            collectors.nvml.library in the configuration, or $VIGIL_NVML_LIBRARY. Exits with 1 when there is no \
            NVIDIA driver or NVML cannot be initialised.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        var logger = global.makeLogger()
        // This command prints a table; its log stays quiet unless asked for more than the default.
        if logger.logLevel == .info { logger.logLevel = .warning }
        let collector: NVMLCollector
        do {
            collector = try NVMLCollector(options: NVMLOptions(library: configuration.collectors.nvmlLibrary, events: false),
                                          logger: logger)
        } catch {
            FileHandle.standardError.write(Data("vigil: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let snapshot = collector.snapshot()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(snapshot), as: UTF8.self))
        } else {
            print(GPUTable.render(snapshot), terminator: "")
        }
        if !snapshot.up {
            FileHandle.standardError.write(Data("vigil: NVML cannot be initialised: \(snapshot.reason ?? "unknown")\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// The text table of `vigil gpus`.
enum GPUTable {
    static func render(_ snapshot: NVMLSnapshot) -> String {
        guard snapshot.up else { return "NVML is down: \(snapshot.reason ?? "unknown")\n" }
        var out = "Driver \(snapshot.driverVersion ?? "?")   NVML \(snapshot.nvmlVersion ?? "?")   CUDA \(snapshot.cudaDriverVersion ?? "?")\n"
        guard !snapshot.gpus.isEmpty else { return out + "No GPUs.\n" }
        var rows = [["GPU", "Name", "Bus-Id", "Temp", "Power / Cap", "Memory used / total", "Util", "SM clock", "Fan", "Perf", "UUID"]]
        for gpu in snapshot.gpus {
            guard gpu.up else {
                rows.append(["\(gpu.index)", gpu.name, gpu.pciBusID, "lost (\(gpu.lostReason ?? "unknown"))", "", "", "", "", "", "", gpu.uuid])
                continue
            }
            let power = gpu.powerWatts.map { "\(Int($0.rounded()))W" } ?? "N/A"
            let cap = (gpu.enforcedPowerLimitWatts ?? gpu.powerLimitWatts).map { "\(Int($0.rounded()))W" } ?? "N/A"
            let used = gpu.memoryUsedBytes.map { "\($0 >> 20)MiB" } ?? "N/A"
            let total = gpu.memoryTotalBytes.map { "\($0 >> 20)MiB" } ?? "N/A"
            let fan = gpu.fanSpeedsPercent.first.map { "\(Int($0))%" } ?? "N/A"
            rows.append([
                "\(gpu.index)", gpu.name, gpu.pciBusID, gpu.temperatureCelsius.map { "\(Int($0))C" } ?? "N/A",
                "\(power) / \(cap)", "\(used) / \(total)", gpu.utilizationGPUPercent.map { "\(Int($0))%" } ?? (gpu.migMode == 1 ? "MIG" : "N/A"),
                gpu.clocksMegahertz["sm"].map { "\(Int($0))MHz" } ?? "N/A", fan, gpu.performanceState.map { "P\($0)" } ?? "N/A", gpu.uuid,
            ])
            for mig in gpu.migDevices {
                let memory = "\((mig.memoryUsedBytes ?? 0) >> 20)MiB / \((mig.memoryTotalBytes ?? 0) >> 20)MiB"
                rows.append(["", "  MIG \(mig.profile)", "GI \(mig.gpuInstance.map(String.init) ?? "?") CI \(mig.computeInstance.map(String.init) ?? "?")",
                             "", "", memory, "", "", "", "", mig.uuid])
            }
        }
        out += TextTable.render(rows, rightAligned: [0, 3, 4, 5, 6, 7, 8])
        let processes = snapshot.gpus.flatMap { gpu in gpu.processes.map { (gpu.index, $0) } }
        out += "\nProcesses\n"
        guard !processes.isEmpty else { return out + "No running processes found.\n" }
        var processRows = [["GPU", "PID", "User", "Type", "GPU memory", "CPU time", "Host memory", "Command"]]
        for (index, process) in processes {
            processRows.append([
                "\(index)", "\(process.pid)", process.user, process.type, process.usedMemoryBytes.map { "\($0 >> 20)MiB" } ?? "N/A",
                DurationParser.format(milliseconds: Int64(process.cpuSeconds * 1000)), "\(process.residentBytes >> 20)MiB", process.command,
            ])
        }
        return out + TextTable.render(processRows, rightAligned: [0, 1, 4, 5, 6])
    }
}
