import VigilCore

/// Limits of one sandboxed state and of each call into it. Crossing one ends that call with a
/// `LuaError` naming the limit; the next call works.
public struct LuaLimits: Sendable, Equatable {
    /// Bytes the state may hold. Default 8 MiB. 0 = no cap.
    public var memoryBytes: Int
    /// VM instructions per call (checked every 1,000). Default 1,000,000. 0 = no budget.
    public var instructions: Int
    /// Wall-clock milliseconds per call. Default 250. 0 = no deadline.
    public var deadlineMilliseconds: Int64
    /// Bytes `print` may write per call. Default 64 KiB.
    public var outputBytes: Int
    /// Nested Lua calls per call. Default 10,000. 0 = Lua's own limit only.
    public var callDepth: Int

    public init(memoryBytes: Int = 8 << 20, instructions: Int = 1_000_000, deadlineMilliseconds: Int64 = 250,
                outputBytes: Int = 64 << 10, callDepth: Int = 10_000) {
        self.memoryBytes = memoryBytes
        self.instructions = instructions
        self.deadlineMilliseconds = deadlineMilliseconds
        self.outputBytes = outputBytes
        self.callDepth = callDepth
    }

    public init(_ configuration: LuaLimitsConfiguration) {
        self.init(memoryBytes: configuration.memoryBytes, instructions: configuration.instructions,
                  deadlineMilliseconds: configuration.deadlineMilliseconds, outputBytes: configuration.outputBytes,
                  callDepth: configuration.callDepth)
    }

    public static let `default` = LuaLimits()
}
