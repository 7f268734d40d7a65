import Dispatch
import Foundation
import Logging
import Testing
import VigilCore
import VigilStore
@testable import VigilCollectors
import VigilTesting

private let GiB = 1 << 30

private func h100(_ index: Int, _ extra: [String: Any] = [:]) -> [String: Any] {
    var gpu: [String: Any] = [
        "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-h100-\(index)", "pci_bus_id": String(format: "00000000:%02X:00.0", 0x18 + index),
        "utilization": ["gpu": 37, "memory": 12], "memory": ["total": 80 * GiB, "reserved": 512 << 20, "used": 2 * GiB],
        "temperature": 45, "power_watts": 312.5, "power_limit_watts": 700, "enforced_power_limit_watts": 650, "energy_joules": 1234.5,
        "clocks": ["sm": 1980, "memory": 2619, "graphics": 1755], "max_clocks": ["sm": 1980, "memory": 2619, "graphics": 1980],
        "pstate": 0, "clocks_event_reasons": 0x4 | 0x20, "supported_clocks_event_reasons": 0x1FF,
        "ecc": ["corrected_volatile": 3, "uncorrected_volatile": 0, "corrected_aggregate": 11, "uncorrected_aggregate": 1],
        "remapped_rows": ["correctable": 2, "uncorrectable": 1, "pending": 1, "failure": 0],
        "pcie": ["generation": 5, "width": 16, "tx_kb_per_second": 1200, "rx_kb_per_second": 3400,
                 "tx_bytes": 7_000_000_000, "rx_bytes": 9_000_000_000],
        "mig": ["mode": 0], "events": [] as [Any],
    ]
    gpu.merge(extra) { _, new in new }
    return gpu
}

private func rtx4090() -> [String: Any] { [
    "name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-4090", "pci_bus_id": "00000000:E1:00.0",
    "utilization": ["gpu": 3, "memory": 1], "memory": ["total": 24 * GiB, "reserved": 0, "used": 412 << 20],
    "temperature": 36, "fans": [30, 45], "pstate": 8,
    "pcie": ["generation": 4, "width": 16, "tx_kb_per_second": 1200, "rx_kb_per_second": 3400],
] }

private func a100MIG() -> [String: Any] { [
    "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-a100", "pci_bus_id": "00000000:9A:00.0",
    "memory": ["total": 40 * GiB, "used": 0], "temperature": 41,
    "mig": ["mode": 1, "max_devices": 7, "instances": [
        ["uuid": "MIG-one", "profile": "3g.20gb", "gpu_instance": 1, "compute_instance": 0, "memory": ["total": 20 * GiB, "used": 1 << 20]],
        ["uuid": "MIG-two", "profile": "1g.5gb", "gpu_instance": 13, "compute_instance": 0, "memory": ["total": 5 * GiB, "used": 0]],
    ]],
] }

private func value(_ batch: SampleBatch, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    batch.value(name, labels)
}

/// Real child processes for the per-process join (their PIDs, users and command lines are real).
private final class Children {
    var processes: [Process] = []

    func start(_ arguments: [String]) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        processes.append(process)
        return Int(process.processIdentifier)
    }

    // SIGKILL: children started from a dispatch thread inherit its blocked signals, SIGTERM among them.
    // Foundation reaps them itself.
    deinit {
        for process in processes { kill(process.processIdentifier, SIGKILL) }
    }
}

private func currentUser() -> String {
    guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return String(getuid()) }
    return String(cString: name)
}

@Suite("nvml collector against the fake NVML library")
struct NVMLCollectorTests {
    @Test("mixed models: every field, in base units, with gpu, uuid, model and pci_bus_id on each series")
    func mixedModels() throws {
        let fake = try FakeNVML(["driver_version": "550.54.15", "cuda_driver_version": 12040, "gpus": [h100(0), rtx4090(), a100MIG()]])
        let batch = try fake.collector().collect()
        #expect(value(batch, "gpu_nvml_up") == 1)
        #expect(value(batch, "gpu_devices") == 3)
        #expect(value(batch, "gpu_driver_info", ["driver_version": "550.54.15", "cuda_driver_version": "12.4"]) == 1)
        let h = ["gpu": "0", "uuid": "GPU-h100-0", "model": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:18:00.0"]
        func at(_ extra: [String: String]) -> [String: String] { h.merging(extra) { _, new in new } }
        #expect(value(batch, "gpu_up", h) == 1)
        #expect(value(batch, "gpu_utilization_ratio", h) == 0.37)
        #expect(value(batch, "gpu_memory_busy_ratio", h) == 0.12)
        #expect(value(batch, "gpu_memory_total_bytes", h) == Double(80 * GiB))
        #expect(value(batch, "gpu_memory_used_bytes", h) == Double(2 * GiB))
        #expect(value(batch, "gpu_memory_reserved_bytes", h) == Double(512 << 20))
        #expect(value(batch, "gpu_memory_free_bytes", h) == Double(80 * GiB - 2 * GiB - (512 << 20)))
        #expect(value(batch, "gpu_temperature_celsius", h) == 45)
        #expect(value(batch, "gpu_power_watts", h) == 312.5)
        #expect(value(batch, "gpu_power_limit_watts", at(["kind": "management"])) == 700)
        #expect(value(batch, "gpu_power_limit_watts", at(["kind": "enforced"])) == 650)
        #expect(value(batch, "gpu_energy_joules_total", h) == 1234.5)
        #expect(value(batch, "gpu_clock_hertz", at(["clock": "sm"])) == 1980e6)
        #expect(value(batch, "gpu_clock_hertz", at(["clock": "graphics"])) == 1755e6)
        #expect(value(batch, "gpu_clock_max_hertz", at(["clock": "memory"])) == 2619e6)
        #expect(value(batch, "gpu_performance_state", h) == 0)
        #expect(value(batch, "gpu_clocks_event_reasons", h) == 0x24)
        #expect(value(batch, "gpu_clocks_event_active", at(["reason": "sw_power_cap"])) == 1)
        #expect(value(batch, "gpu_clocks_event_active", at(["reason": "sw_thermal_slowdown"])) == 1)
        #expect(value(batch, "gpu_clocks_event_active", at(["reason": "hw_slowdown"])) == 0)
        #expect(value(batch, "gpu_ecc_errors_total", at(["type": "corrected", "scope": "volatile"])) == 3)
        #expect(value(batch, "gpu_ecc_errors_total", at(["type": "uncorrected", "scope": "aggregate"])) == 1)
        #expect(value(batch, "gpu_remapped_rows_total", at(["cause": "correctable"])) == 2)
        #expect(value(batch, "gpu_remapped_rows_total", at(["cause": "uncorrectable"])) == 1)
        #expect(value(batch, "gpu_row_remap_pending", h) == 1)
        #expect(value(batch, "gpu_row_remap_failure", h) == 0)
        #expect(value(batch, "gpu_pcie_link_generation", h) == 5)
        #expect(value(batch, "gpu_pcie_link_width", h) == 16)
        #expect(value(batch, "gpu_pcie_transmit_bytes_total", h) == 7e9)
        #expect(value(batch, "gpu_pcie_receive_bytes_total", h) == 9e9)
        #expect(value(batch, "gpu_pcie_transmit_bytes_per_second", h) == nil, "the blocking throughput call is only a fallback")
        #expect(value(batch, "gpu_mig_mode", h) == 0)
        #expect(value(batch, "gpu_fan_speed_ratio", h) == nil, "an SXM board has no fans: no series, not 0")

        let rtx = ["gpu": "1", "uuid": "GPU-4090", "model": "NVIDIA GeForce RTX 4090", "pci_bus_id": "00000000:E1:00.0"]
        #expect(value(batch, "gpu_fan_speed_ratio", rtx.merging(["fan": "0"]) { _, n in n }) == 0.30)
        #expect(value(batch, "gpu_fan_speed_ratio", rtx.merging(["fan": "1"]) { _, n in n }) == 0.45)
        #expect(value(batch, "gpu_performance_state", rtx) == 8)
        // No byte counters on this board: the throughput call serves, in bytes per second.
        #expect(value(batch, "gpu_pcie_transmit_bytes_per_second", rtx) == 1_200_000)
        #expect(value(batch, "gpu_pcie_receive_bytes_per_second", rtx) == 3_400_000)
        #expect(value(batch, "gpu_pcie_transmit_bytes_total", rtx) == nil)
        #expect(value(batch, "gpu_ecc_errors_total", rtx) == nil, "no ECC on this board")
        #expect(value(batch, "gpu_power_watts", rtx) == nil)

        let a100 = ["gpu": "2", "uuid": "GPU-a100"]
        #expect(value(batch, "gpu_mig_mode", a100) == 1)
        #expect(value(batch, "gpu_utilization_ratio", a100) == nil, "utilisation is not offered in MIG mode")
        #expect(value(batch, "gpu_mig_memory_total_bytes", ["uuid": "GPU-a100", "mig_uuid": "MIG-one", "profile": "3g.20gb",
                                                             "gpu_instance": "1", "compute_instance": "0"]) == Double(20 * GiB))
        #expect(value(batch, "gpu_mig_memory_used_bytes", ["mig_uuid": "MIG-one"]) == Double(1 << 20))
        #expect(value(batch, "gpu_mig_memory_total_bytes", ["mig_uuid": "MIG-two", "profile": "1g.5gb", "gpu_instance": "13"]) == Double(5 * GiB))

        // Every GPU series carries the four identity labels.
        for entry in batch.entries {
            let name = entry.labels.name ?? ""
            guard name.hasPrefix("gpu_"), !["gpu_nvml_up", "gpu_devices", "gpu_driver_info"].contains(name) else { continue }
            for label in ["gpu", "uuid", "model", "pci_bus_id"] {
                #expect(entry.labels[label] != nil, "\(entry.labels) lacks \(label)")
            }
        }
    }

    @Test("processes: PID and GPU memory from NVML, user, command, CPU time and RSS from /proc; C+G merged")
    func processes() throws {
        let children = Children()
        let trainer = try children.start(["3600"])
        let viewer = try children.start(["3599", "--"])  // sleep accepts several durations; "--" is harmless
        let gone = 4_000_000  // no such process: skipped, as one that exits between NVML and /proc
        let fake = try FakeNVML(["gpus": [h100(0, ["processes": [
            ["pid": trainer, "used_memory": 3 * GiB, "type": "compute"],
            ["pid": viewer, "used_memory": 256 << 20, "type": "compute+graphics"],
            ["pid": gone, "used_memory": GiB, "type": "compute"],
        ]])]])
        let collector = try fake.collector()
        let snapshot = collector.snapshot()
        let processes = try #require(snapshot.gpus.first?.processes)
        #expect(processes.map(\.pid) == [trainer, viewer].sorted())
        let first = try #require(processes.first { $0.pid == trainer })
        #expect(first.type == "C")
        #expect(first.user == currentUser())
        #expect(first.command == "sleep 3600")
        #expect(first.usedMemoryBytes == UInt64(3 * GiB))
        #expect(first.residentBytes > 0)
        let second = try #require(processes.first { $0.pid == viewer })
        #expect(second.type == "C+G")
        #expect(second.command == "sleep 3599 --")

        let batch = NVMLExport.batch(snapshot)
        let labels = ["gpu": "0", "uuid": "GPU-h100-0", "pid": String(trainer), "user": currentUser(), "command": "sleep 3600", "type": "C"]
        #expect(value(batch, "gpu_process_memory_bytes", labels) == Double(3 * GiB))
        #expect(value(batch, "gpu_process_cpu_seconds_total", labels) != nil)
        #expect((value(batch, "gpu_process_resident_memory_bytes", labels) ?? 0) > 0)
        #expect(value(batch, "gpu_processes", ["gpu": "0"]) == 2)
    }

    @Test("process records of 32 bytes (R535 drivers) and 16 bytes (v1) are read at their stride; a wrong guess is corrected")
    func processRecordStride() throws {
        let children = Children()
        let pids = try (0..<3).map { _ in try children.start(["3600"]) }
        let list = pids.enumerated().map { i, pid in ["pid": pid, "used_memory": (i + 1) * GiB, "type": "compute"] as [String: Any] }
        func found(_ scenario: [String: Any]) throws -> ([Int], [UInt64?], Int) {
            let fake = try FakeNVML(scenario.merging(["gpus": [h100(0, ["processes": list])]]) { _, new in new })
            let collector = try fake.collector()
            let processes = collector.snapshot().gpus[0].processes
            return (processes.map(\.pid), processes.map(\.usedMemoryBytes), collector.library.processStride)
        }
        let expectedMemory = (1...3).map { UInt64($0 * GiB) }
        // R535: _v3 writes 32 bytes; the library exports ConfCompute but no detail list → 32 from the start.
        var (pidsSeen, memory, stride) = try found(["process_record_size": 32, "missing_symbols": ["nvmlDeviceGetRunningProcessDetailList"]])
        #expect(stride == 32)
        #expect(pidsSeen == pids.sorted())
        #expect(memory == expectedMemory)
        // Same symbol set but the driver writes 24 bytes: the 32-byte guess reads garbage, is caught and switched.
        (pidsSeen, memory, stride) = try found(["process_record_size": 24, "missing_symbols": ["nvmlDeviceGetRunningProcessDetailList"]])
        #expect(stride == 32)
        #expect(pidsSeen == pids.sorted())
        #expect(memory == expectedMemory)
        // An old driver with only the v1 calls: 16-byte records.
        (pidsSeen, memory, stride) = try found(["missing_symbols": [
            "nvmlDeviceGetRunningProcessDetailList",
            "nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2",
            "nvmlDeviceGetGraphicsRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v2",
            "nvmlDeviceGetMPSComputeRunningProcesses_v3",
        ]])
        #expect(stride == 16)
        #expect(pidsSeen == pids.sorted())
        #expect(memory == expectedMemory)
    }

    @Test("a temperature ramp is followed round by round")
    func temperatureRamp() throws {
        let fake = try FakeNVML(["gpus": [h100(0, ["temperature": ["from": 40, "to": 46, "step": 3]])]])
        let collector = try fake.collector()
        let readings = (0..<4).map { _ in collector.snapshot().gpus[0].temperatureCelsius }
        #expect(readings == [40, 43, 46, 46])
    }

    @Test("NOT_SUPPORTED is remembered per GPU and not asked again")
    func notSupportedIsRemembered() throws {
        let fake = try FakeNVML(["gpus": [h100(0, ["not_supported": ["nvmlDeviceGetTotalEnergyConsumption"]]), h100(1)]])
        let collector = try fake.collector()
        for _ in 0..<4 { _ = try collector.collect() }
        let batch = try collector.collect()
        #expect(value(batch, "gpu_energy_joules_total", ["gpu": "0"]) == nil)
        #expect(value(batch, "gpu_energy_joules_total", ["gpu": "1"]) == 1234.5)
        // GPU 0 was asked once; GPU 1 five times.
        #expect(fake.calls("nvmlDeviceGetTotalEnergyConsumption") == 1 + 5)
        // Fans are absent on these boards (NOT_SUPPORTED): asked once per GPU.
        #expect(fake.calls("nvmlDeviceGetNumFans") == 2)
    }

    @Test("a GPU lost during a run reads gpu_up 0 while the others keep reporting, and comes back with backoff")
    func lostGPU() throws {
        let clock = ManualWallClock()
        let fake = try FakeNVML(["gpus": [h100(0), h100(1), h100(2)]])
        let collector = try fake.collector(clock: clock)
        var batch = try collector.collect()
        #expect((0..<3).map { value(batch, "gpu_up", ["gpu": "\($0)"]) } == [1, 1, 1])

        try fake.write(["gpus": [h100(0), h100(1, ["lost": true]), h100(2, ["temperature": 50])]])
        batch = try collector.collect()
        #expect(value(batch, "gpu_up", ["gpu": "1", "uuid": "GPU-h100-1", "model": "NVIDIA H100 80GB HBM3"]) == 0)
        #expect(value(batch, "gpu_temperature_celsius", ["gpu": "1"]) == nil)
        #expect(value(batch, "gpu_up", ["gpu": "0"]) == 1)
        #expect(value(batch, "gpu_up", ["gpu": "2"]) == 1)
        #expect(value(batch, "gpu_temperature_celsius", ["gpu": "2"]) == 50)
        #expect(collector.snapshot().gpus[1].lostReason == "GPU_IS_LOST")

        // Back on the bus: found again once the backoff has passed, not before.
        try fake.write(["gpus": [h100(0), h100(1, ["temperature": 44]), h100(2)]])
        let lookupsBefore = fake.calls("nvmlDeviceGetHandleByUUID")
        batch = try collector.collect()
        #expect(value(batch, "gpu_up", ["gpu": "1"]) == 0)
        #expect(fake.calls("nvmlDeviceGetHandleByUUID") == lookupsBefore)
        clock.advance(by: 1000)
        batch = try collector.collect()
        #expect(value(batch, "gpu_up", ["gpu": "1"]) == 1)
        #expect(value(batch, "gpu_temperature_celsius", ["gpu": "1"]) == 44)
    }

    @Test("XID events arrive through the event thread: per-GPU total from 0, per-XID counter, last XID")
    func xidEvents() async throws {
        let clock = ManualWallClock()
        let fake = try FakeNVML(["gpus": [h100(0), h100(1)]])
        let collector = try fake.collector(clock: clock, events: true)
        var batch = try collector.collect()
        #expect(value(batch, "gpu_xid_events_total", ["gpu": "0"]) == 0)
        #expect(value(batch, "gpu_xid_events_total", ["gpu": "1"]) == 0)
        #expect(value(batch, "gpu_critical_events_total", ["gpu": "1", "event": "double_bit_ecc"]) == 0)

        try fake.write(["gpus": [h100(0), h100(1, ["events": [["xid": 79], ["xid": 79], ["xid": 31], ["type": "double_bit_ecc"]]])]])
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            batch = try collector.collect()
            if value(batch, "gpu_critical_events_total", ["gpu": "1", "event": "double_bit_ecc"]) == 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        } while ContinuousClock.now < deadline
        #expect(value(batch, "gpu_xid_events_total", ["gpu": "1"]) == 3)
        #expect(value(batch, "gpu_xid_errors_total", ["gpu": "1", "xid": "79"]) == 2)
        #expect(value(batch, "gpu_xid_errors_total", ["gpu": "1", "xid": "31"]) == 1)
        #expect(value(batch, "gpu_last_xid", ["gpu": "1"]) == 31)
        #expect(value(batch, "gpu_last_xid_timestamp_seconds", ["gpu": "1"]) == Double(clock.now()) / 1000)
        #expect(value(batch, "gpu_critical_events_total", ["gpu": "1", "event": "double_bit_ecc"]) == 1)
        #expect(value(batch, "gpu_xid_events_total", ["gpu": "0"]) == 0)
        #expect(value(batch, "gpu_xid_errors_total", ["gpu": "0"]) == nil)
    }

    @Test("a missing symbol turns off only its field; memory falls back to the v1 call")
    func missingSymbol() throws {
        let fake = try FakeNVML(["missing_symbols": ["nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetTotalEnergyConsumption"], "gpus": [h100(0)]])
        let collector = try fake.collector()
        #expect(collector.library.missing.contains("nvmlDeviceGetMemoryInfo_v2"))
        #expect(collector.library.missing.contains("nvmlDeviceGetTotalEnergyConsumption"))
        let batch = try collector.collect()
        #expect(value(batch, "gpu_energy_joules_total") == nil)
        // v1 counts reserved memory as used and knows nothing reserved.
        #expect(value(batch, "gpu_memory_used_bytes", ["gpu": "0"]) == Double(2 * GiB + (512 << 20)))
        #expect(value(batch, "gpu_memory_reserved_bytes", ["gpu": "0"]) == nil)
        #expect(value(batch, "gpu_temperature_celsius", ["gpu": "0"]) == 45)
        #expect(value(batch, "gpu_power_watts", ["gpu": "0"]) == 312.5)
    }

    @Test("no library: a clear error naming the path, and no collector")
    func absentLibrary() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-dir-\(UUID().uuidString)/libnvidia-ml.so.1").path
        #expect {
            _ = try NVMLCollector(options: NVMLOptions(library: path), logger: Logger(label: "test"))
        } throws: { error in
            "\(error)".hasPrefix("no NVIDIA driver found") && "\(error)".contains(path)
        }
        // A library that is not NVML at all is refused the same way.
        #expect(throws: NVMLLibrary.NotFound.self) {
            _ = try NVMLCollector(options: NVMLOptions(library: "libc.so.6"), logger: Logger(label: "test"))
        }
        var configuration = CollectorsConfiguration()
        configuration.nvmlLibrary = path
        let names = BuiltinCollectors.make(configuration, store: .init(), logger: Logger(label: "test")).map(\.name)
        #expect(!names.contains("nvml"))
        #expect(names.contains("procfs"))
    }

    @Test("a driver/library version mismatch is retried with backoff until initialisation succeeds")
    func versionMismatch() throws {
        let clock = ManualWallClock()
        let fake = try FakeNVML(["init": ["error": "LIB_RM_VERSION_MISMATCH", "failures": 2], "gpus": [h100(0)]])
        let collector = try fake.collector(clock: clock)
        var batch = try collector.collect()
        #expect(value(batch, "gpu_nvml_up", ["reason": "LIB_RM_VERSION_MISMATCH"]) == 0)
        #expect(value(batch, "gpu_up") == nil)
        batch = try collector.collect()
        #expect(fake.calls("nvmlInit_v2") == 1, "no new attempt before the backoff has passed")
        clock.advance(by: 1000)
        batch = try collector.collect()
        #expect(fake.calls("nvmlInit_v2") == 2)
        #expect(value(batch, "gpu_nvml_up") == 0)
        clock.advance(by: 1000)
        _ = try collector.collect()
        #expect(fake.calls("nvmlInit_v2") == 2, "the backoff doubled to 2 s")
        clock.advance(by: 1000)
        batch = try collector.collect()
        #expect(fake.calls("nvmlInit_v2") == 3)
        #expect(value(batch, "gpu_nvml_up") == 1)
        #expect(value(batch, "gpu_up", ["gpu": "0"]) == 1)
    }

    @Test("/proc/<pid>/stat is parsed from the last ')' (commands may hold spaces and parentheses)")
    func statParsing() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 75 0 0 20 0 4 0 123456 987654321 2048 18446744073709551615"
        let stat = HostProcess.parseStat(line)
        #expect(stat == HostProcess.Stat(comm: "my (odd) cmd", utime: 250, stime: 75, rssPages: 2048))
        #expect(HostProcess.parseRealUID("Name:\tx\nUid:\t1001\t0\t0\t0\nGid:\t5\n") == 1001)
        #expect(HostProcess.shorten(["/usr/bin/python3", "train.py", "--epochs", "10"], comm: "python3") == "python3 train.py --epochs 10")
        #expect(HostProcess.shorten([], comm: "kworker/0:1") == "kworker/0:1")
        #expect(HostProcess.shorten(["x", String(repeating: "a", count: 100)], comm: "x").count == 64)
    }
}
