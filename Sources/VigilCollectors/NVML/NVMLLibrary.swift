import CVigilNVML
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An NVML return code with the class that decides what the collector does about it
/// (../shared/reference/nvml.md §6).
public struct NVMLReturn: Sendable, Equatable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    public static let success = NVMLReturn(0)

    public enum Kind: Sendable, Equatable {
        case success
        /// NOT_SUPPORTED, FUNCTION_NOT_FOUND, NO_PERMISSION, ARGUMENT_VERSION_MISMATCH, DEPRECATED:
        /// asked once per device and field, then never again.
        case unsupported
        /// NOT_FOUND, NO_DATA, TIMEOUT, NOT_READY, INSUFFICIENT_SIZE: skip this round.
        case transient
        /// GPU_IS_LOST, RESET_REQUIRED: the device is gone until it can be acquired again (UNKNOWN too,
        /// when acquiring a handle; from a field it is only a failed read).
        case deviceLost
        /// UNINITIALIZED, DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH, LIBRARY_NOT_FOUND: NVML itself
        /// is down; initialise again with backoff.
        case libraryDown
        /// Anything else (INVALID_ARGUMENT, OPERATING_SYSTEM, …): an error for this round.
        case failed
    }

    public var kind: Kind {
        switch code {
        case 0: return .success
        case 3, 4, 13, 25, 26: return .unsupported
        case 6, 7, 10, 21, 27: return .transient
        case 15, 16: return .deviceLost
        case 1, 9, 12, 18: return .libraryDown
        default: return .failed
        }
    }

    /// NVML's constant name without the NVML_ERROR_ prefix, as operators search for it.
    public var name: String {
        switch code {
        case 0: return "SUCCESS"
        case 1: return "UNINITIALIZED"
        case 2: return "INVALID_ARGUMENT"
        case 3: return "NOT_SUPPORTED"
        case 4: return "NO_PERMISSION"
        case 5: return "ALREADY_INITIALIZED"
        case 6: return "NOT_FOUND"
        case 7: return "INSUFFICIENT_SIZE"
        case 8: return "INSUFFICIENT_POWER"
        case 9: return "DRIVER_NOT_LOADED"
        case 10: return "TIMEOUT"
        case 11: return "IRQ_ISSUE"
        case 12: return "LIBRARY_NOT_FOUND"
        case 13: return "FUNCTION_NOT_FOUND"
        case 14: return "CORRUPTED_INFOROM"
        case 15: return "GPU_IS_LOST"
        case 16: return "RESET_REQUIRED"
        case 17: return "OPERATING_SYSTEM"
        case 18: return "LIB_RM_VERSION_MISMATCH"
        case 19: return "IN_USE"
        case 20: return "MEMORY"
        case 21: return "NO_DATA"
        case 25: return "ARGUMENT_VERSION_MISMATCH"
        case 26: return "DEPRECATED"
        case 27: return "NOT_READY"
        case 999: return "UNKNOWN"
        default: return "ERROR_\(code)"
        }
    }

    public var description: String { "\(name) (\(code))" }
}

/// `libnvidia-ml.so.1` opened with dlopen, every symbol looked up on its own. A symbol that is not
/// there leaves its field off; only init, count and handle-by-index are required.
///
/// The handles NVML gives out (`nvmlDevice_t`, `nvmlEventSet_t`) are one-pointer structs passed by
/// value, which the C ABIs of x86-64 and AArch64 pass exactly like a pointer: `OpaquePointer` here.
/// NVML is thread-safe, so the library is shared by the collector and its event thread.
public final class NVMLLibrary: @unchecked Sendable {
    typealias Device = OpaquePointer

    typealias Call = @convention(c) () -> Int32
    typealias ErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias SystemString = @convention(c) (UnsafeMutablePointer<CChar>?, UInt32) -> Int32
    typealias SystemInt = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    typealias SystemUInt = @convention(c) (UnsafeMutablePointer<UInt32>?) -> Int32
    typealias HandleByIndex = @convention(c) (UInt32, UnsafeMutablePointer<Device?>?) -> Int32
    typealias HandleByUUID = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<Device?>?) -> Int32
    typealias DeviceString = @convention(c) (Device?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32
    typealias DeviceUInt = @convention(c) (Device?, UnsafeMutablePointer<UInt32>?) -> Int32
    typealias DeviceArgUInt = @convention(c) (Device?, UInt32, UnsafeMutablePointer<UInt32>?) -> Int32
    typealias DeviceULL = @convention(c) (Device?, UnsafeMutablePointer<UInt64>?) -> Int32
    typealias DeviceTwoUInt = @convention(c) (Device?, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?) -> Int32
    typealias DeviceECC = @convention(c) (Device?, UInt32, UInt32, UnsafeMutablePointer<UInt64>?) -> Int32
    typealias DeviceRemappedRows = @convention(c) (Device?, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?,
                                                   UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?) -> Int32
    typealias DevicePCI = @convention(c) (Device?, UnsafeMutablePointer<vigil_nvml_pci_info>?) -> Int32
    typealias DeviceUtilization = @convention(c) (Device?, UnsafeMutablePointer<vigil_nvml_utilization>?) -> Int32
    typealias DeviceMemoryV1 = @convention(c) (Device?, UnsafeMutablePointer<vigil_nvml_memory_v1>?) -> Int32
    typealias DeviceMemoryV2 = @convention(c) (Device?, UnsafeMutablePointer<vigil_nvml_memory_v2>?) -> Int32
    typealias DeviceTemperatureV = @convention(c) (Device?, UnsafeMutablePointer<vigil_nvml_temperature_v1>?) -> Int32
    typealias DeviceProcesses = @convention(c) (Device?, UnsafeMutablePointer<UInt32>?, UnsafeMutableRawPointer?) -> Int32
    typealias DeviceProcessDetails = @convention(c) (Device?, UnsafeMutablePointer<vigil_nvml_process_detail_list_v1>?) -> Int32
    typealias DeviceFieldValues = @convention(c) (Device?, Int32, UnsafeMutablePointer<vigil_nvml_field_value>?) -> Int32
    typealias DeviceMigHandle = @convention(c) (Device?, UInt32, UnsafeMutablePointer<Device?>?) -> Int32
    typealias EventSetCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    typealias RegisterEvents = @convention(c) (Device?, UInt64, OpaquePointer?) -> Int32
    typealias EventSetWait = @convention(c) (OpaquePointer?, UnsafeMutablePointer<vigil_nvml_event_data>?, UInt32) -> Int32
    typealias EventSetFree = @convention(c) (OpaquePointer?) -> Int32

    /// The path that was opened.
    public let path: String
    private let handle: UnsafeMutableRawPointer
    /// Names looked up and not found (the fields they serve stay off).
    public let missing: [String]

    let initialize: Call
    let shutdown: Call?
    let errorString: ErrorString?
    let driverVersion: SystemString?
    let nvmlVersion: SystemString?
    let cudaDriverVersion: SystemInt?
    let deviceCount: SystemUInt
    let handleByIndex: HandleByIndex
    let handleByUUID: HandleByUUID?
    let name: DeviceString?
    let uuid: DeviceString?
    /// The newest PCI call. Older ones fill only the legacy 52-byte layout; the numeric fields, which
    /// Vigil formats the bus id from, are in every version.
    let pciInfo: DevicePCI?
    let utilization: DeviceUtilization?
    let memoryV2: DeviceMemoryV2?
    let memoryV1: DeviceMemoryV1?
    let temperatureV: DeviceTemperatureV?
    let temperature: DeviceArgUInt?
    let powerUsage: DeviceUInt?
    let powerLimit: DeviceUInt?
    let enforcedPowerLimit: DeviceUInt?
    let totalEnergy: DeviceULL?
    let clockInfo: DeviceArgUInt?
    let maxClockInfo: DeviceArgUInt?
    let numFans: DeviceUInt?
    let fanSpeedV2: DeviceArgUInt?
    let fanSpeed: DeviceUInt?
    let performanceState: DeviceUInt?
    let clocksEventReasons: DeviceULL?
    let supportedClocksEventReasons: DeviceULL?
    let totalECCErrors: DeviceECC?
    let remappedRows: DeviceRemappedRows?
    let pcieLinkGeneration: DeviceUInt?
    let pcieLinkWidth: DeviceUInt?
    let pcieThroughput: DeviceArgUInt?
    let fieldValues: DeviceFieldValues?
    let migMode: DeviceTwoUInt?
    let maxMigDeviceCount: DeviceUInt?
    let migDeviceHandle: DeviceMigHandle?
    let gpuInstanceID: DeviceUInt?
    let computeInstanceID: DeviceUInt?
    /// Compute, graphics and MPS process lists with the record stride their symbol implies.
    let processLists: [(kind: GPUProcess.Kind, call: DeviceProcesses)]
    let processStride: Int
    let processDetails: DeviceProcessDetails?
    let eventSetCreate: EventSetCreate?
    let supportedEventTypes: DeviceULL?
    let registerEvents: RegisterEvents?
    let eventSetWait: EventSetWait?
    let eventSetFree: EventSetFree?

    public struct NotFound: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String {
            "no NVIDIA driver found (\(reason.hasPrefix(path) ? reason : "\(path): \(reason)"))"
        }
    }

    /// Opens the library. Throws `NotFound` when the file cannot be loaded or is not an NVML
    /// (it lacks init, count or handle-by-index).
    public init(path: String) throws {
        guard let handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL) else {
            throw NotFound(path: path, reason: dlerror().map { String(cString: $0) } ?? "cannot be loaded")
        }
        self.path = path
        self.handle = handle
        var missing: [String] = []
        func symbol<F>(_ names: String..., as _: F.Type) -> (F, String)? {
            for name in names {
                if let pointer = dlsym(handle, name) { return (unsafeBitCast(pointer, to: F.self), name) }
            }
            missing.append(names[0])
            return nil
        }
        guard let initialize = symbol("nvmlInit_v2", "nvmlInit", as: Call.self),
              let count = symbol("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount", as: SystemUInt.self),
              let byIndex = symbol("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex", as: HandleByIndex.self) else {
            dlclose(handle)
            throw NotFound(path: path, reason: "not an NVML library: \(missing.joined(separator: ", ")) not exported")
        }
        self.initialize = initialize.0
        deviceCount = count.0
        handleByIndex = byIndex.0
        shutdown = symbol("nvmlShutdown", as: Call.self)?.0
        errorString = symbol("nvmlErrorString", as: ErrorString.self)?.0
        driverVersion = symbol("nvmlSystemGetDriverVersion", as: SystemString.self)?.0
        nvmlVersion = symbol("nvmlSystemGetNVMLVersion", as: SystemString.self)?.0
        cudaDriverVersion = symbol("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion", as: SystemInt.self)?.0
        handleByUUID = symbol("nvmlDeviceGetHandleByUUID", as: HandleByUUID.self)?.0
        name = symbol("nvmlDeviceGetName", as: DeviceString.self)?.0
        uuid = symbol("nvmlDeviceGetUUID", as: DeviceString.self)?.0
        pciInfo = symbol("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2", "nvmlDeviceGetPciInfo", as: DevicePCI.self)?.0
        utilization = symbol("nvmlDeviceGetUtilizationRates", as: DeviceUtilization.self)?.0
        // v2 where it exists (v1 counts reserved memory as used); v1 is only a fallback.
        memoryV2 = symbol("nvmlDeviceGetMemoryInfo_v2", as: DeviceMemoryV2.self)?.0
        memoryV1 = symbol("nvmlDeviceGetMemoryInfo", as: DeviceMemoryV1.self)?.0
        temperatureV = symbol("nvmlDeviceGetTemperatureV", as: DeviceTemperatureV.self)?.0
        temperature = symbol("nvmlDeviceGetTemperature", as: DeviceArgUInt.self)?.0
        powerUsage = symbol("nvmlDeviceGetPowerUsage", as: DeviceUInt.self)?.0
        powerLimit = symbol("nvmlDeviceGetPowerManagementLimit", as: DeviceUInt.self)?.0
        enforcedPowerLimit = symbol("nvmlDeviceGetEnforcedPowerLimit", as: DeviceUInt.self)?.0
        totalEnergy = symbol("nvmlDeviceGetTotalEnergyConsumption", as: DeviceULL.self)?.0
        clockInfo = symbol("nvmlDeviceGetClockInfo", as: DeviceArgUInt.self)?.0
        maxClockInfo = symbol("nvmlDeviceGetMaxClockInfo", as: DeviceArgUInt.self)?.0
        numFans = symbol("nvmlDeviceGetNumFans", as: DeviceUInt.self)?.0
        fanSpeedV2 = symbol("nvmlDeviceGetFanSpeed_v2", as: DeviceArgUInt.self)?.0
        fanSpeed = symbol("nvmlDeviceGetFanSpeed", as: DeviceUInt.self)?.0
        performanceState = symbol("nvmlDeviceGetPerformanceState", as: DeviceUInt.self)?.0
        clocksEventReasons = symbol("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons",
                                    as: DeviceULL.self)?.0
        supportedClocksEventReasons = symbol("nvmlDeviceGetSupportedClocksEventReasons",
                                             "nvmlDeviceGetSupportedClocksThrottleReasons", as: DeviceULL.self)?.0
        totalECCErrors = symbol("nvmlDeviceGetTotalEccErrors", as: DeviceECC.self)?.0
        remappedRows = symbol("nvmlDeviceGetRemappedRows", as: DeviceRemappedRows.self)?.0
        pcieLinkGeneration = symbol("nvmlDeviceGetCurrPcieLinkGeneration", as: DeviceUInt.self)?.0
        pcieLinkWidth = symbol("nvmlDeviceGetCurrPcieLinkWidth", as: DeviceUInt.self)?.0
        pcieThroughput = symbol("nvmlDeviceGetPcieThroughput", as: DeviceArgUInt.self)?.0
        fieldValues = symbol("nvmlDeviceGetFieldValues", as: DeviceFieldValues.self)?.0
        migMode = symbol("nvmlDeviceGetMigMode", as: DeviceTwoUInt.self)?.0
        maxMigDeviceCount = symbol("nvmlDeviceGetMaxMigDeviceCount", as: DeviceUInt.self)?.0
        migDeviceHandle = symbol("nvmlDeviceGetMigDeviceHandleByIndex", as: DeviceMigHandle.self)?.0
        gpuInstanceID = symbol("nvmlDeviceGetGpuInstanceId", as: DeviceUInt.self)?.0
        computeInstanceID = symbol("nvmlDeviceGetComputeInstanceId", as: DeviceUInt.self)?.0
        processDetails = symbol("nvmlDeviceGetRunningProcessDetailList", as: DeviceProcessDetails.self)?.0

        // Process lists: _v3 → _v2 → v1, and the record stride that goes with what was found.
        // R535 drivers 535.43–535.8x wrote 32-byte _v3 records; they are the ones that export
        // nvmlDeviceGetConfComputeMemSizeInfo but not nvmlDeviceGetRunningProcessDetailList
        // (nvitop's heuristic). The stride is checked against the data and corrected once if wrong.
        let compute = symbol("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2",
                             "nvmlDeviceGetComputeRunningProcesses", as: DeviceProcesses.self)
        let graphics = symbol("nvmlDeviceGetGraphicsRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v2",
                              "nvmlDeviceGetGraphicsRunningProcesses", as: DeviceProcesses.self)
        let mps = symbol("nvmlDeviceGetMPSComputeRunningProcesses_v3", as: DeviceProcesses.self)
        var lists: [(kind: GPUProcess.Kind, call: DeviceProcesses)] = []
        if let compute { lists.append((.compute, compute.0)) }
        if let graphics { lists.append((.graphics, graphics.0)) }
        if let mps { lists.append((.mps, mps.0)) }
        processLists = lists
        let suffix = compute?.1 ?? graphics?.1 ?? ""
        if suffix.hasSuffix("_v3") {
            let confCompute = dlsym(handle, "nvmlDeviceGetConfComputeMemSizeInfo") != nil
            processStride = confCompute && processDetails == nil ? 32 : 24
        } else {
            processStride = suffix.hasSuffix("_v2") ? 24 : 16
        }

        eventSetCreate = symbol("nvmlEventSetCreate", as: EventSetCreate.self)?.0
        supportedEventTypes = symbol("nvmlDeviceGetSupportedEventTypes", as: DeviceULL.self)?.0
        registerEvents = symbol("nvmlDeviceRegisterEvents", as: RegisterEvents.self)?.0
        eventSetWait = symbol("nvmlEventSetWait_v2", "nvmlEventSetWait", as: EventSetWait.self)?.0
        eventSetFree = symbol("nvmlEventSetFree", as: EventSetFree.self)?.0
        self.missing = missing
    }

    // The library stays loaded for the life of the process, as NVML clients do: unloading it while
    // an event thread may still be inside a wait is not safe, and reopening it is cheap to avoid.

    /// NVML's own words for a return code, with the constant's name.
    func describe(_ result: NVMLReturn) -> String {
        if let errorString, let text = errorString(result.code) { return "\(String(cString: text)) [\(result.name)]" }
        return result.description
    }

    /// Reads a string that NVML writes into a buffer of `capacity` bytes, up to the first NUL
    /// (never trusting a missing terminator).
    static func string(capacity: Int, _ fill: (UnsafeMutablePointer<CChar>, UInt32) -> Int32) -> (NVMLReturn, String) {
        var buffer = [CChar](repeating: 0, count: capacity + 1)
        let result = buffer.withUnsafeMutableBufferPointer { fill($0.baseAddress!, UInt32(capacity)) }
        let bytes = buffer.prefix(capacity).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return (NVMLReturn(result), String(decoding: bytes, as: UTF8.self))
    }
}
