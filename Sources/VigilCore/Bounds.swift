/// The ranges every number from outside (a request, a script, a plugin, a file, a stored row) must fall in,
/// and conversions that cannot trap. Swift traps on a Double that does not fit an integer and on integer
/// overflow; a daemon that holds other people's history must do neither because of what someone sent.
public enum Bounds {
    /// The longest duration anything accepts: 100 years (durations, windows, limits, silences, steps).
    public static let maxDuration: Int64 = 100 * 31_536_000_000
    /// The latest time accepted: 9999-12-31T23:59:59Z. With `maxDuration` added it is still far from Int64's end,
    /// so `time ± duration` never overflows once both are checked.
    public static let maxTimestamp: Timestamp = 253_402_300_799_000
    /// Described in errors.
    public static let durationRange = "0s to 100y"
    public static let timestampRange = "0 to 253402300799 (the end of year 9999)"

    /// Unix seconds (fractions allowed) as milliseconds, or nil outside `0…maxTimestamp` or not a number.
    public static func unixSeconds(_ text: some StringProtocol) -> Timestamp? {
        guard let seconds = Double(String(text)), seconds.isFinite, seconds >= 0,
              seconds * 1000 <= Double(maxTimestamp) else { return nil }
        return Timestamp((seconds * 1000).rounded())
    }

    /// The most memory one GPU or process is taken to have: 1 PiB. GPU memory figures come from the store, where a
    /// plugin may have written anything; the ledger adds and subtracts them.
    public static let maxMemoryBytes: Int64 = 1 << 50

    /// A byte figure read from the store, clamped to `0…maxMemoryBytes` (NaN is 0).
    public static func memoryBytes(_ value: Double) -> Int64 {
        min(max(Int64(saturating: value), 0), maxMemoryBytes)
    }

    /// Seconds (a script's number) as milliseconds, or nil when not finite, negative or over `maxDuration`.
    public static func milliseconds(seconds: Double) -> Int64? {
        guard seconds.isFinite, seconds >= 0, seconds * 1000 <= Double(maxDuration) else { return nil }
        return Int64((seconds * 1000).rounded())
    }
}

extension Int64 {
    /// The nearest Int64: NaN is 0, beyond the range is the range's end. For figures read from the store or a
    /// script, where a plugin may have written 1e300 or NaN.
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9.223_372_036_854_775e18 {
            self = .max
        } else if value <= -9.223_372_036_854_775e18 {
            self = .min
        } else {
            self.init(value)
        }
    }
}

extension Int {
    /// The nearest Int: NaN is 0, beyond the range is the range's end.
    public init(saturating value: Double) {
        self.init(Int64(saturating: value))
    }

    /// A whole number of the script's or request's within `range`, or nil (NaN, fractions and values beyond it).
    public static func exactly(_ value: Double, in range: ClosedRange<Int>) -> Int? {
        guard value.isFinite, value == value.rounded(), value >= Double(range.lowerBound), value <= Double(range.upperBound) else {
            return nil
        }
        return Int(value)
    }
}
