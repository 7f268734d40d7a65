import Foundation
#if canImport(Glibc)
import Glibc
#endif
import VigilCore

/// Host metrics from /proc with node_exporter's names: cpu, stat, memory, load, pressure, disks,
/// filesystems (statvfs over /proc/mounts) and process counts.
public struct ProcfsCollector: Collector {
    public let name = "procfs"
    /// The filesystem root holding `proc/` (`/` on a live host; a fixture folder in tests).
    public let root: String
    /// Whether to statvfs the mounts found (off for recorded fixtures, whose mount points do not exist).
    public let statFilesystems: Bool
    let userHZ: Double

    public init(root: String = "/", statFilesystems: Bool = true) {
        self.root = root
        self.statFilesystems = statFilesystems
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        userHZ = ticks > 0 ? Double(ticks) : 100
    }

    func path(_ relative: String) -> String {
        root.hasSuffix("/") ? root + relative : root + "/" + relative
    }

    public func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        guard let stat = readText(path("proc/stat")) else {
            throw VigilError(.io, "cannot read \(path("proc/stat")): is /proc mounted?")
        }
        ProcParsers.stat(stat, userHZ: userHZ, into: &batch)
        if let text = readText(path("proc/meminfo")) { ProcParsers.meminfo(text, into: &batch) }
        if let text = readText(path("proc/loadavg")) { ProcParsers.loadavg(text, into: &batch) }
        for resource in ["cpu", "io", "memory", "irq"] {
            if let text = readText(path("proc/pressure/\(resource)")) {
                ProcParsers.pressure(text, resource: resource, into: &batch)
            }
        }
        if let text = readText(path("proc/diskstats")) { ProcParsers.diskstats(text, into: &batch) }
        if let text = readText(path("proc/mounts")) { filesystems(ProcParsers.mounts(text), into: &batch) }
        if let pids = try? FileManager.default.contentsOfDirectory(atPath: path("proc")) {
            let count = pids.reduce(0) { $0 + ($1.first?.isNumber == true ? 1 : 0) }
            batch.gauge("node_processes_pids", "Number of PIDs.", [:], Double(count))
        }
        return batch
    }

    private func filesystems(_ mounts: [ProcParsers.Mount], into batch: inout SampleBatch) {
        for mount in mounts {
            let labels = ["device": mount.device, "mountpoint": mount.mountPoint, "fstype": mount.fsType]
            guard statFilesystems else {
                batch.gauge("node_filesystem_readonly", "Filesystem read-only status.", labels, mount.readOnly ? 1 : 0)
                continue
            }
            var info = statvfs()
            guard statvfs(mount.mountPoint, &info) == 0 else {
                batch.gauge("node_filesystem_device_error", "Whether an error occurred while getting statistics for the given device.", labels, 1)
                continue
            }
            let blockSize = Double(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
            batch.gauge("node_filesystem_size_bytes", "Filesystem size in bytes.", labels, Double(info.f_blocks) * blockSize)
            batch.gauge("node_filesystem_free_bytes", "Filesystem free space in bytes.", labels, Double(info.f_bfree) * blockSize)
            batch.gauge("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", labels, Double(info.f_bavail) * blockSize)
            batch.gauge("node_filesystem_files", "Filesystem total file nodes.", labels, Double(info.f_files))
            batch.gauge("node_filesystem_files_free", "Filesystem total free file nodes.", labels, Double(info.f_ffree))
            batch.gauge("node_filesystem_readonly", "Filesystem read-only status.", labels, mount.readOnly ? 1 : 0)
            batch.gauge("node_filesystem_device_error", "Whether an error occurred while getting statistics for the given device.", labels, 0)
        }
    }
}

/// Network interfaces (`/proc/net/dev`), sockets by protocol (`/proc/net/sockstat`, `sockstat6`)
/// and TCP/UDP counters (`/proc/net/snmp`): cheap files, read every interval.
public struct NetCollector: Collector {
    public let name = "net"
    public let root: String
    let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))

    public init(root: String = "/") {
        self.root = root
    }

    public func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        let devPath = root + "/proc/net/dev"
        guard let dev = readText(devPath) else { throw VigilError(.io, "cannot read \(devPath)") }
        ProcParsers.netdev(dev, into: &batch)
        for file in ["sockstat", "sockstat6"] {
            if let text = readText(root + "/proc/net/" + file) { ProcParsers.sockstat(text, pageSize: pageSize, into: &batch) }
        }
        if let text = readText(root + "/proc/net/snmp") { ProcParsers.snmp(text, into: &batch) }
        return batch
    }
}

/// TCP connections by state (`/proc/net/tcp`, `tcp6`). Reading these makes the kernel walk its whole
/// TCP hash table, which costs far more than every other file together on a large host, so this is
/// a collector of its own with a longer default interval (15 s), as node_exporter keeps its tcpstat
/// collector off by default.
public struct TCPStatCollector: Collector {
    public let name = "tcpstat"
    public let root: String

    public init(root: String = "/") {
        self.root = root
    }

    public func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        let texts = ["proc/net/tcp", "proc/net/tcp6"].compactMap { readText(root + "/" + $0) }
        guard !texts.isEmpty else { throw VigilError(.io, "cannot read \(root)/proc/net/tcp") }
        ProcParsers.tcpStates(texts, into: &batch)
        return batch
    }
}

/// Vigil's own figures: the store's size and the daemon's CPU time and resident memory.
public struct SelfCollector: Collector {
    public let name = "vigil"
    let store: any MetricStoreStatisticsSource
    let userHZ: Double
    let pageSize: Double

    public init(store: some MetricStoreStatisticsSource) {
        self.store = store
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        userHZ = ticks > 0 ? Double(ticks) : 100
        pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    public func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        let statistics = store.storeStatistics()
        batch.gauge("vigil_store_series", "Series held in the metrics store.", [:], Double(statistics.series))
        batch.counter("vigil_store_samples_appended_total", "Samples appended to the metrics store.", [:], Double(statistics.appendedTotal))
        batch.counter("vigil_store_out_of_order_samples_total", "Samples refused because they were older than the series' last sample.", [:], Double(statistics.outOfOrderTotal))
        batch.gauge("vigil_store_samples", "Samples held in the metrics store.", [:], Double(statistics.samples))
        batch.gauge("vigil_store_series_limit", "Most series collectors and plugins may create (store.max_series).", [:], Double(statistics.maxSeries))
        batch.counter("vigil_store_series_refused_total", "New series refused because the store held store.max_series.", [:],
                      Double(statistics.refusedSeriesTotal))
        batch.gauge("vigil_store_memory_bytes", "Bytes the metrics store holds (compressed samples, chunk indexes, series and labels).", [:], Double(statistics.totalBytes))
        if let text = readText("/proc/self/stat"), let process = ProcParsers.processStat(text, userHZ: userHZ, pageSize: pageSize) {
            batch.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", [:], process.cpuSeconds)
            batch.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [:], process.residentBytes)
        }
        return batch
    }
}

/// Lets the self collector read store figures without owning the store type.
public protocol MetricStoreStatisticsSource: Sendable {
    func storeStatistics() -> MetricStore.Statistics
}

import VigilStore

extension MetricStore: MetricStoreStatisticsSource {
    public func storeStatistics() -> Statistics { statistics() }
}

/// Reads a small text file in one go (procfs files report size 0, so no size is trusted). A read
/// that returns less than asked ends it: for procfs another read would only ask the kernel to walk
/// its tables again to say "nothing more". Small files go straight into the string's storage.
func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    let chunkSize = 65536
    var failed = false
    var filled = false
    let first = String(unsafeUninitializedCapacity: chunkSize) { buffer in
        var n: Int
        repeat { n = read(fd, buffer.baseAddress, chunkSize) } while n < 0 && errno == EINTR
        if n < 0 { failed = true; return 0 }
        filled = n == chunkSize
        return n
    }
    if failed { return nil }
    guard filled else { return first }
    // A large file (many mounts or sockets): keep reading.
    var data = Array(first.utf8)
    while true {
        let start = data.count
        data.append(contentsOf: repeatElement(0, count: chunkSize))
        let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + start, chunkSize) }
        if n < 0 {
            data.removeSubrange(start...)
            if errno == EINTR { continue }
            return nil
        }
        data.removeSubrange((start + n)...)
        if n < chunkSize { break }
    }
    return String(decoding: data, as: UTF8.self)
}
