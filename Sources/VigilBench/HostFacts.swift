import CVigilBench
import Foundation

/// What a benchmark's figures depend on, stored beside them and shown in comparisons.
public struct HostFacts: Codable, Sendable, Equatable {
    public var hostname: String
    public var cpuModel: String
    /// Logical CPUs online.
    public var cpus: Int
    /// The highest clock the CPU reports (cpufreq's maximum, else /proc/cpuinfo's MHz).
    public var maxMegahertz: Double
    /// Doubles per vector instruction: 2 (SSE2), 4 (AVX2), 8 (AVX-512).
    public var vectorDoubles: Int
    public var fma: Bool
    public var memoryBytes: UInt64
    public var kernel: String

    public init(hostname: String, cpuModel: String, cpus: Int, maxMegahertz: Double, vectorDoubles: Int, fma: Bool,
                memoryBytes: UInt64, kernel: String) {
        self.hostname = hostname
        self.cpuModel = cpuModel
        self.cpus = cpus
        self.maxMegahertz = maxMegahertz
        self.vectorDoubles = vectorDoubles
        self.fma = fma
        self.memoryBytes = memoryBytes
        self.kernel = kernel
    }

    /// Double-precision operations one core can retire per cycle: the vector width, times 2 for a fused
    /// multiply-add, times 2 FMA units (Haswell and later, Zen 2 and later); without FMA, one add and one
    /// multiply port.
    public var flopsPerCycle: Double {
        Double(vectorDoubles) * 2 * (fma ? 2 : 1)
    }

    /// Theoretical double-precision peak of one core, in GFLOP/s.
    public var peakGigaflopsPerCore: Double { maxMegahertz / 1000 * flopsPerCycle }

    /// Reads /proc, /sys and the CPU's feature flags.
    public static func detect() -> HostFacts {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var model = "unknown"
        var megahertz = 0.0
        for line in cpuinfo.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name" && model == "unknown" { model = parts[1] }
            if parts[0] == "cpu MHz", let value = Double(parts[1]) { megahertz = max(megahertz, value) }
        }
        if let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding: .utf8),
           let kilohertz = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), kilohertz > 0 {
            megahertz = kilohertz / 1000
        }
        var memory: UInt64 = 0
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kib = UInt64(line.split(separator: " ").dropFirst().first ?? "") {
            memory = kib * 1024
        }
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let host = withUnsafeBytes(of: &names.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return HostFacts(hostname: host, cpuModel: model, cpus: ProcessInfo.processInfo.activeProcessorCount,
                         maxMegahertz: megahertz, vectorDoubles: Int(vb_vector_doubles()), fma: vb_has_fma() != 0,
                         memoryBytes: memory, kernel: release)
    }
}
