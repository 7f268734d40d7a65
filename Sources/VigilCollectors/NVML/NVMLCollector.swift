import CVigilNVML
import Foundation
import Logging
import Synchronization
import VigilCore

/// Where the `nvml` collector finds its library and how it behaves.
public struct NVMLOptions: Sendable, Equatable {
    /// The library to dlopen. `VIGIL_NVML_LIBRARY` in the environment wins over this.
    public var library: String = NVMLOptions.defaultLibrary
    /// The filesystem root holding `proc/`, for the per-process join.
    public var procRoot: String = "/"
    /// Whether to watch XID and other critical events on a thread.
    public var events: Bool = true
    /// Longest wait between attempts to initialise NVML or to find a lost GPU again.
    public var maximumBackoffMilliseconds: Int64 = 60_000

    public static let defaultLibrary = "libnvidia-ml.so.1"

    public init(library: String? = nil, procRoot: String = "/", events: Bool = true) {
        self.library = library ?? NVMLOptions.defaultLibrary
        self.procRoot = procRoot
        self.events = events
    }

    /// The library path after the environment: `VIGIL_NVML_LIBRARY`, else the configured one.
    public func resolvedLibrary(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let path = environment["VIGIL_NVML_LIBRARY"], !path.isEmpty { return path }
        return library
    }
}

/// NVIDIA GPUs through NVML (../shared/reference/nvml.md): identity, utilisation, memory,
/// temperature, power and energy, clocks, fans, P-state, clock event reasons, ECC, remapped rows,
/// PCIe, MIG, the processes on each GPU joined with /proc, and XID events from a thread of its own.
///
/// Failures are handled by class: an unsupported field is asked once per GPU and then never again;
/// a lost GPU reports `gpu_up 0` while the others go on, and is looked for again with backoff; NVML
/// itself down (driver not loaded, library/driver version mismatch) is initialised again with backoff.
public final class NVMLCollector: Collector, Sendable {
    public let name = "nvml"
    public let library: NVMLLibrary
    private let options: NVMLOptions
    private let clock: any WallClock
    private let logger: Logger
    private let events = NVMLEventLog()
    private let state = Mutex(State())

    struct Device {
        var index: Int
        var handle: OpaquePointer?
        var uuid: String
        var name: String
        var pciBusID: String
        /// Queries that answered NOT_SUPPORTED (or another permanent code): never asked again.
        var unsupported: Set<String> = []
        var lostReason: String?
        var retryAt: Timestamp = 0
        var backoff: Int64 = 0
    }

    struct State {
        var initialized = false
        var downReason: String? = nil
        var retryAt: Timestamp = 0
        var backoff: Int64 = 0
        var devices: [Device] = []
        var driverVersion: String?
        var nvmlVersion: String?
        var cudaDriverVersion: String?
        var processStride = 24
        var strideCorrected = false
        var users: [UInt32: String] = [:]
        var watcher: NVMLEventWatcher?
    }

    private struct DeviceLost: Error { let result: NVMLReturn }
    private struct LibraryDown: Error { let result: NVMLReturn }

    /// Opens the library. Throws `NVMLLibrary.NotFound` when there is none: the caller says once that
    /// no NVIDIA driver was found and runs without this collector.
    public init(options: NVMLOptions = NVMLOptions(), clock: any WallClock = SystemWallClock(), logger: Logger) throws {
        self.options = options
        self.clock = clock
        self.logger = logger
        library = try NVMLLibrary(path: options.resolvedLibrary())
        let stride = library.processStride
        state.withLock { $0.processStride = stride }
        if !library.missing.isEmpty {
            logger.info("NVML functions not in this library; their fields stay off", metadata: [
                "nvml.library": "\(library.path)", "nvml.missing": "\(library.missing.joined(separator: ", "))",
            ])
        }
    }

    deinit {
        state.withLock { $0.watcher?.stop() }
    }

    public func collect() throws -> SampleBatch {
        NVMLExport.batch(snapshot())
    }

    /// One round: every GPU read now.
    public func snapshot() -> NVMLSnapshot {
        state.withLock { state in read(&state) }
    }

    // MARK: - Initialisation

    private func read(_ state: inout State) -> NVMLSnapshot {
        let now = clock.now()
        if !state.initialized {
            guard now >= state.retryAt else { return NVMLSnapshot(up: false, reason: state.downReason) }
            let result = NVMLReturn(library.initialize())
            guard result == .success else {
                markDown(&state, result, now: now)
                return NVMLSnapshot(up: false, reason: state.downReason)
            }
            start(&state)
        }
        var readings: [GPUReading] = []
        var cameBack = false
        do {
            for i in state.devices.indices {
                var device = state.devices[i]
                defer { state.devices[i] = device }
                let wasLost = device.lostReason != nil
                readings.append(try readDevice(&device, &state, now: now))
                if wasLost && device.lostReason == nil { cameBack = true }
            }
            // A GPU found again needs its events registered again.
            if cameBack { restartWatcher(&state) }
        } catch let down as LibraryDown {
            markDown(&state, down.result, now: now)
            return NVMLSnapshot(up: false, reason: state.downReason)
        } catch {
            logger.error("NVML read failed", metadata: ["nvml.error": "\(error)"])
        }
        return NVMLSnapshot(up: true, driverVersion: state.driverVersion, nvmlVersion: state.nvmlVersion,
                            cudaDriverVersion: state.cudaDriverVersion, gpus: readings)
    }

    /// NVML down: forget the devices, retry initialisation after a backoff that doubles up to the maximum.
    private func markDown(_ state: inout State, _ result: NVMLReturn, now: Timestamp) {
        if state.initialized { _ = library.shutdown?() }
        state.watcher?.stop()
        state.watcher = nil
        state.initialized = false
        state.devices = []
        state.backoff = min(max(state.backoff * 2, 1000), options.maximumBackoffMilliseconds)
        state.retryAt = now + state.backoff
        let reason = result.name
        if state.downReason != reason {
            var metadata: Logger.Metadata = [
                "nvml.library": "\(library.path)", "nvml.error": "\(library.describe(result))",
                "nvml.retry_in": "\(DurationParser.format(milliseconds: state.backoff))",
            ]
            if result.code == VIGIL_NVML_ERROR_LIB_RM_VERSION_MISMATCH {
                metadata["nvml.hint"] = "the driver was upgraded without reloading its kernel module: reload it or reboot"
            }
            logger.warning("NVML is not usable; retrying with backoff", metadata: metadata)
        }
        state.downReason = reason
    }

    private func start(_ state: inout State) {
        state.initialized = true
        state.downReason = nil
        state.backoff = 0
        if let call = library.driverVersion {
            let (result, text) = NVMLLibrary.string(capacity: 80) { call($0, $1) }
            state.driverVersion = result == .success ? text : nil
        }
        if let call = library.nvmlVersion {
            let (result, text) = NVMLLibrary.string(capacity: 80) { call($0, $1) }
            state.nvmlVersion = result == .success ? text : nil
        }
        if let call = library.cudaDriverVersion {
            var version: Int32 = 0
            if NVMLReturn(call(&version)) == .success { state.cudaDriverVersion = "\(version / 1000).\(version % 1000 / 10)" }
        }
        var count: UInt32 = 0
        let counted = NVMLReturn(library.deviceCount(&count))
        if counted != .success {
            logger.warning("NVML could not count GPUs", metadata: ["nvml.error": "\(library.describe(counted))"])
        }
        state.devices = []
        for index in 0..<Int(count) {
            var handle: OpaquePointer?
            let result = NVMLReturn(library.handleByIndex(UInt32(index), &handle))
            switch result.kind {
            case .success:
                state.devices.append(identify(index: index, handle: handle))
            case _ where result.kind == .deviceLost || result.code == VIGIL_NVML_ERROR_UNKNOWN:
                var device = Device(index: index, handle: nil, uuid: "", name: "", pciBusID: "")
                device.lostReason = result.name
                state.devices.append(device)
                logger.warning("GPU lost at start", metadata: ["gpu.index": "\(index)", "nvml.error": "\(library.describe(result))"])
            default:
                // NO_PERMISSION and the like: this index is not ours to read; the others are.
                logger.notice("GPU skipped", metadata: ["gpu.index": "\(index)", "nvml.error": "\(library.describe(result))"])
            }
        }
        logger.info("NVML ready", metadata: [
            "nvml.library": "\(library.path)", "nvml.driver_version": "\(state.driverVersion ?? "unknown")",
            "nvml.gpus": "\(state.devices.count)",
        ])
        restartWatcher(&state)
    }

    private func restartWatcher(_ state: inout State) {
        state.watcher?.stop()
        state.watcher = nil
        guard options.events else { return }
        let watched = state.devices.compactMap { device in
            device.lostReason == nil ? device.handle.map { (handle: $0, uuid: device.uuid) } : nil
        }
        state.watcher = NVMLEventWatcher(library: library, devices: watched, log: events, clock: clock, logger: logger)
    }

    /// Name, UUID and PCI bus id of a freshly acquired handle.
    private func identify(index: Int, handle: OpaquePointer?) -> Device {
        var device = Device(index: index, handle: handle, uuid: "", name: "", pciBusID: "")
        if let call = library.uuid {
            let (result, text) = NVMLLibrary.string(capacity: 96) { call(handle, $0, $1) }
            if result == .success { device.uuid = text }
        }
        if let call = library.name {
            let (result, text) = NVMLLibrary.string(capacity: 96) { call(handle, $0, $1) }
            if result == .success { device.name = text }
        }
        if let call = library.pciInfo {
            var pci = vigil_nvml_pci_info()
            // Older calls fill only the legacy layout; the numeric fields are there in every version.
            if NVMLReturn(call(handle, &pci)) == .success {
                device.pciBusID = String(format: "%08X:%02X:%02X.0", pci.domain, pci.bus, pci.device)
            }
        }
        return device
    }

    // MARK: - Per device

    /// Calls `body` unless the query is known unsupported on this device; sorts the answer by class.
    private func ask(_ device: inout Device, _ key: String, _ body: () -> Int32) throws -> Bool {
        if device.unsupported.contains(key) { return false }
        let result = NVMLReturn(body())
        switch result.kind {
        case .success:
            return true
        case .unsupported:
            device.unsupported.insert(key)
            logger.debug("GPU field not supported; not asked again", metadata: [
                "gpu.index": "\(device.index)", "nvml.query": "\(key)", "nvml.error": "\(result.name)",
            ])
            return false
        case .transient, .failed:
            return false
        case .deviceLost:
            throw DeviceLost(result: result)
        case .libraryDown:
            throw LibraryDown(result: result)
        }
    }

    private func readDevice(_ device: inout Device, _ state: inout State, now: Timestamp) throws -> GPUReading {
        if device.lostReason != nil {
            guard now >= device.retryAt, reacquire(&device) else { return lostReading(device) }
            logger.notice("GPU is back", metadata: ["gpu.index": "\(device.index)", "gpu.uuid": "\(device.uuid)"])
        }
        do {
            return try readFields(&device, &state)
        } catch let lost as DeviceLost {
            device.lostReason = lost.result.name
            device.backoff = min(max(device.backoff * 2, 1000), options.maximumBackoffMilliseconds)
            device.retryAt = now + device.backoff
            logger.error("GPU lost; the others keep reporting", metadata: [
                "gpu.index": "\(device.index)", "gpu.uuid": "\(device.uuid)", "nvml.error": "\(library.describe(lost.result))",
            ])
            return lostReading(device)
        }
    }

    private func lostReading(_ device: Device) -> GPUReading {
        var reading = GPUReading(index: device.index, uuid: device.uuid, name: device.name, pciBusID: device.pciBusID, up: false)
        reading.lostReason = device.lostReason
        reading.events = device.uuid.isEmpty ? nil : events.snapshot(device.uuid)
        return reading
    }

    /// Looks for a lost GPU again by UUID (by index when it was lost before we learnt its UUID).
    private func reacquire(_ device: inout Device) -> Bool {
        var handle: OpaquePointer?
        let result: NVMLReturn
        if !device.uuid.isEmpty, let byUUID = library.handleByUUID {
            result = device.uuid.withCString { NVMLReturn(byUUID($0, &handle)) }
        } else {
            result = NVMLReturn(library.handleByIndex(UInt32(device.index), &handle))
        }
        guard result == .success else {
            device.backoff = min(max(device.backoff * 2, 1000), options.maximumBackoffMilliseconds)
            device.retryAt = clock.now() + device.backoff
            return false
        }
        let unsupported = device.unsupported
        device = identify(index: device.index, handle: handle)
        device.unsupported = unsupported
        return true
    }

    private func readFields(_ device: inout Device, _ state: inout State) throws -> GPUReading {
        let lib = library
        let handle = device.handle
        var r = GPUReading(index: device.index, uuid: device.uuid, name: device.name, pciBusID: device.pciBusID, up: true)

        if let call = lib.utilization {
            var value = vigil_nvml_utilization()
            if try ask(&device, "utilization", { call(handle, &value) }) {
                r.utilizationGPUPercent = Double(value.gpu)
                r.utilizationMemoryPercent = Double(value.memory)
            }
        }
        try readMemory(&device, handle, prefix: "") { total, used, free, reserved in
            r.memoryTotalBytes = total
            r.memoryUsedBytes = used
            r.memoryFreeBytes = free
            r.memoryReservedBytes = reserved
        }
        if let call = lib.temperatureV {
            var value = vigil_nvml_temperature_v1()
            value.version = VIGIL_NVML_TEMPERATURE_V1_VERSION
            value.sensorType = 0
            if try ask(&device, "temperature_v", { call(handle, &value) }) { r.temperatureCelsius = Double(value.temperature) }
        }
        if r.temperatureCelsius == nil, let call = lib.temperature {
            var value: UInt32 = 0
            if try ask(&device, "temperature", { call(handle, 0, &value) }) { r.temperatureCelsius = Double(value) }
        }
        r.powerWatts = try milli(&device, "power", lib.powerUsage, handle)
        r.powerLimitWatts = try milli(&device, "power_limit", lib.powerLimit, handle)
        r.enforcedPowerLimitWatts = try milli(&device, "enforced_power_limit", lib.enforcedPowerLimit, handle)
        if let call = lib.totalEnergy {
            var value: UInt64 = 0
            if try ask(&device, "energy", { call(handle, &value) }) { r.energyJoules = Double(value) / 1000 }
        }
        for (type, domain) in [(UInt32(1), "sm"), (2, "memory"), (0, "graphics")] {
            if let call = lib.clockInfo {
                var value: UInt32 = 0
                if try ask(&device, "clock.\(domain)", { call(handle, type, &value) }) { r.clocksMegahertz[domain] = Double(value) }
            }
            if let call = lib.maxClockInfo {
                var value: UInt32 = 0
                if try ask(&device, "max_clock.\(domain)", { call(handle, type, &value) }) { r.maxClocksMegahertz[domain] = Double(value) }
            }
        }
        var fans: UInt32 = 0
        if let count = lib.numFans, let speed = lib.fanSpeedV2, try ask(&device, "fans", { count(handle, &fans) }) {
            for fan in 0..<fans {
                var value: UInt32 = 0
                if try ask(&device, "fan_speed", { speed(handle, fan, &value) }) { r.fanSpeedsPercent.append(Double(value)) }
            }
        } else if let speed = lib.fanSpeed, lib.numFans == nil || lib.fanSpeedV2 == nil {
            var value: UInt32 = 0
            if try ask(&device, "fan_speed", { speed(handle, &value) }) { r.fanSpeedsPercent.append(Double(value)) }
        }
        if let call = lib.performanceState {
            var value: UInt32 = 0
            // 32 is NVML_PSTATE_UNKNOWN.
            if try ask(&device, "pstate", { call(handle, &value) }), value < 32 { r.performanceState = Int(value) }
        }
        if let call = lib.clocksEventReasons {
            var value: UInt64 = 0
            if try ask(&device, "clocks_event_reasons", { call(handle, &value) }) { r.clocksEventReasons = value }
        }
        if let call = lib.supportedClocksEventReasons {
            var value: UInt64 = 0
            if try ask(&device, "supported_clocks_event_reasons", { call(handle, &value) }) { r.supportedClocksEventReasons = value }
        }
        if let call = lib.totalECCErrors {
            for (errorType, error) in [(UInt32(0), "corrected"), (1, "uncorrected")] {
                for (counterType, counter) in [(UInt32(0), "volatile"), (1, "aggregate")] {
                    var value: UInt64 = 0
                    if try ask(&device, "ecc.\(error).\(counter)", { call(handle, errorType, counterType, &value) }) {
                        r.eccErrors["\(error)_\(counter)"] = value
                    }
                }
            }
        }
        if let call = lib.remappedRows {
            var correctable: UInt32 = 0, uncorrectable: UInt32 = 0, pending: UInt32 = 0, failure: UInt32 = 0
            if try ask(&device, "remapped_rows", { call(handle, &correctable, &uncorrectable, &pending, &failure) }) {
                r.remappedRows = .init(correctable: correctable, uncorrectable: uncorrectable, pending: pending != 0, failure: failure != 0)
            }
        }
        if let call = lib.pcieLinkGeneration {
            var value: UInt32 = 0
            if try ask(&device, "pcie_generation", { call(handle, &value) }) { r.pcieLinkGeneration = Int(value) }
        }
        if let call = lib.pcieLinkWidth {
            var value: UInt32 = 0
            if try ask(&device, "pcie_width", { call(handle, &value) }) { r.pcieLinkWidth = Int(value) }
        }
        if let call = lib.fieldValues {
            // The cumulative byte counters cost nothing to read; the throughput call below blocks for a
            // 20 ms sample per counter, so it is only the fallback.
            var fields = [vigil_nvml_field_value(), vigil_nvml_field_value()]
            fields[0].fieldId = VIGIL_NVML_FI_DEV_PCIE_COUNT_TX_BYTES
            fields[1].fieldId = VIGIL_NVML_FI_DEV_PCIE_COUNT_RX_BYTES
            if try ask(&device, "pcie_bytes", { fields.withUnsafeMutableBufferPointer { call(handle, 2, $0.baseAddress) } }) {
                let answers = fields.map { NVMLReturn($0.nvmlReturn) }
                if answers.allSatisfy({ $0 == .success }) {
                    r.pcieTransmitBytes = Self.unsigned(fields[0])
                    r.pcieReceiveBytes = Self.unsigned(fields[1])
                } else if answers.contains(where: { $0.kind == .unsupported }) {
                    device.unsupported.insert("pcie_bytes")
                }
            }
        }
        if let call = lib.pcieThroughput, r.pcieTransmitBytes == nil {
            var tx: UInt32 = 0, rx: UInt32 = 0
            // KB/s (1000 bytes) in NVML's words.
            if try ask(&device, "pcie_throughput.tx", { call(handle, 0, &tx) }) { r.pcieTransmitBytesPerSecond = Double(tx) * 1000 }
            if try ask(&device, "pcie_throughput.rx", { call(handle, 1, &rx) }) { r.pcieReceiveBytesPerSecond = Double(rx) * 1000 }
        }
        if let call = lib.migMode {
            var current: UInt32 = 0, pending: UInt32 = 0
            if try ask(&device, "mig_mode", { call(handle, &current, &pending) }) {
                r.migMode = Int(current)
                r.migModePending = Int(pending)
                if current == 1 { r.migDevices = try readMIG(&device) }
            }
        }
        r.processes = try readProcesses(&device, &state, memoryTotal: r.memoryTotalBytes)
        r.events = events.snapshot(device.uuid)
        return r
    }

    /// A field value as an unsigned count, whatever integer type the driver chose.
    static func unsigned(_ field: vigil_nvml_field_value) -> UInt64? {
        switch field.valueType {
        case 0: return field.value.dVal >= 0 ? UInt64(field.value.dVal) : nil
        case 1: return UInt64(field.value.uiVal)
        case 2: return UInt64(field.value.ulVal)
        case 3: return field.value.ullVal
        case 4: return field.value.sllVal >= 0 ? UInt64(field.value.sllVal) : nil
        case 5: return field.value.siVal >= 0 ? UInt64(field.value.siVal) : nil
        case 6: return UInt64(field.value.usVal)
        default: return nil
        }
    }

    private func milli(_ device: inout Device, _ key: String, _ call: NVMLLibrary.DeviceUInt?, _ handle: OpaquePointer?) throws -> Double? {
        guard let call else { return nil }
        var value: UInt32 = 0
        return try ask(&device, key, { call(handle, &value) }) ? Double(value) / 1000 : nil
    }

    /// Memory through the v2 call where the library and driver have it, else v1 (whose "used"
    /// includes reserved memory, and which knows nothing reserved).
    private func readMemory(_ device: inout Device, _ handle: OpaquePointer?, prefix: String,
                            _ store: (UInt64, UInt64, UInt64, UInt64?) -> Void) throws {
        if let call = library.memoryV2 {
            var value = vigil_nvml_memory_v2()
            value.version = VIGIL_NVML_MEMORY_V2_VERSION
            if try ask(&device, prefix + "memory_v2", { call(handle, &value) }) {
                store(value.total, value.used, value.free, value.reserved)
                return
            }
        }
        if let call = library.memoryV1 {
            var value = vigil_nvml_memory_v1()
            if try ask(&device, prefix + "memory", { call(handle, &value) }) {
                store(value.total, value.used, value.free, nil)
            }
        }
    }

    /// The MIG devices of a GPU in MIG mode: every slot up to the maximum, empty ones skipped.
    /// Handles are looked up again every round (they change when instances are re-created).
    private func readMIG(_ device: inout Device) throws -> [MIGDeviceReading] {
        guard let maxCount = library.maxMigDeviceCount, let byIndex = library.migDeviceHandle else { return [] }
        var slots: UInt32 = 0
        let handle = device.handle
        guard try ask(&device, "mig_device_count", { maxCount(handle, &slots) }) else { return [] }
        var found: [MIGDeviceReading] = []
        for slot in 0..<slots {
            var mig: OpaquePointer?
            let result = NVMLReturn(byIndex(handle, slot, &mig))
            if result.kind == .deviceLost { throw DeviceLost(result: result) }
            guard result == .success, let mig else { continue }
            var reading = MIGDeviceReading(slot: Int(slot), uuid: "", name: "", profile: "")
            if let call = library.uuid {
                let (result, text) = NVMLLibrary.string(capacity: 96) { call(mig, $0, $1) }
                if result == .success { reading.uuid = text }
            }
            if let call = library.name {
                let (result, text) = NVMLLibrary.string(capacity: 96) { call(mig, $0, $1) }
                if result == .success {
                    reading.name = text
                    if let range = text.range(of: " MIG ") { reading.profile = String(text[range.upperBound...]) }
                }
            }
            var id: UInt32 = 0
            if let call = library.gpuInstanceID, try ask(&device, "mig.gpu_instance", { call(mig, &id) }) { reading.gpuInstance = Int(id) }
            if let call = library.computeInstanceID, try ask(&device, "mig.compute_instance", { call(mig, &id) }) {
                reading.computeInstance = Int(id)
            }
            try readMemory(&device, mig, prefix: "mig.") { total, used, free, _ in
                reading.memoryTotalBytes = total
                reading.memoryUsedBytes = used
                reading.memoryFreeBytes = free
            }
            found.append(reading)
        }
        return found
    }

    // MARK: - Processes

    private func readProcesses(_ device: inout Device, _ state: inout State, memoryTotal: UInt64?) throws -> [GPUProcess] {
        var byPID: [UInt32: (kinds: Set<GPUProcess.Kind>, raw: NVMLProcessRecord)] = [:]
        func add(_ kind: GPUProcess.Kind, _ records: [NVMLProcessRecord]) {
            for record in records {
                var entry = byPID[record.pid] ?? ([], record)
                entry.kinds.insert(kind)
                if entry.raw.usedMemory == VIGIL_NVML_VALUE_NOT_AVAILABLE_ULL { entry.raw.usedMemory = record.usedMemory }
                byPID[record.pid] = entry
            }
        }
        if let details = library.processDetails, !device.unsupported.contains("process_details") {
            for (mode, kind) in [(UInt32(0), GPUProcess.Kind.compute), (1, .graphics), (2, .mps)] {
                guard let records = try readDetailList(&device, details, mode: mode) else { break }
                add(kind, records)
            }
        }
        if device.unsupported.contains("process_details") || library.processDetails == nil {
            for (kind, call) in library.processLists {
                let records = try readProcessList(&device, &state, kind: kind, call, memoryTotal: memoryTotal)
                add(kind, records)
            }
        }
        var processes: [GPUProcess] = []
        for (pid, entry) in byPID.sorted(by: { $0.key < $1.key }) {
            // Gone between NVML and /proc, or hidden: skipped this round.
            guard let host = HostProcess.read(pid: Int(pid), root: options.procRoot) else { continue }
            let user: String
            if let known = state.users[host.uid] {
                user = known
            } else {
                user = HostProcess.userName(host.uid)
                state.users[host.uid] = user
            }
            let kinds = entry.kinds.sorted()
            let type = kinds == [.compute, .graphics] ? "C+G" : kinds.map(\.rawValue).joined(separator: "+")
            let raw = entry.raw
            processes.append(GPUProcess(
                pid: Int(pid), type: type,
                usedMemoryBytes: raw.usedMemory == VIGIL_NVML_VALUE_NOT_AVAILABLE_ULL ? nil : raw.usedMemory,
                gpuInstance: raw.gpuInstance == 0xFFFF_FFFF ? nil : Int(raw.gpuInstance),
                computeInstance: raw.computeInstance == 0xFFFF_FFFF ? nil : Int(raw.computeInstance),
                user: user, command: host.command, cpuSeconds: host.cpuSeconds, residentBytes: host.residentBytes))
        }
        return processes
    }

    /// NVML's size protocol: ask with no room to learn the count, then with room for twice as many
    /// plus five (the list can grow in between), again if it still grew.
    private func sized<Record>(_ make: (Int) -> [Record], _ call: (inout UInt32, UnsafeMutablePointer<Record>?) -> Int32) -> (NVMLReturn, [Record]) {
        var count: UInt32 = 0
        var result = NVMLReturn(call(&count, nil))
        for _ in 0..<3 {
            guard result.code == VIGIL_NVML_ERROR_INSUFFICIENT_SIZE else { break }
            let capacity = Int(count) * 2 + 5
            var records = make(capacity)
            count = UInt32(capacity)
            result = records.withUnsafeMutableBufferPointer { NVMLReturn(call(&count, $0.baseAddress)) }
            if result == .success { return (result, Array(records.prefix(Int(count)))) }
        }
        return (result, [])
    }

    private func readDetailList(_ device: inout Device, _ call: NVMLLibrary.DeviceProcessDetails, mode: UInt32) throws -> [NVMLProcessRecord]? {
        let handle = device.handle
        var list = vigil_nvml_process_detail_list_v1()
        list.version = VIGIL_NVML_PROCESS_DETAIL_LIST_V1_VERSION
        list.mode = mode
        var records: [vigil_nvml_process_detail_v1] = []
        let answered = try ask(&device, "process_details") {
            let (result, found) = sized({ Array(repeating: vigil_nvml_process_detail_v1(), count: $0) }) { count, buffer in
                list.numProcArrayEntries = count
                list.procArray = buffer
                let code = call(handle, &list)
                count = list.numProcArrayEntries
                return code
            }
            records = found
            return result.code
        }
        // Unsupported on this device: the caller falls back to the process lists.
        guard answered else { return device.unsupported.contains("process_details") ? nil : [] }
        return records.map { NVMLProcessRecord(pid: $0.pid, usedMemory: $0.usedGpuMemory, gpuInstance: $0.gpuInstanceId, computeInstance: $0.computeInstanceId) }
    }

    private func readProcessList(_ device: inout Device, _ state: inout State, kind: GPUProcess.Kind,
                                 _ call: NVMLLibrary.DeviceProcesses, memoryTotal: UInt64?) throws -> [NVMLProcessRecord] {
        let handle = device.handle
        // Room for 32-byte records whatever stride we expect, so a driver that writes larger records
        // than we think never writes past the buffer.
        var bytes: [UInt8] = []
        var found = 0
        guard try ask(&device, "processes.\(kind.rawValue)", {
            let (result, records) = sized({ Array(repeating: (UInt64(0), UInt64(0), UInt64(0), UInt64(0)), count: $0) }) { count, buffer in
                call(handle, &count, UnsafeMutableRawPointer(buffer))
            }
            found = records.count
            bytes = records.withUnsafeBytes { Array($0) }
            return result.code
        }), found > 0 else { return [] }
        var records = Self.parse(bytes, count: found, stride: state.processStride)
        if !Self.plausible(records, stride: state.processStride, memoryTotal: memoryTotal), !state.strideCorrected,
           state.processStride != 16 {
            let other = state.processStride == 24 ? 32 : 24
            let retried = Self.parse(bytes, count: found, stride: other)
            if Self.plausible(retried, stride: other, memoryTotal: memoryTotal) {
                logger.warning("NVML process records are not the size this driver's symbols suggest; switching", metadata: [
                    "nvml.expected_bytes": "\(state.processStride)", "nvml.actual_bytes": "\(other)",
                ])
                state.processStride = other
                state.strideCorrected = true
                records = retried
            }
        }
        return records
    }

    static func parse(_ bytes: [UInt8], count: Int, stride: Int) -> [NVMLProcessRecord] {
        bytes.withUnsafeBytes { raw in
            (0..<count).compactMap { i -> NVMLProcessRecord? in
                let base = i * stride
                guard base + stride <= raw.count else { return nil }
                let pid = raw.loadUnaligned(fromByteOffset: base, as: UInt32.self)
                let used = raw.loadUnaligned(fromByteOffset: base + 8, as: UInt64.self)
                let gi = stride >= 24 ? raw.loadUnaligned(fromByteOffset: base + 16, as: UInt32.self) : 0xFFFF_FFFF
                let ci = stride >= 24 ? raw.loadUnaligned(fromByteOffset: base + 20, as: UInt32.self) : 0xFFFF_FFFF
                return NVMLProcessRecord(pid: pid, usedMemory: used, gpuInstance: gi, computeInstance: ci)
            }
        }
    }

    /// Whether records read at a stride look like processes: real PIDs, memory within the GPU's,
    /// MIG instance ids either "none" or small.
    static func plausible(_ records: [NVMLProcessRecord], stride: Int, memoryTotal: UInt64?) -> Bool {
        records.allSatisfy { record in
            guard record.pid > 0, record.pid <= 4_194_304 else { return false }
            if record.usedMemory != VIGIL_NVML_VALUE_NOT_AVAILABLE_ULL, let memoryTotal, record.usedMemory > memoryTotal { return false }
            if stride >= 24 {
                for id in [record.gpuInstance, record.computeInstance] where id != 0xFFFF_FFFF && id >= 64 { return false }
            }
            return true
        }
    }
}

/// One record of an NVML process list, whatever its stride.
struct NVMLProcessRecord: Equatable {
    var pid: UInt32
    var usedMemory: UInt64
    var gpuInstance: UInt32
    var computeInstance: UInt32
}
