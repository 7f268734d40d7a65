import VigilCore

/// Parsers of Linux /proc and /sys text, one per file, writing node_exporter's metric names and
/// labels. Pure functions of the file's text, so recorded files from any kernel test them.
public enum ProcParsers {
    /// `/proc/stat`: per-CPU mode seconds (ticks ÷ USER_HZ), context switches, forks, interrupts,
    /// boot time, running and blocked processes. Older kernels have fewer CPU columns; missing ones
    /// are simply absent.
    public static func stat(_ text: String, userHZ: Double = 100, into batch: inout SampleBatch) {
        let modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
        for line in text.asciiSplit("\n") {
            let fields = line.asciiSplit(" ")
            guard let key = fields.first else { continue }
            if key.hasPrefix("cpu") && key != "cpu" {
                let cpu = String(key.dropFirst(3))
                let values = fields.dropFirst().compactMap { Double($0) }
                for (i, mode) in modes.enumerated() where i < values.count {
                    batch.counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.",
                                  ["cpu": cpu, "mode": mode], values[i] / userHZ)
                }
                if values.count > 8 {
                    batch.counter("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.",
                                  ["cpu": cpu, "mode": "user"], values[8] / userHZ)
                }
                if values.count > 9 {
                    batch.counter("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.",
                                  ["cpu": cpu, "mode": "nice"], values[9] / userHZ)
                }
                continue
            }
            guard fields.count >= 2, let value = Double(fields[1]) else { continue }
            switch key {
            case "ctxt": batch.counter("node_context_switches_total", "Total number of context switches.", [:], value)
            case "processes": batch.counter("node_forks_total", "Total number of forks.", [:], value)
            case "intr": batch.counter("node_intr_total", "Total number of interrupts serviced.", [:], value)
            case "btime": batch.gauge("node_boot_time_seconds", "Node boot time, in unixtime.", [:], value)
            case "procs_running": batch.gauge("node_procs_running", "Number of processes in runnable state.", [:], value)
            case "procs_blocked": batch.gauge("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", [:], value)
            default: break
            }
        }
    }

    /// `/proc/meminfo`: `node_memory_<Field>_bytes` (kB × 1024), or `node_memory_<Field>` for counts.
    public static func meminfo(_ text: String, into batch: inout SampleBatch) {
        for line in text.asciiSplit("\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let rawName = line[..<colon]
            let rest = line[line.index(after: colon)...].asciiSplit(" ")
            guard let number = rest.first.flatMap({ Double($0) }) else { continue }
            // `Active(anon)` → `Active_anon`, as node_exporter names it.
            var field = String(rawName)
            if field.utf8.contains(UInt8(ascii: "(")) {
                field = String(field.compactMap { $0 == "(" ? "_" : ($0 == ")" ? nil : $0) })
            }
            guard Labels.isValidMetricName("node_memory_" + field) else { continue }
            if rest.count > 1 && rest[1] == "kB" {
                batch.gauge("node_memory_\(field)_bytes", "Memory information field \(field)_bytes.", [:], number * 1024)
            } else {
                batch.gauge("node_memory_\(field)", "Memory information field \(field).", [:], number)
            }
        }
    }

    /// `/proc/loadavg`: load averages and the number of threads (scheduling entities) that exist.
    public static func loadavg(_ text: String, into batch: inout SampleBatch) {
        let fields = text.asciiSplit(" ").flatMap { $0.asciiSplit("\n") }
        guard fields.count >= 4 else { return }
        if let v = Double(fields[0]) { batch.gauge("node_load1", "1m load average.", [:], v) }
        if let v = Double(fields[1]) { batch.gauge("node_load5", "5m load average.", [:], v) }
        if let v = Double(fields[2]) { batch.gauge("node_load15", "15m load average.", [:], v) }
        let entities = fields[3].asciiSplit("/")
        if entities.count == 2, let total = Double(entities[1]) {
            batch.gauge("node_processes_threads", "Allocated threads in system.", [:], total)
        }
    }

    /// One `/proc/pressure/<resource>` file (kernel ≥ 4.20): `some` → waiting, `full` → stalled (µs → s).
    public static func pressure(_ text: String, resource: String, into batch: inout SampleBatch) {
        for line in text.asciiSplit("\n") {
            let fields = line.asciiSplit(" ")
            guard let kind = fields.first, let total = fields.first(where: { $0.hasPrefix("total=") }),
                  let micros = Double(total.dropFirst(6)) else { continue }
            let seconds = micros / 1_000_000
            switch (resource, kind) {
            case ("cpu", "some"):
                batch.counter("node_pressure_cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time.", [:], seconds)
            case ("io", "some"):
                batch.counter("node_pressure_io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion.", [:], seconds)
            case ("io", "full"):
                batch.counter("node_pressure_io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion.", [:], seconds)
            case ("memory", "some"):
                batch.counter("node_pressure_memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory.", [:], seconds)
            case ("memory", "full"):
                batch.counter("node_pressure_memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion.", [:], seconds)
            case ("irq", "full"):
                batch.counter("node_pressure_irq_stalled_seconds_total", "Total time in seconds no process could make progress due to IRQ congestion.", [:], seconds)
            default: break
            }
        }
    }

    /// `/proc/diskstats`: 11 fields per device before 4.18, 15 from 4.18 (discards), 17 from 5.5 (flushes).
    /// Partitions are left out as node_exporter does.
    public static func diskstats(_ text: String, into batch: inout SampleBatch) {
        for line in text.asciiSplit("\n") {
            let fields = line.asciiSplit(" ")
            guard fields.count >= 14 else { continue }
            let device = String(fields[2])
            if isPartitionOrIgnored(device) { continue }
            let v = fields[3...].map { Double($0) ?? 0 }
            let d = ["device": device]
            batch.counter("node_disk_reads_completed_total", "The total number of reads completed successfully.", d, v[0])
            batch.counter("node_disk_reads_merged_total", "The total number of reads merged.", d, v[1])
            batch.counter("node_disk_read_bytes_total", "The total number of bytes read successfully.", d, v[2] * 512)
            batch.counter("node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", d, v[3] / 1000)
            batch.counter("node_disk_writes_completed_total", "The total number of writes completed successfully.", d, v[4])
            batch.counter("node_disk_writes_merged_total", "The number of writes merged.", d, v[5])
            batch.counter("node_disk_written_bytes_total", "The total number of bytes written successfully.", d, v[6] * 512)
            batch.counter("node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", d, v[7] / 1000)
            batch.gauge("node_disk_io_now", "The number of I/Os currently in progress.", d, v[8])
            batch.counter("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", d, v[9] / 1000)
            batch.counter("node_disk_io_time_weighted_seconds_total", "The weighted number of seconds spent doing I/Os.", d, v[10] / 1000)
            if v.count >= 15 {
                batch.counter("node_disk_discards_completed_total", "The total number of discards completed successfully.", d, v[11])
                batch.counter("node_disk_discards_merged_total", "The total number of discards merged.", d, v[12])
                batch.counter("node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.", d, v[13])
                batch.counter("node_disk_discard_time_seconds_total", "This is the total number of seconds spent by all discards.", d, v[14] / 1000)
            }
            if v.count >= 17 {
                batch.counter("node_disk_flush_requests_total", "The total number of flush requests completed successfully.", d, v[15])
                batch.counter("node_disk_flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", d, v[16] / 1000)
            }
        }
    }

    /// node_exporter's default exclusion: `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`.
    static func isPartitionOrIgnored(_ device: String) -> Bool {
        var body = Substring(device)
        let digits = body.reversed().prefix { $0.isASCII && $0.isNumber }.count
        guard digits > 0 else { return false }
        body = body.dropLast(digits)
        if body == "ram" || body == "zram" || body == "loop" || body == "fd" { return true }
        if body.count == 3, let last = body.last, last.isASCII, last.isLowercase,
           ["hd", "sd", "vd"].contains(String(body.prefix(2))) { return true }
        if body.count == 4, body.hasPrefix("xvd"), let last = body.last, last.isASCII, last.isLowercase { return true }
        // nvme<digits>n<digits>p
        if body.hasPrefix("nvme"), body.hasSuffix("p") {
            let inner = body.dropFirst(4).dropLast()
            let parts = inner.split(separator: "n", omittingEmptySubsequences: false)
            return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
        }
        return false
    }

    /// A mount from `/proc/mounts` (octal escapes such as `\040` decoded).
    public struct Mount: Sendable, Hashable {
        public var device: String
        public var mountPoint: String
        public var fsType: String
        public var readOnly: Bool
    }

    static let ignoredFilesystemTypes: Set<String> = [
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "fusectl",
        "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay", "proc", "procfs", "pstore", "rpc_pipefs", "securityfs",
        "selinuxfs", "squashfs", "sysfs", "tracefs",
    ]

    /// Real filesystems of `/proc/mounts`: pseudo filesystems and `/dev`, `/proc`, `/sys`,
    /// `/run/credentials/…` and container storage left out, as node_exporter does.
    public static func mounts(_ text: String) -> [Mount] {
        var byPoint: [String: Mount] = [:]
        var order: [String] = []
        for line in text.asciiSplit("\n") {
            let fields = line.asciiSplit(" ")
            guard fields.count >= 4 else { continue }
            let mount = Mount(device: unescapeOctal(fields[0]), mountPoint: unescapeOctal(fields[1]), fsType: String(fields[2]),
                              readOnly: fields[3].asciiSplit(",").contains("ro"))
            if ignoredFilesystemTypes.contains(mount.fsType) || isIgnoredMountPoint(mount.mountPoint) { continue }
            if byPoint[mount.mountPoint] == nil { order.append(mount.mountPoint) }
            byPoint[mount.mountPoint] = mount
        }
        return order.map { byPoint[$0]! }
    }

    static func isIgnoredMountPoint(_ point: String) -> Bool {
        for prefix in ["/dev", "/proc", "/sys"] where point == prefix || point.hasPrefix(prefix + "/") { return true }
        for prefix in ["/run/credentials/", "/var/lib/docker/", "/var/lib/containers/storage/"] where point.hasPrefix(prefix) {
            return true
        }
        return false
    }

    static func unescapeOctal(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        let utf8 = Array(field.utf8)
        var bytes: [UInt8] = []
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
               let code = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(code)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `/proc/net/dev`: per-interface counters.
    public static func netdev(_ text: String, into batch: inout SampleBatch) {
        let receive = ["bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast"]
        let transmit = ["bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed"]
        for line in text.asciiSplit("\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let device = String(line[..<colon].asciiSplit(" ").first ?? "")
            if device.contains("|") || device.isEmpty { continue }
            let values = line[line.index(after: colon)...].asciiSplit(" ").compactMap { Double($0) }
            guard values.count >= 16 else { continue }
            for (i, field) in receive.enumerated() {
                batch.counter("node_network_receive_\(field)_total", "Network device statistic receive_\(field).", ["device": device], values[i])
            }
            for (i, field) in transmit.enumerated() {
                batch.counter("node_network_transmit_\(field)_total", "Network device statistic transmit_\(field).", ["device": device], values[8 + i])
            }
        }
    }

    /// `/proc/net/sockstat` and `sockstat6`: sockets in use by protocol, as node_exporter's sockstat
    /// collector names them (`node_sockstat_TCP_inuse`, `node_sockstat_TCP_mem_bytes` …).
    public static func sockstat(_ text: String, pageSize: Double, into batch: inout SampleBatch) {
        for line in text.asciiSplit("\n") {
            let fields = line.asciiSplit(" ")
            guard let first = fields.first, first.hasSuffix(":") else { continue }
            let proto = first.dropLast()
            var index = 1
            while index + 1 < fields.count {
                let key = fields[index], number = Double(fields[index + 1])
                index += 2
                guard let number else { continue }
                let name = "node_sockstat_\(proto)_\(key)"
                guard Labels.isValidMetricName(name) else { continue }
                batch.gauge(name, "Number of \(proto) sockets in state \(key).", [:], number)
                if key == "mem" {
                    batch.gauge(name + "_bytes", "Number of \(proto) sockets in state mem_bytes.", [:], number * pageSize)
                }
            }
        }
    }

    /// The fields of `/proc/net/snmp` that node_exporter's netstat collector keeps by default.
    static let netstatFields: Set<String> = [
        "Tcp_ActiveOpens", "Tcp_PassiveOpens", "Tcp_CurrEstab", "Tcp_InSegs", "Tcp_OutSegs", "Tcp_OutRsts",
        "Tcp_RetransSegs", "Tcp_InErrs", "Udp_InDatagrams", "Udp_OutDatagrams", "Udp_NoPorts", "Udp_InErrors",
        "Udp_RcvbufErrors", "Udp_SndbufErrors", "Ip_Forwarding", "Icmp_InMsgs", "Icmp_OutMsgs", "Icmp_InErrors",
    ]

    /// `/proc/net/snmp`: header and value lines in pairs, as `node_netstat_<Proto>_<Field>`.
    public static func snmp(_ text: String, into batch: inout SampleBatch) {
        let lines = text.asciiSplit("\n")
        var index = 0
        while index + 1 < lines.count {
            let names = lines[index].asciiSplit(" "), values = lines[index + 1].asciiSplit(" ")
            index += 2
            guard let proto = names.first, proto == values.first, names.count == values.count else { continue }
            let prefix = proto.dropLast()
            for (name, value) in zip(names.dropFirst(), values.dropFirst()) {
                let field = "\(prefix)_\(name)"
                guard netstatFields.contains(field), let number = Double(value) else { continue }
                batch.add("node_netstat_\(field)", .untyped, help: "Statistic \(prefix)\(name).", number)
            }
        }
    }

    static let tcpStates = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close",
                            "close_wait", "last_ack", "listen", "closing"]

    /// Counts connections by state in `/proc/net/tcp` and `/proc/net/tcp6` texts.
    public static func tcpStates(_ texts: [String], into batch: inout SampleBatch) {
        var counts = [Int](repeating: 0, count: tcpStates.count)
        for text in texts {
            for line in text.asciiSplit("\n").dropFirst() {
                let fields = line.asciiSplit(" ", maxFields: 4)
                guard fields.count >= 4, let code = Int(fields[3], radix: 16), code >= 1, code <= tcpStates.count else { continue }
                counts[code - 1] += 1
            }
        }
        for (i, state) in tcpStates.enumerated() {
            batch.gauge("node_tcp_connection_states", "Number of connection states.", ["state": state], Double(counts[i]))
        }
    }

    /// `/proc/self/stat`-style text: CPU seconds, resident bytes and start time of one process.
    public static func processStat(_ text: String, userHZ: Double, pageSize: Double) -> (cpuSeconds: Double, residentBytes: Double)? {
        // The command (field 2) may contain spaces: fields restart after the last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].asciiSplit(" ")
        // fields[0] is state (field 3); utime is field 14, stime 15, rss 24.
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]), let rss = Double(fields[21]) else {
            return nil
        }
        return ((utime + stime) / userHZ, rss * pageSize)
    }
}

import Foundation

extension StringProtocol where SubSequence == Substring {
    /// Splits on one ASCII character by bytes, without `Character` segmentation (procfs text is
    /// ASCII; a multi-byte name is still split only at the ASCII separator). Empty pieces are left out.
    /// With `maxFields`, stops after that many pieces.
    func asciiSplit(_ separator: Unicode.Scalar, maxFields: Int = .max) -> [Substring] {
        let byte = UInt8(ascii: separator)
        var pieces: [Substring] = []
        var start = utf8.startIndex
        var index = start
        while index != utf8.endIndex && pieces.count < maxFields {
            if utf8[index] == byte {
                if index != start { pieces.append(self[start..<index]) }
                start = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        if start != utf8.endIndex && pieces.count < maxFields { pieces.append(self[start..<utf8.endIndex]) }
        return pieces
    }
}
