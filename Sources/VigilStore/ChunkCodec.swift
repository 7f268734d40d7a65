import VigilCore

/// The encoding of one chunk (up to `ChunkCodec.samplesPerChunk` samples).
///
/// Timestamps: the first is kept in the chunk's metadata; then delta-of-delta in buckets
/// `0` | `10`+7 | `110`+14 | `1110`+20 | `1111`+64 bits (Gorilla's idea with millisecond buckets).
///
/// Values: most metrics are decimals with few digits (°C, %, MHz, bytes, milliwatts as watts). When
/// a value is exactly `m / 10^k` for an integer `m` and `k ≤ 9`, the chunk is in *decimal mode*:
/// the first value is `0` + k (4 bits) + zig-zag `m` with a 6-bit length, then each value is the
/// delta of `m` in buckets `0` | `10`+6 | `110`+13 | `1110`+20 | `11110`+64 bits. `11111` escapes:
/// then `0` + 4 bits rescales to a larger `k`, `1` switches to *XOR mode* for the rest of the chunk.
/// A chunk that starts with a value no decimal fits starts with `1` + 64 raw bits in XOR mode:
/// Gorilla's XOR of successive IEEE-754 values with leading/trailing zero windows.
enum ChunkCodec {
    static let samplesPerChunk = 240
    static let maxScale = 9
    static let powersOfTen: [Double] = (0...maxScale).map { k in (0..<k).reduce(1.0) { r, _ in r * 10 } }

    /// `m` such that `Double(m) / 10^k` is bit-for-bit `value`, or nil.
    @inline(__always)
    static func mantissa(_ value: Double, scale k: Int) -> Int64? {
        let power = powersOfTen[k]
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
    private var previousMantissa: Int64 = 0
    private var previousBits: UInt64 = 0
    private var leading = 0xff
    private var trailing = 0

    init(startOffset: Int) {
        self.startOffset = startOffset
    }

    mutating func append(_ t: Timestamp, _ v: Double, to arena: Arena) {
        defer { count += 1 }
        if count == 0 {
            minTime = t
            previousTime = t
            writeFirstValue(v, arena)
            return
        }
        let delta = t - previousTime
        writeTimestampDelta(delta - previousDelta, arena)
        previousDelta = delta
        previousTime = t
        if decimalMode {
            writeDecimal(v, arena)
        } else {
            writeXOR(v, arena)
        }
    }

    private mutating func writeTimestampDelta(_ dod: Int64, _ arena: Arena) {
        let raw = UInt64(bitPattern: dod)
        if dod == 0 {
            writer.write(0, 1, to: arena)
        } else if ChunkCodec.fits(dod, bits: 7) {
            writer.write(0b10, 2, to: arena); writer.write(raw, 7, to: arena)
        } else if ChunkCodec.fits(dod, bits: 14) {
            writer.write(0b110, 3, to: arena); writer.write(raw, 14, to: arena)
        } else if ChunkCodec.fits(dod, bits: 20) {
            writer.write(0b1110, 4, to: arena); writer.write(raw, 20, to: arena)
        } else {
            writer.write(0b1111, 4, to: arena); writer.write(raw, 64, to: arena)
        }
    }

    private mutating func writeFirstValue(_ v: Double, _ arena: Arena) {
        if let (k, m) = ChunkCodec.smallestScale(for: v) {
            decimalMode = true
            scale = k
            previousMantissa = m
            writer.write(0, 1, to: arena)
            writer.write(UInt64(k), 4, to: arena)
            let zigzag = UInt64(bitPattern: (m << 1) ^ (m >> 63))
            let length = zigzag == 0 ? 0 : 64 - zigzag.leadingZeroBitCount
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
        if let m = ChunkCodec.mantissa(v, scale: scale) {
            writeMantissaDelta(m &- previousMantissa, arena)
            previousMantissa = m
            return
        }
        // A finer scale, if the value and the previous one both still fit.
        if scale < ChunkCodec.maxScale, let (k, m) = ChunkCodec.smallestScale(for: v, from: scale + 1) {
            let factor = ChunkCodec.powersOfTen[k - scale]
            let rescaled = Double(previousMantissa) * factor
            if abs(rescaled) < 4.0e15 {
                writer.write(0b11111, 5, to: arena)
                writer.write(0, 1, to: arena)
                writer.write(UInt64(k), 4, to: arena)
                scale = k
                previousMantissa = Int64(rescaled)
                writeMantissaDelta(m &- previousMantissa, arena)
                previousMantissa = m
                return
            }
        }
        writer.write(0b11111, 5, to: arena)
        writer.write(1, 1, to: arena)
        writer.write(v.bitPattern, 64, to: arena)
        decimalMode = false
        previousBits = v.bitPattern
        leading = 0xff
    }

    private mutating func writeMantissaDelta(_ d: Int64, _ arena: Arena) {
        let raw = UInt64(bitPattern: d)
        if d == 0 {
            writer.write(0, 1, to: arena)
        } else if ChunkCodec.fits(d, bits: 6) {
            writer.write(0b10, 2, to: arena); writer.write(raw, 6, to: arena)
        } else if ChunkCodec.fits(d, bits: 13) {
            writer.write(0b110, 3, to: arena); writer.write(raw, 13, to: arena)
        } else if ChunkCodec.fits(d, bits: 20) {
            writer.write(0b1110, 4, to: arena); writer.write(raw, 20, to: arena)
        } else {
            writer.write(0b11110, 5, to: arena); writer.write(raw, 64, to: arena)
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

/// Decodes a chunk written by `ChunkEncoder`.
struct ChunkDecoder {
    private var reader: BitReader
    private let count: Int
    private var index = 0
    private var time: Timestamp
    private var delta: Int64 = 0
    private var decimalMode = true
    private var scale = 0
    private var mantissa: Int64 = 0
    private var bits: UInt64 = 0
    private var leading = 0
    private var trailing = 0

    init(_ base: UnsafePointer<UInt8>, byteCount: Int, sampleCount: Int, minTime: Timestamp) {
        reader = BitReader(base, count: byteCount)
        count = sampleCount
        time = minTime
    }

    /// The next sample, or nil after the last.
    @inline(__always)
    mutating func next() -> Sample? {
        guard index < count else { return nil }
        defer { index += 1 }
        if index == 0 {
            return Sample(time, readFirstValue())
        }
        delta += readTimestampDelta()
        time += delta
        return Sample(time, decimalMode ? readDecimal() : readXOR())
    }

    private mutating func readTimestampDelta() -> Int64 {
        if !reader.readBit() { return 0 }
        if !reader.readBit() { return ChunkCodec.signExtend(reader.read(7), bits: 7) }
        if !reader.readBit() { return ChunkCodec.signExtend(reader.read(14), bits: 14) }
        if !reader.readBit() { return ChunkCodec.signExtend(reader.read(20), bits: 20) }
        return Int64(bitPattern: reader.read(64))
    }

    private mutating func readFirstValue() -> Double {
        if reader.readBit() {
            decimalMode = false
            bits = reader.read(64)
            return Double(bitPattern: bits)
        }
        decimalMode = true
        scale = Int(reader.read(4))
        let length = Int(reader.read(6))
        let zigzag = length == 0 ? 0 : reader.read(length)
        mantissa = Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
        return Double(mantissa) / ChunkCodec.powersOfTen[scale]
    }

    private mutating func readMantissaDelta(_ prefixAlreadyRead: Bool = false) -> Int64? {
        if !reader.readBit() { return 0 }
        if !reader.readBit() { return ChunkCodec.signExtend(reader.read(6), bits: 6) }
        if !reader.readBit() { return ChunkCodec.signExtend(reader.read(13), bits: 13) }
        if !reader.readBit() { return ChunkCodec.signExtend(reader.read(20), bits: 20) }
        if !reader.readBit() { return Int64(bitPattern: reader.read(64)) }
        return nil // escape
    }

    private mutating func readDecimal() -> Double {
        if let d = readMantissaDelta() {
            mantissa &+= d
            return Double(mantissa) / ChunkCodec.powersOfTen[scale]
        }
        if !reader.readBit() {
            let k = Int(reader.read(4))
            mantissa = Int64(Double(mantissa) * ChunkCodec.powersOfTen[k - scale])
            scale = k
            mantissa &+= readMantissaDelta() ?? 0
            return Double(mantissa) / ChunkCodec.powersOfTen[scale]
        }
        decimalMode = false
        bits = reader.read(64)
        leading = 0xff
        return Double(bitPattern: bits)
    }

    private mutating func readXOR() -> Double {
        if !reader.readBit() { return Double(bitPattern: bits) }
        if reader.readBit() {
            leading = Int(reader.read(5))
            var significant = Int(reader.read(6))
            if significant == 0 { significant = 64 }
            trailing = 64 - leading - significant
        }
        let significant = 64 - leading - trailing
        let xor = reader.read(significant) << UInt64(trailing)
        bits ^= xor
        return Double(bitPattern: bits)
    }
}
