import Foundation
import VigilCore

/// What running costs: GPU-hours by model, energy at a price per kWh, CPU-only tasks by the core-hour,
/// with a factor inside off-peak windows.
public struct CostModel: Sendable, Equatable {
    public var currency: String
    /// Rate per GPU-hour for a model whose name contains the key (longest key wins); `default` otherwise.
    public var gpuHour: [String: Double]
    public var defaultGPUHour: Double
    public var kwh: Double
    public var cpuCoreHour: Double
    public var offPeak: [OffPeakWindow]
    public var offPeakFactor: Double

    public init(_ configuration: CostsConfiguration) {
        currency = configuration.currency
        gpuHour = configuration.gpuHour
        defaultGPUHour = configuration.defaultGPUHour
        kwh = configuration.kwh
        cpuCoreHour = configuration.cpuCoreHour
        offPeak = configuration.offPeak
        offPeakFactor = configuration.offPeakFactor
    }

    public func gpuHourRate(model: String) -> Double {
        let match = gpuHour.keys.filter { model.localizedCaseInsensitiveContains($0) }.max { $0.count < $1.count }
        return match.flatMap { gpuHour[$0] } ?? defaultGPUHour
    }

    /// 1, or the off-peak factor when `time` falls in a window (local time).
    public func factor(at time: Timestamp) -> Double {
        isOffPeak(time) ? offPeakFactor : 1
    }

    public func isOffPeak(_ time: Timestamp) -> Bool {
        let minute = Self.minuteOfDay(time)
        return offPeak.contains { $0.contains(minuteOfDay: minute) }
    }

    /// The next time (at or after `time`) inside an off-peak window, or nil when there are none.
    public func nextOffPeak(after time: Timestamp) -> Timestamp? {
        guard !offPeak.isEmpty else { return nil }
        if isOffPeak(time) { return time }
        let minute = Self.minuteOfDay(time)
        let waits = offPeak.map { window in (window.startMinute - minute + 1440) % 1440 }
        let wait = waits.min() ?? 0
        return (time / 60_000 + Int64(wait)) * 60_000
    }

    static func minuteOfDay(_ time: Timestamp) -> Int {
        var seconds = time_t(time / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return Int(parts.tm_hour) * 60 + Int(parts.tm_min)
    }

    /// Cost per hour of a task now: its GPUs' shares at their model rates, plus energy, times the factor.
    /// `shares` are (model, fraction of the GPU, watts drawn by the whole GPU).
    public func ratePerHour(shares: [(model: String, fraction: Double, watts: Double)], at time: Timestamp) -> Double {
        if shares.isEmpty { return cpuCoreHour * factor(at: time) }
        let gpus = shares.reduce(0) { $0 + gpuHourRate(model: $1.model) * $1.fraction }
        let energy = shares.reduce(0) { $0 + $1.watts * $1.fraction / 1000 * kwh }
        return (gpus + energy) * factor(at: time)
    }
}
