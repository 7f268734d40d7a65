import VigilCore

/// The encoding of one chunk (up to `ChunkCodec.samplesPerChunk` samples).
///
/// Timestamps: the first is kept in the chunk's metadata; then delta-of-delta in buckets
/// `0` | `10`+7 | `110`+14 | `1110`+20 | `1111`+64 bits (Gorilla's idea with millisecond buckets).
///
/// Values: most metrics are decimals with few digits (°C, %, MHz, bytes, milliwatts as watts). When
/// a value is exactly `m / 10^k` for an integer `m` and `k ≤ 9`, the chunk is in *decimal mode*.
/// Its first value is `0`, one bit for the order, k (4 bits) and zig-zag `m` with a 6-bit length.
/// Each later value is a residual: `m` minus the previous `m` (first order, for gauges), or minus
/// the previous `m` and the previous change (second order, for counters that grow steadily). Which
/// order a chunk uses is chosen from what both would have cost in the series' previous chunk.
/// Residuals use an adaptive width, like Gorilla's reuse of an XOR window: `0` is zero, `10` + W bits
/// reuses the current width, `110` + 6 bits + W' bits sets a new width; `111` escapes, followed by
/// `0` + 4 bits (rescale to a larger k) or `1` + 64 raw bits (switch to XOR mode for the rest of the
/// chunk). A chunk whose first value no decimal fits starts with `1` + 64 raw bits in XOR mode:
/// Gorilla's XOR of successive IEEE-754 values with leading/trailing zero windows.
enum ChunkCodec {
    static let samplesPerChunk = 240
    static let maxScale = 9
    static let powersOfTen: [Double] = (0...maxScale).map { k in (0..<k).reduce(1.0) { r, _ in r * 10 } }

    /// `m` such that `Double(m) / 10^k` is bit-for-bit `value`, or nil.
    @inline(__always)
    static func mantissa(_ value: Double, scale k: Int) -> Int64? {
        mantissa(value, power: powersOfTen[k])
    }

    /// `mantissa` with 10^k already looked up.
    @inline(__always)
    static func mantissa(_ value: Double, power: Double) -> Int64? {
        let scaled = value * power
        guard abs(scaled) < 4.0e15 else { return nil }
        let rounded = scaled.rounded()
        guard (rounded / power).bitPattern == value.bitPattern else { return nil }
        return Int64(rounded)
    }

    static func smallestScale(for value: Double, from start: Int = 0) -> (Int, Int64)? {
        if value == 0 && value.sign == .minus { return nil }
        var k = start
        while k <= maxScale {
            if let m = mantissa(value, scale: k) { return (k, m) }
            k += 1
        }
        return nil
    }

    @inline(__always)
    static func signExtend(_ raw: UInt64, bits n: Int) -> Int64 {
        let value = Int64(bitPattern: raw)
        return value > (Int64(1) << (n - 1)) ? value - (Int64(1) << n) : value
    }

    @inline(__always)
    static func fits(_ value: Int64, bits n: Int) -> Bool {
        value >= -((Int64(1) << (n - 1)) - 1) && value <= (Int64(1) << (n - 1))
    }

    @inline(__always)
    static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    @inline(__always)
    static func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

    @inline(__always)
    static func bitLength(_ value: UInt64) -> Int { 64 - value.leadingZeroBitCount }
}

extension BitWriter {
    /// A timestamp delta-of-delta in its bucket.
    @inline(__always)
    mutating func writeTimestampDelta(_ dod: Int64, to arena: Arena) {
        let raw = UInt64(bitPattern: dod)
        if dod == 0 {
            write(0, 1, to: arena)
        } else if ChunkCodec.fits(dod, bits: 7) {
            write((0b10 << 7) | (raw & 0x7f), 9, to: arena)
        } else if ChunkCodec.fits(dod, bits: 14) {
            write((0b110 << 14) | (raw & 0x3fff), 17, to: arena)
        } else if ChunkCodec.fits(dod, bits: 20) {
            write((0b1110 << 20) | (raw & 0xf_ffff), 24, to: arena)
        } else {
            write(0b1111, 4, to: arena); write(raw, 64, to: arena)
        }
    }
}

extension BitReader {
    /// A timestamp delta-of-delta whose first bit (1: not zero) has been read.
    mutating func readTimestampDeltaAfterFirstBit() -> Int64 {
        if !readBit() { return ChunkCodec.signExtend(read(7), bits: 7) }
        if !readBit() { return ChunkCodec.signExtend(read(14), bits: 14) }
        if !readBit() { return ChunkCodec.signExtend(read(20), bits: 20) }
        return Int64(bitPattern: read(64))
    }
}

/// How values are encoded. `decimal` (the default) falls back to XOR by itself; `xor` is plain
/// Gorilla, kept to measure against.
public enum ValueEncoding: Sendable, Hashable {
    case decimal
    case xor
}

/// The encoder of the open (head) chunk of a series.
struct ChunkEncoder {
    var count = 0
    var minTime: Timestamp = 0
    var startOffset = 0
    var writer = BitWriter()

    private var previousTime: Timestamp = 0
    private var previousDelta: Int64 = 0
    private var decimalMode = true
    private var scale = 0
    private var power = 1.0
    private var previousMantissa: Int64 = 0
    private var previousMantissaDelta: Int64 = 0
    private var residualWidth = 0
    private var previousBits: UInt64 = 0
    private var leading = 0xff
    private var trailing = 0

    private let allowDecimal: Bool
    private let secondOrder: Bool
    /// Bits the residuals of each order would take, to choose the next chunk's order.
    private var firstOrderCost = 0
    private var secondOrderCost = 0

    init(startOffset: Int, encoding: ValueEncoding = .decimal, secondOrder: Bool = false) {
        self.startOffset = startOffset
        self.allowDecimal = encoding == .decimal
        self.secondOrder = secondOrder
    }

    /// Whether second-order residuals would have been clearly cheaper in this chunk.
    var prefersSecondOrder: Bool { secondOrderCost + 16 < firstOrderCost }

    mutating func append(_ t: Timestamp, _ v: Double, to arena: Arena) {
        defer { count += 1 }
        if count == 0 {
            minTime = t
            previousTime = t
            writeFirstValue(v, arena)
            return
        }
        let delta = t - previousTime
        writer.writeTimestampDelta(delta - previousDelta, to: arena)
        previousDelta = delta
        previousTime = t
        if decimalMode {
            writeDecimal(v, arena)
        } else {
            writeXOR(v, arena)
        }
    }

    private mutating func writeFirstValue(_ v: Double, _ arena: Arena) {
        if allowDecimal, let (k, m) = ChunkCodec.smallestScale(for: v) {
            decimalMode = true
            scale = k
            power = ChunkCodec.powersOfTen[k]
            previousMantissa = m
            writer.write(0, 1, to: arena)
            writer.write(secondOrder ? 1 : 0, 1, to: arena)
            writer.write(UInt64(k), 4, to: arena)
            let zigzag = ChunkCodec.zigzag(m)
            let length = ChunkCodec.bitLength(zigzag)
            writer.write(UInt64(length), 6, to: arena)
            if length > 0 { writer.write(zigzag, length, to: arena) }
        } else {
            decimalMode = false
            previousBits = v.bitPattern
            leading = 0xff
            writer.write(1, 1, to: arena)
            writer.write(v.bitPattern, 64, to: arena)
        }
    }

    private mutating func writeDecimal(_ v: Double, _ arena: Arena) {
        if let m = ChunkCodec.mantissa(v, power: power) {
            writeMantissa(m, arena)
            return
        }
        // A finer scale, if the value and the previous one both still fit.
        if scale < ChunkCodec.maxScale, let (k, m) = ChunkCodec.smallestScale(for: v, from: scale + 1) {
            let factor = ChunkCodec.powersOfTen[k - scale]
            let rescaled = Double(previousMantissa) * factor
            let rescaledDelta = Double(previousMantissaDelta) * factor
            if abs(rescaled) < 4.0e15 && abs(rescaledDelta) < 4.0e15 {
                writer.write(0b111, 3, to: arena)
                writer.write(0, 1, to: arena)
                writer.write(UInt64(k), 4, to: arena)
                scale = k
                power = ChunkCodec.powersOfTen[k]
                previousMantissa = Int64(rescaled)
                previousMantissaDelta = Int64(rescaledDelta)
                writeMantissa(m, arena)
                return
            }
        }
        writer.write(0b111, 3, to: arena)
        writer.write(1, 1, to: arena)
        writer.write(v.bitPattern, 64, to: arena)
        decimalMode = false
        previousBits = v.bitPattern
        leading = 0xff
    }

    /// Writes the residual of `m` in the chunk's order with the adaptive width.
    private mutating func writeMantissa(_ m: Int64, _ arena: Arena) {
        let delta = m &- previousMantissa
        let secondDelta = delta &- previousMantissaDelta
        let firstZigzag = ChunkCodec.zigzag(delta), secondZigzag = ChunkCodec.zigzag(secondDelta)
        firstOrderCost += ChunkCodec.bitLength(firstZigzag)
        secondOrderCost += ChunkCodec.bitLength(secondZigzag)
        previousMantissa = m
        previousMantissaDelta = delta
        let zigzag = secondOrder ? secondZigzag : firstZigzag
        if zigzag == 0 {
            writer.write(0, 1, to: arena)
            return
        }
        let needed = ChunkCodec.bitLength(zigzag)
        // Reuse the width while it holds the value and wastes fewer bits than a new width costs.
        if needed <= residualWidth && residualWidth <= needed + 7 {
            if residualWidth <= 54 {
                writer.write((0b10 << UInt64(residualWidth)) | zigzag, residualWidth + 2, to: arena)
            } else {
                writer.write(0b10, 2, to: arena)
                writer.write(zigzag, residualWidth, to: arena)
            }
        } else {
            residualWidth = needed
            writer.write(0b110, 3, to: arena)
            writer.write(UInt64(needed), 6, to: arena)
            writer.write(zigzag, needed, to: arena)
        }
    }

    private mutating func writeXOR(_ v: Double, _ arena: Arena) {
        let bits = v.bitPattern
        let xor = bits ^ previousBits
        previousBits = bits
        if xor == 0 {
            writer.write(0, 1, to: arena)
            return
        }
        var newLeading = xor.leadingZeroBitCount
        let newTrailing = xor.trailingZeroBitCount
        if newLeading > 31 { newLeading = 31 }
        if leading != 0xff && newLeading >= leading && newTrailing >= trailing {
            writer.write(0b10, 2, to: arena)
            let significant = 64 - leading - trailing
            writer.write(xor >> UInt64(trailing), significant, to: arena)
        } else {
            leading = newLeading
            trailing = newTrailing
            let significant = 64 - newLeading - newTrailing
            writer.write(0b11, 2, to: arena)
            writer.write(UInt64(newLeading), 5, to: arena)
            writer.write(UInt64(significant & 63), 6, to: arena)
            writer.write(xor >> UInt64(newTrailing), significant, to: arena)
        }
    }
}

/// Decodes chunks written by `ChunkEncoder`. One function with its state in locals, so the loop
/// keeps it in registers.
enum ChunkDecoder {
    /// Appends the chunk's samples in `(start, end]` to `out` (staleness markers left out with
    /// `skipStale`). Returns false once a sample lies past `end`: nothing later can be in the window.
    static func decode(_ base: UnsafePointer<UInt8>, byteCount: Int, tail: UInt8 = 0, sampleCount: Int, minTime: Timestamp,
                       after start: Timestamp, through end: Timestamp, into out: inout [Sample], skipStale: Bool) -> Bool {
        guard sampleCount > 0 else { return true }
        var reader = BitReader(base, count: byteCount, tail: tail)
        var time = minTime
        var delta: Int64 = 0
        var value: Double
        var decimalMode = true
        var secondOrder = false
        var scale = 0
        var divisor = 1.0
        var mantissa: Int64 = 0
        var mantissaDelta: Int64 = 0
        var width = 0
        var bits: UInt64 = 0
        var leading = 0
        var trailing = 0

        if reader.readBit() {
            decimalMode = false
            bits = reader.read(64)
            value = Double(bitPattern: bits)
        } else {
            secondOrder = reader.readBit()
            scale = Int(reader.read(4))
            divisor = ChunkCodec.powersOfTen[scale]
            let length = Int(reader.read(6))
            mantissa = ChunkCodec.unzigzag(length == 0 ? 0 : reader.read(length))
            value = Double(mantissa) / divisor
        }
        var index = 0
        while true {
            if time > end { return false }
            if time > start && !(skipStale && value.bitPattern == StaleMarker.bitPattern) { out.append(Sample(time, value)) }
            index += 1
            if index == sampleCount { return true }
            // The common cases inline: a steady interval, then a residual in the current width.
            if reader.readBit() { delta &+= reader.readTimestampDeltaAfterFirstBit() }
            time &+= delta
            if decimalMode {
                var residual: Int64
                if !reader.readBit() {
                    residual = 0
                } else if !reader.readBit() {
                    residual = ChunkCodec.unzigzag(reader.read(width))
                } else if !reader.readBit() {
                    width = Int(reader.read(6))
                    residual = ChunkCodec.unzigzag(reader.read(width))
                } else if !reader.readBit() {
                    // Rescale to a larger k, then the residual at the new scale.
                    let k = Int(reader.read(4))
                    let factor = ChunkCodec.powersOfTen[k - scale]
                    mantissa = Int64(Double(mantissa) * factor)
                    mantissaDelta = Int64(Double(mantissaDelta) * factor)
                    scale = k
                    divisor = ChunkCodec.powersOfTen[k]
                    residual = readResidual(&reader, &width) ?? 0
                } else {
                    // XOR mode for the rest of the chunk.
                    decimalMode = false
                    bits = reader.read(64)
                    value = Double(bitPattern: bits)
                    continue
                }
                let change = secondOrder ? mantissaDelta &+ residual : residual
                mantissa &+= change
                mantissaDelta = change
                value = Double(mantissa) / divisor
            } else {
                if reader.readBit() {
                    if reader.readBit() {
                        leading = Int(reader.read(5))
                        var significant = Int(reader.read(6))
                        if significant == 0 { significant = 64 }
                        trailing = 64 - leading - significant
                    }
                    bits ^= reader.read(64 - leading - trailing) << UInt64(trailing)
                }
                value = Double(bitPattern: bits)
            }
        }
    }

    /// A residual of the adaptive-width code, or nil for the escape.
    @inline(__always)
    private static func readResidual(_ reader: inout BitReader, _ width: inout Int) -> Int64? {
        if !reader.readBit() { return 0 }
        if !reader.readBit() { return ChunkCodec.unzigzag(reader.read(width)) }
        if !reader.readBit() {
            width = Int(reader.read(6))
            return ChunkCodec.unzigzag(reader.read(width))
        }
        return nil
    }
}
