import CVigilNVML
import Foundation
import Logging
import Synchronization
import VigilCore

/// Event counts per GPU UUID, written by the event thread and read by the collector. Kept for the
/// life of the collector, so counters never go back when NVML is re-initialised.
final class NVMLEventLog: Sendable {
    private let counts = Mutex<[String: GPUEventCounts]>([:])

    func snapshot(_ uuid: String) -> GPUEventCounts? { counts.withLock { $0[uuid] } }

    func watching(_ uuid: String, types: UInt64) {
        counts.withLock { counts in
            var entry = counts[uuid] ?? GPUEventCounts()
            if types & VIGIL_NVML_EVENT_XID != 0 { entry.watchingXID = true }
            for (bit, name) in NVMLEventWatcher.criticalNames where types & bit != 0 && entry.critical[name] == nil {
                entry.critical[name] = 0
            }
            counts[uuid] = entry
        }
    }

    func record(_ uuid: String, type: UInt64, data: UInt64, at time: Timestamp) {
        counts.withLock { counts in
            var entry = counts[uuid] ?? GPUEventCounts()
            if type & VIGIL_NVML_EVENT_XID != 0 {
                entry.xidTotal += 1
                entry.byXID[Int(clamping: data), default: 0] += 1
                entry.lastXID = data
                entry.lastXIDTime = time
            }
            for (bit, name) in NVMLEventWatcher.criticalNames where type & bit != 0 {
                entry.critical[name, default: 0] += 1
            }
            counts[uuid] = entry
        }
    }
}

/// Waits for XID and other critical events on a thread of its own (nvmlEventSetWait blocks), with a
/// short timeout so that stopping is prompt. One watcher per NVML initialisation.
final class NVMLEventWatcher: Sendable {
    static let criticalNames: [(UInt64, String)] = [
        (VIGIL_NVML_EVENT_SINGLE_BIT_ECC, "single_bit_ecc"),
        (VIGIL_NVML_EVENT_DOUBLE_BIT_ECC, "double_bit_ecc"),
        (VIGIL_NVML_EVENT_GPU_UNAVAILABLE, "gpu_unavailable"),
    ]
    static let wanted = VIGIL_NVML_EVENT_XID | VIGIL_NVML_EVENT_SINGLE_BIT_ECC | VIGIL_NVML_EVENT_DOUBLE_BIT_ECC
        | VIGIL_NVML_EVENT_GPU_UNAVAILABLE

    private struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Shared with the thread, which may outlive the watcher by one wait.
    private final class Flags: Sendable {
        let stopped = Atomic<Bool>(false)
    }

    private let flags = Flags()

    /// Registers the wanted events of every GPU and starts the thread; nil when the library has no
    /// event API or no GPU supports any wanted event.
    init?(library: NVMLLibrary, devices: [(handle: OpaquePointer, uuid: String)], log: NVMLEventLog,
          clock: any WallClock, logger: Logger) {
        guard let create = library.eventSetCreate, let register = library.registerEvents,
              let wait = library.eventSetWait, !devices.isEmpty else { return nil }
        var set: OpaquePointer?
        let created = NVMLReturn(create(&set))
        guard created == .success, let set else {
            logger.warning("NVML events unavailable", metadata: ["nvml.error": "\(library.describe(created))"])
            return nil
        }
        var handles: [(Handle, String)] = []
        for device in devices {
            var supported: UInt64 = NVMLEventWatcher.wanted
            if let query = library.supportedEventTypes, NVMLReturn(query(device.handle, &supported)) != .success { supported = 0 }
            let types = supported & NVMLEventWatcher.wanted
            guard types != 0 else { continue }
            let result = NVMLReturn(register(device.handle, types, set))
            if result == .success {
                log.watching(device.uuid, types: types)
                handles.append((Handle(pointer: device.handle), device.uuid))
            } else {
                logger.info("NVML events not registered for a GPU", metadata: [
                    "gpu.uuid": "\(device.uuid)", "nvml.error": "\(library.describe(result))",
                ])
            }
        }
        let setHandle = Handle(pointer: set)
        guard !handles.isEmpty else {
            _ = library.eventSetFree?(set)
            return nil
        }
        let flags = self.flags
        let free = library.eventSetFree
        let watched = handles
        let thread = Thread {
            var data = vigil_nvml_event_data()
            var lastFailure: Int32 = 0
            while !flags.stopped.load(ordering: .acquiring) {
                let result = wait(setHandle.pointer, &data, 500)
                if result == VIGIL_NVML_SUCCESS {
                    let source = data.device.map { OpaquePointer($0) }
                    if let uuid = watched.first(where: { $0.0.pointer == source })?.1 {
                        log.record(uuid, type: data.eventType, data: data.eventData, at: clock.now())
                        if data.eventType & VIGIL_NVML_EVENT_XID != 0 {
                            logger.warning("GPU XID event", metadata: ["gpu.uuid": "\(uuid)", "gpu.xid": "\(data.eventData)"])
                        }
                    }
                } else if result != VIGIL_NVML_ERROR_TIMEOUT {
                    // A lost GPU or a driver in trouble: say it once per kind, do not spin.
                    if result != lastFailure {
                        logger.warning("NVML event wait failed", metadata: ["nvml.error": "\(library.describe(NVMLReturn(result)))"])
                        lastFailure = result
                    }
                    Thread.sleep(forTimeInterval: 0.5)
                }
            }
            _ = free?(setHandle.pointer)
        }
        thread.name = "vigil-nvml-events"
        thread.start()
    }

    /// Asks the thread to end; it does within one wait timeout (0.5 s).
    func stop() {
        flags.stopped.store(true, ordering: .releasing)
    }

    deinit { stop() }
}
