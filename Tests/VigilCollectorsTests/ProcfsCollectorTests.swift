import Foundation
import Testing
import VigilCore
@testable import VigilCollectors

private func fixture(_ kernel: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return url.appendingPathComponent(kernel).path
}

@Suite("procfs and net collectors on recorded /proc trees")
struct ProcfsCollectorTests {
    @Test("Linux 4.15: 10-column cpu lines, 11-field diskstats, no pressure files")
    func linux415() throws {
        let batch = try ProcfsCollector(root: fixture("linux-4.15"), statFilesystems: false).collect()
        #expect(batch.value("node_cpu_seconds_total", ["cpu": "0", "mode": "user"]) == 13932.8)
        #expect(batch.value("node_cpu_seconds_total", ["cpu": "1", "mode": "idle"]) == 134444.36)
        #expect(batch.value("node_cpu_seconds_total", ["cpu": "", "mode": "user"]) == nil) // the aggregate line is not a CPU
        #expect(batch.value("node_cpu_guest_seconds_total", ["cpu": "0", "mode": "nice"]) == 0)
        #expect(batch.value("node_context_switches_total") == 1_990_473)
        #expect(batch.value("node_boot_time_seconds") == 1_062_191_376)
        #expect(batch.value("node_procs_running") == 1)
        #expect(batch.value("node_memory_MemAvailable_bytes") == Double(3_990_640 * 1024))
        #expect(batch.value("node_memory_Active_anon_bytes") == Double(2_459_336 * 1024))
        #expect(batch.value("node_memory_HugePages_Total") == 0)
        #expect(batch.value("node_load1") == 0.2)
        #expect(batch.value("node_load15") == 0.12)
        #expect(batch.value("node_processes_threads") == 80)
        #expect(batch.value("node_processes_pids") == 1)
        // sda and nvme0n1 are disks; sda1, nvme0n1p1 and loop0 are left out.
        #expect(batch.value("node_disk_read_bytes_total", ["device": "sda"]) == Double(310_142 * 512))
        #expect(batch.value("node_disk_io_time_seconds_total", ["device": "nvme0n1"]) == 12.31)
        #expect(batch.value("node_disk_reads_completed_total", ["device": "sda1"]) == nil)
        #expect(batch.value("node_disk_reads_completed_total", ["device": "nvme0n1p1"]) == nil)
        #expect(batch.value("node_disk_reads_completed_total", ["device": "loop0"]) == nil)
        #expect(batch.value("node_disk_discards_completed_total") == nil)
        #expect(batch.value("node_pressure_cpu_waiting_seconds_total") == nil)
        // Real filesystems only; the octal escape in the mount point is decoded.
        let mountPoints = Set(batch.entries.filter { $0.labels.name == "node_filesystem_readonly" }.compactMap { $0.labels["mountpoint"] })
        #expect(mountPoints == ["/", "/run", "/srv/data set"])
        #expect(batch.value("node_filesystem_readonly", ["mountpoint": "/srv/data set"]) == 1)
        #expect(batch.value("node_filesystem_readonly", ["mountpoint": "/"]) == 0)
    }

    @Test("Linux 6.18: 17-field diskstats with discards and flushes, pressure files")
    func linux618() throws {
        let batch = try ProcfsCollector(root: fixture("linux-6.18"), statFilesystems: false).collect()
        #expect(batch.value("node_cpu_seconds_total", ["cpu": "0", "mode": "user"]) == 428.08)
        #expect(batch.value("node_cpu_seconds_total", ["cpu": "1", "mode": "steal"]) == 4.28)
        #expect(batch.value("node_disk_read_bytes_total", ["device": "vda"]) == Double(4_471_786 * 512))
        #expect(batch.value("node_disk_writes_completed_total", ["device": "vda"]) == 33393)
        #expect(batch.value("node_disk_discard_time_seconds_total", ["device": "vda"]) == 2.225)
        #expect(batch.value("node_disk_flush_requests_total", ["device": "vda"]) == 5550)
        #expect(batch.value("node_disk_reads_completed_total", ["device": "zram0"]) == nil)
        #expect(batch.value("node_pressure_io_waiting_seconds_total") == 9.968251)
        #expect(batch.value("node_pressure_io_stalled_seconds_total") == 8.747939)
        #expect(batch.value("node_load5") == 1.5)
        #expect(batch.value("node_processes_threads") == 77)
        #expect(batch.value("node_processes_pids") == 2)
    }

    @Test("net: interface counters, sockets and TCP states from both kernels")
    func net() throws {
        let old = try NetCollector(root: fixture("linux-4.15")).collect()
            .merging(TCPStatCollector(root: fixture("linux-4.15")).collect())
        #expect(old.value("node_network_receive_bytes_total", ["device": "eth0"]) == 987_654_321)
        #expect(old.value("node_network_receive_multicast_total", ["device": "eth0"]) == 12)
        #expect(old.value("node_network_receive_drop_total", ["device": "eth0"]) == 3)
        #expect(old.value("node_network_transmit_packets_total", ["device": "eth0"]) == 654_321)
        #expect(old.value("node_tcp_connection_states", ["state": "listen"]) == 2)
        #expect(old.value("node_tcp_connection_states", ["state": "established"]) == 1)
        #expect(old.value("node_tcp_connection_states", ["state": "time_wait"]) == 1)
        #expect(old.value("node_tcp_connection_states", ["state": "closing"]) == 0)

        #expect(old.value("node_sockstat_TCP_inuse") == 12)
        #expect(old.value("node_netstat_Tcp_CurrEstab") == 3)
        #expect(old.value("node_netstat_Udp_InDatagrams") == 52_871)

        let new = try NetCollector(root: fixture("linux-6.18")).collect()
            .merging(TCPStatCollector(root: fixture("linux-6.18")).collect())
        #expect(new.value("node_sockstat_sockets_used") == 7)
        #expect(new.value("node_sockstat_TCP_tw") == 22)
        #expect(new.value("node_sockstat_TCP_mem_bytes") == 90 * Double(sysconf(Int32(_SC_PAGESIZE))))
        #expect(new.value("node_sockstat_TCP6_inuse") == 0)
        #expect(new.value("node_netstat_Tcp_ActiveOpens") == 186)
        #expect(new.value("node_netstat_Tcp_RetransSegs") == 2)
        #expect(new.value("node_netstat_Tcp_RtoMin") == nil, "fields node_exporter leaves out stay out")
        #expect(new.value("node_network_receive_bytes_total", ["device": "eth0"]) == 51_622_032)
        #expect(new.value("node_network_transmit_bytes_total", ["device": "lo"]) == 82536)
        #expect(new.value("node_tcp_connection_states", ["state": "listen"]) == 1)
        #expect(new.value("node_tcp_connection_states", ["state": "time_wait"]) == 4)
    }

    @Test("the live /proc of this machine")
    func live() throws {
        let batch = try ProcfsCollector().collect()
        let cpus = Set(batch.entries.filter { $0.labels.name == "node_cpu_seconds_total" }.compactMap { $0.labels["cpu"] })
        #expect(cpus.count == ProcessInfo.processInfo.activeProcessorCount)
        #expect((batch.value("node_memory_MemTotal_bytes") ?? 0) > 0)
        #expect((batch.value("node_filesystem_size_bytes", ["mountpoint": "/"]) ?? 0) > 0)
        #expect((batch.value("node_boot_time_seconds") ?? 0) > 1_000_000_000)
        let net = try NetCollector().collect().merging(TCPStatCollector().collect())
        #expect(net.value("node_network_receive_bytes_total", ["device": "lo"]) != nil)
        for entry in batch.entries + net.entries {
            #expect(Labels.isValidMetricName(entry.labels.name ?? ""), "bad name \(entry.labels)")
        }
    }

    @Test("a missing /proc is an error that names the path")
    func missingProc() {
        #expect(throws: VigilError.self) { try ProcfsCollector(root: "/nonexistent-root").collect() }
    }

    @Test("partition names are recognised as node_exporter does", arguments: [
        ("sda", false), ("sda1", true), ("nvme0n1", false), ("nvme0n1p2", true), ("loop3", true), ("zram0", true),
        ("ram1", true), ("vdb", false), ("xvda2", true), ("md0", false), ("dm-0", false),
    ])
    func partitions(device: String, excluded: Bool) {
        #expect(ProcParsers.isPartitionOrIgnored(device) == excluded)
    }
}
