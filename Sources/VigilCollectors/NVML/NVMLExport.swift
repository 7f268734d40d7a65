import VigilCore

/// Series of an NVML snapshot, in base units (ratio, bytes, watts, joules, hertz), named after
/// DCGM-exporter's measurements the Prometheus way. Every GPU series carries `gpu` (index), `uuid`,
/// `model` and `pci_bus_id`; the driver version is on `gpu_driver_info` only, so an upgrade does not
/// change every series' identity.
public enum NVMLExport {
    /// Clock event ("throttle") reason bits and their label values.
    public static let clockEventReasons: [(bit: UInt64, name: String)] = [
        (0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"), (0x8, "hw_slowdown"),
        (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"), (0x40, "hw_thermal_slowdown"),
        (0x80, "hw_power_brake_slowdown"), (0x100, "display_clock_setting"),
    ]

    public static func batch(_ snapshot: NVMLSnapshot) -> SampleBatch {
        var b = SampleBatch()
        b.gauge("gpu_nvml_up", "1 when NVML is initialised and answering; 0 with the reason when it is not.",
                snapshot.up ? [:] : ["reason": snapshot.reason ?? "unknown"], snapshot.up ? 1 : 0)
        guard snapshot.up else { return b }
        b.gauge("gpu_driver_info", "NVIDIA driver, NVML and CUDA driver versions; always 1.", [
            "driver_version": snapshot.driverVersion ?? "", "nvml_version": snapshot.nvmlVersion ?? "",
            "cuda_driver_version": snapshot.cudaDriverVersion ?? "",
        ], 1)
        b.gauge("gpu_devices", "GPUs NVML reports, lost ones included.", [:], Double(snapshot.gpus.count))
        for gpu in snapshot.gpus { add(gpu, to: &b) }
        return b
    }

    static func labels(_ gpu: GPUReading) -> [String: String] {
        ["gpu": String(gpu.index), "uuid": gpu.uuid, "model": gpu.name, "pci_bus_id": gpu.pciBusID]
    }

    private static func add(_ gpu: GPUReading, to b: inout SampleBatch) {
        let base = labels(gpu)
        func with(_ extra: [String: String]) -> [String: String] { base.merging(extra) { _, new in new } }
        func gauge(_ name: String, _ help: String, _ value: Double?, _ extra: [String: String] = [:]) {
            if let value { b.gauge(name, help, with(extra), value) }
        }
        func counter(_ name: String, _ help: String, _ value: Double?, _ extra: [String: String] = [:]) {
            if let value { b.counter(name, help, with(extra), value) }
        }

        b.gauge("gpu_up", "1 while the GPU answers; 0 when it is lost (fallen off the bus, reset required).", base, gpu.up ? 1 : 0)
        addEvents(gpu, base: base, to: &b)
        guard gpu.up else { return }

        gauge("gpu_utilization_ratio", "Fraction of the last sample period in which a kernel ran on the GPU.",
              gpu.utilizationGPUPercent.map { $0 / 100 })
        gauge("gpu_memory_busy_ratio", "Fraction of the last sample period in which device memory was read or written.",
              gpu.utilizationMemoryPercent.map { $0 / 100 })
        gauge("gpu_memory_total_bytes", "Device memory in total.", gpu.memoryTotalBytes.map { Double($0) })
        gauge("gpu_memory_used_bytes", "Device memory allocated (reserved memory counts as used only with old drivers).",
              gpu.memoryUsedBytes.map { Double($0) })
        gauge("gpu_memory_free_bytes", "Device memory free.", gpu.memoryFreeBytes.map { Double($0) })
        gauge("gpu_memory_reserved_bytes", "Device memory the driver reserves.", gpu.memoryReservedBytes.map { Double($0) })
        gauge("gpu_temperature_celsius", "GPU core temperature.", gpu.temperatureCelsius)
        gauge("gpu_power_watts", "Power draw.", gpu.powerWatts)
        gauge("gpu_power_limit_watts", "Power limit: the management limit, and the one enforced (which may be lower).",
              gpu.powerLimitWatts, ["kind": "management"])
        gauge("gpu_power_limit_watts", "", gpu.enforcedPowerLimitWatts, ["kind": "enforced"])
        counter("gpu_energy_joules_total", "Energy used since the driver was loaded.", gpu.energyJoules)
        for (domain, mhz) in gpu.clocksMegahertz.sorted(by: { $0.key < $1.key }) {
            gauge("gpu_clock_hertz", "Current clock by domain (sm, memory, graphics).", mhz * 1e6, ["clock": domain])
        }
        for (domain, mhz) in gpu.maxClocksMegahertz.sorted(by: { $0.key < $1.key }) {
            gauge("gpu_clock_max_hertz", "Highest clock the domain can run at.", mhz * 1e6, ["clock": domain])
        }
        for (fan, percent) in gpu.fanSpeedsPercent.enumerated() {
            gauge("gpu_fan_speed_ratio", "Intended fan speed as a fraction of its maximum (may exceed 1).", percent / 100, ["fan": String(fan)])
        }
        gauge("gpu_performance_state", "Performance state: 0 is the fastest, 15 the slowest.", gpu.performanceState.map { Double($0) })
        if let reasons = gpu.clocksEventReasons {
            gauge("gpu_clocks_event_reasons", "Why clocks are below their maximum, as NVML's bitmask.", Double(reasons))
            let supported = gpu.supportedClocksEventReasons ?? clockEventReasons.reduce(0) { $0 | $1.bit }
            for reason in clockEventReasons where supported & reason.bit != 0 {
                gauge("gpu_clocks_event_active", "1 while this reason holds clocks down (throttling), else 0.",
                      reasons & reason.bit != 0 ? 1 : 0, ["reason": reason.name])
            }
        }
        for (key, count) in gpu.eccErrors.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "_")
            counter("gpu_ecc_errors_total", "ECC errors by type (corrected, uncorrected) and scope (volatile since driver load, aggregate for the board's life).",
                    Double(count), ["type": String(parts[0]), "scope": String(parts[1])])
        }
        if let rows = gpu.remappedRows {
            counter("gpu_remapped_rows_total", "Memory rows remapped, by the kind of error that caused it.", Double(rows.correctable), ["cause": "correctable"])
            counter("gpu_remapped_rows_total", "", Double(rows.uncorrectable), ["cause": "uncorrectable"])
            gauge("gpu_row_remap_pending", "1 when a row remap waits for the next GPU reset.", rows.pending ? 1 : 0)
            gauge("gpu_row_remap_failure", "1 when a row remap has failed (the GPU should be serviced).", rows.failure ? 1 : 0)
        }
        gauge("gpu_pcie_link_generation", "Current PCIe link generation.", gpu.pcieLinkGeneration.map { Double($0) })
        gauge("gpu_pcie_link_width", "Current PCIe link width (lanes).", gpu.pcieLinkWidth.map { Double($0) })
        counter("gpu_pcie_transmit_bytes_total", "Bytes sent over PCIe since the driver was loaded.", gpu.pcieTransmitBytes.map { Double($0) })
        counter("gpu_pcie_receive_bytes_total", "Bytes received over PCIe since the driver was loaded.", gpu.pcieReceiveBytes.map { Double($0) })
        gauge("gpu_pcie_transmit_bytes_per_second", "PCIe transmit throughput over NVML's last sample.", gpu.pcieTransmitBytesPerSecond)
        gauge("gpu_pcie_receive_bytes_per_second", "PCIe receive throughput over NVML's last sample.", gpu.pcieReceiveBytesPerSecond)
        gauge("gpu_mig_mode", "MIG mode: 1 enabled, 0 disabled.", gpu.migMode.map { Double($0) })
        gauge("gpu_mig_mode_pending", "MIG mode after the next GPU reset.", gpu.migModePending.map { Double($0) })
        for mig in gpu.migDevices {
            let extra = ["mig_uuid": mig.uuid, "profile": mig.profile,
                         "gpu_instance": mig.gpuInstance.map(String.init) ?? "", "compute_instance": mig.computeInstance.map(String.init) ?? ""]
            gauge("gpu_mig_memory_total_bytes", "Memory of a MIG device.", mig.memoryTotalBytes.map { Double($0) }, extra)
            gauge("gpu_mig_memory_used_bytes", "Memory allocated on a MIG device.", mig.memoryUsedBytes.map { Double($0) }, extra)
            gauge("gpu_mig_memory_free_bytes", "Memory free on a MIG device.", mig.memoryFreeBytes.map { Double($0) }, extra)
        }
        b.gauge("gpu_processes", "Processes using the GPU.", base, Double(gpu.processes.count))
        for process in gpu.processes {
            let extra = ["pid": String(process.pid), "user": process.user, "command": process.command, "type": process.type]
            gauge("gpu_process_memory_bytes", "GPU memory used by the process.", process.usedMemoryBytes.map { Double($0) }, extra)
            counter("gpu_process_cpu_seconds_total", "Host CPU time (user and system) of the process.", process.cpuSeconds, extra)
            gauge("gpu_process_resident_memory_bytes", "Host resident memory of the process.", Double(process.residentBytes), extra)
        }
    }

    private static func addEvents(_ gpu: GPUReading, base: [String: String], to b: inout SampleBatch) {
        guard let events = gpu.events else { return }
        if events.watchingXID {
            b.counter("gpu_xid_events_total", "XID events (driver-reported GPU errors) since Vigil started.", base, Double(events.xidTotal))
        }
        for (xid, count) in events.byXID.sorted(by: { $0.key < $1.key }) {
            b.counter("gpu_xid_errors_total", "XID events by XID number since Vigil started.",
                      base.merging(["xid": String(xid)]) { _, new in new }, Double(count))
        }
        if let last = events.lastXID, let time = events.lastXIDTime {
            b.gauge("gpu_last_xid", "The most recent XID number seen on the GPU.", base, Double(last))
            b.gauge("gpu_last_xid_timestamp_seconds", "When the most recent XID was seen (Unix time).", base, Double(time) / 1000)
        }
        for (event, count) in events.critical.sorted(by: { $0.key < $1.key }) {
            b.counter("gpu_critical_events_total", "Critical NVML events other than XIDs (ECC, GPU unavailable) since Vigil started.",
                      base.merging(["event": event]) { _, new in new }, Double(count))
        }
    }
}
