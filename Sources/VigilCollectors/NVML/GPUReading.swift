import VigilCore

/// Everything one NVML round saw, in NVML's units (percent, MHz, bytes, watts, joules). The `nvml`
/// collector turns it into series (`NVMLExport`); `vigil gpus` prints it.
public struct NVMLSnapshot: Sendable, Encodable {
    /// Whether NVML is initialised and answering.
    public var up: Bool
    /// Why not, when it is down (an NVML return code name such as LIB_RM_VERSION_MISMATCH).
    public var reason: String?
    public var driverVersion: String?
    public var nvmlVersion: String?
    /// CUDA driver API version as NVML reports it, e.g. "12.4".
    public var cudaDriverVersion: String?
    public var gpus: [GPUReading]

    public init(up: Bool, reason: String? = nil, driverVersion: String? = nil, nvmlVersion: String? = nil,
                cudaDriverVersion: String? = nil, gpus: [GPUReading] = []) {
        self.up = up
        self.reason = reason
        self.driverVersion = driverVersion
        self.nvmlVersion = nvmlVersion
        self.cudaDriverVersion = cudaDriverVersion
        self.gpus = gpus
    }
}

/// One GPU. Every optional is nil when the GPU, driver or library does not offer it.
public struct GPUReading: Sendable, Encodable {
    public var index: Int
    public var uuid: String
    public var name: String
    public var pciBusID: String
    /// false while the GPU is lost (GPU_IS_LOST, RESET_REQUIRED); the fields are then empty.
    public var up: Bool
    public var lostReason: String?

    public var utilizationGPUPercent: Double?
    public var utilizationMemoryPercent: Double?
    public var memoryTotalBytes: UInt64?
    /// Allocated memory. With the v1 call (old drivers) it includes reserved memory.
    public var memoryUsedBytes: UInt64?
    public var memoryFreeBytes: UInt64?
    /// Memory the driver reserves (v2 call only).
    public var memoryReservedBytes: UInt64?
    public var temperatureCelsius: Double?
    public var powerWatts: Double?
    public var powerLimitWatts: Double?
    public var enforcedPowerLimitWatts: Double?
    /// Energy since the driver was loaded.
    public var energyJoules: Double?
    /// Current clocks by domain: sm, memory, graphics.
    public var clocksMegahertz: [String: Double] = [:]
    public var maxClocksMegahertz: [String: Double] = [:]
    /// Intended fan speeds, percent of the maximum (may exceed 100).
    public var fanSpeedsPercent: [Double] = []
    /// P-state 0 (fastest) to 15.
    public var performanceState: Int?
    /// Clock event ("throttle") reasons as NVML's bitmask.
    public var clocksEventReasons: UInt64?
    public var supportedClocksEventReasons: UInt64?
    /// ECC error counts by "corrected_volatile", "uncorrected_volatile", "corrected_aggregate", "uncorrected_aggregate".
    public var eccErrors: [String: UInt64] = [:]
    public var remappedRows: RemappedRows?
    public var pcieLinkGeneration: Int?
    public var pcieLinkWidth: Int?
    /// Bytes sent and received over PCIe since the driver was loaded (fields 197/198).
    public var pcieTransmitBytes: UInt64?
    public var pcieReceiveBytes: UInt64?
    /// Throughput over NVML's own 20 ms sample, read only where the byte counters are not offered.
    public var pcieTransmitBytesPerSecond: Double?
    public var pcieReceiveBytesPerSecond: Double?
    public var migMode: Int?
    public var migModePending: Int?
    public var migDevices: [MIGDeviceReading] = []
    public var processes: [GPUProcess] = []
    /// XID and other critical events seen since Vigil started (nil when events are not watched).
    public var events: GPUEventCounts?

    public init(index: Int, uuid: String, name: String, pciBusID: String, up: Bool) {
        self.index = index
        self.uuid = uuid
        self.name = name
        self.pciBusID = pciBusID
        self.up = up
    }

    public struct RemappedRows: Sendable, Encodable, Equatable {
        public var correctable: UInt32
        public var uncorrectable: UInt32
        public var pending: Bool
        public var failure: Bool
    }
}

/// A MIG device (one GPU instance × one compute instance) on a GPU in MIG mode.
public struct MIGDeviceReading: Sendable, Encodable {
    public var slot: Int
    public var uuid: String
    public var name: String
    /// The profile, such as "3g.40gb", taken from the MIG device's name.
    public var profile: String
    public var gpuInstance: Int?
    public var computeInstance: Int?
    public var memoryTotalBytes: UInt64?
    public var memoryUsedBytes: UInt64?
    public var memoryFreeBytes: UInt64?
}

/// A process using a GPU, joined with what /proc says about it.
public struct GPUProcess: Sendable, Encodable, Equatable {
    public enum Kind: String, Sendable, Encodable, Comparable {
        case compute = "C", graphics = "G", mps = "M"
        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    public var pid: Int
    /// C (compute), G (graphics), C+G, M (MPS compute).
    public var type: String
    /// GPU memory in use; nil when the driver cannot say (MIG, WDDM).
    public var usedMemoryBytes: UInt64?
    public var gpuInstance: Int?
    public var computeInstance: Int?
    /// Owner by real UID (as ps -o ruser, psutil and nvitop show it), or the number when unknown.
    public var user: String
    /// Shortened command line: program name and its first arguments.
    public var command: String
    /// Host CPU time, user + system.
    public var cpuSeconds: Double
    /// Host resident memory.
    public var residentBytes: UInt64
}

/// Event counts of one GPU since Vigil started watching.
public struct GPUEventCounts: Sendable, Encodable, Equatable {
    /// Whether XID events are registered for this GPU (then `xidTotal` exists from 0).
    public var watchingXID: Bool = false
    public var xidTotal: UInt64 = 0
    /// Count by XID number.
    public var byXID: [Int: UInt64] = [:]
    public var lastXID: UInt64?
    /// Milliseconds since the epoch of the last XID.
    public var lastXIDTime: Timestamp?
    /// Other critical events by name (single_bit_ecc, double_bit_ecc, gpu_unavailable), from 0 when registered.
    public var critical: [String: UInt64] = [:]
}
