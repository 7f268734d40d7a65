import Testing
import VigilCore
@testable import VigilStore

@Suite("chunk compression")
struct CompressionTests {
    /// A deterministic generator so failures reproduce.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        mutating func unit() -> Double { Double(next() % 1_000_000) / 1_000_000 }
    }

    @Test("every value comes back bit for bit: decimals, rescales, raw doubles, NaN, stale markers, -0, extremes")
    func roundTrip() {
        var generator = Generator(state: 42)
        var expected: [Sample] = []
        var t: Timestamp = 1_700_000_000_000
        var value = 20.0
        for i in 0..<5000 {
            t += 1000 + Int64(generator.next() % 40) - 20 + (i % 997 == 0 ? 3_600_000 : 0)
            switch i % 11 {
            case 0: value = Double(Int(generator.next() % 100))            // integers
            case 1: value = Double(Int(generator.next() % 10000)) / 100     // two decimals
            case 2: value = generator.unit() * 1e-3 + 1 / 3                 // no short decimal: XOR
            case 3: value = .nan
            case 4: value = StaleMarker.value
            case 5: value = -0.0
            case 6: value = Double(Int64.max / 3)                           // beyond 2^53
            case 7: value = 1e300
            case 8: value = Double(Int(generator.next() % 1_000_000)) / 1000 // rescale to 3 decimals
            case 9: value = -value
            default: value += 0.5
            }
            expected.append(Sample(t, value))
        }
        var data = SeriesData()
        for sample in expected { #expect(data.append(sample.timestamp, sample.value) == .appended) }
        var decoded: [Sample] = []
        data.appendSamples(after: .min, through: .max, into: &decoded)
        #expect(decoded.count == expected.count)
        for (a, b) in zip(decoded, expected) where a.timestamp != b.timestamp || a.value.bitPattern != b.value.bitPattern {
            Issue.record("mismatch: got \(a) expected \(b)")
            break
        }
        // Sealing the open chunk keeps everything readable.
        data.seal()
        var again: [Sample] = []
        data.appendSamples(after: .min, through: .max, into: &again)
        #expect(again.count == expected.count)
    }

    @Test("an hour of a steady 1 s gauge of small decimals takes under half a byte per sample")
    func compact() {
        var data = SeriesData()
        var generator = Generator(state: 7)
        var value = 55.0
        for i in 0..<3600 {
            if generator.next() % 30 == 0 { value += generator.next() % 2 == 0 ? 1 : -1 }
            _ = data.append(1_700_000_000_000 + Int64(i) * 1000, value)
        }
        data.seal()
        let bytesPerSample = Double(data.arena.count + data.chunks.count * MemoryLayout<ChunkMeta>.stride) / 3600
        #expect(bytesPerSample < 0.5, "\(bytesPerSample) bytes/sample")
    }

    @Test("a steadily growing counter moves to second-order residuals and still round-trips, rescales included")
    func secondOrder() {
        var generator = Generator(state: 3)
        var data = SeriesData()
        var expected: [Sample] = []
        var millijoules = 1_000_000_000
        for i in 0..<2000 {
            millijoules += 350_000 + Int(generator.next() % 2001) - 1000
            // Now and then a value with one more decimal than before forces a rescale.
            let value = i % 500 == 499 ? Double(millijoules) / 1000 + 0.0005 : Double(millijoules) / 1000
            expected.append(Sample(Int64(i) * 1000, value))
            _ = data.append(Int64(i) * 1000, value)
        }
        #expect(data.secondOrder, "the sealed chunks chose second order for a steady counter")
        var decoded: [Sample] = []
        data.appendSamples(after: .min, through: .max, into: &decoded)
        #expect(decoded.count == expected.count)
        #expect(zip(decoded, expected).allSatisfy { $0.timestamp == $1.timestamp && $0.value.bitPattern == $1.value.bitPattern })
        // First order would spend 2 + 20 bits on each ~350,000 mJ change plus 1 timestamp bit: ≥ 2.875 B.
        let bytesPerSample = Double(data.arena.count) / 2000
        #expect(bytesPerSample < 2.8, "\(bytesPerSample) bytes/sample for a counter growing by 350 J ± 1 J a second")
    }

    @Test("out-of-order samples are refused, identical duplicates ignored")
    func ordering() {
        var data = SeriesData()
        #expect(data.append(2000, 1) == .appended)
        #expect(data.append(2000, 1) == .duplicate)
        #expect(data.append(2000, 2) == .outOfOrder)
        #expect(data.append(1000, 1) == .outOfOrder)
        #expect(data.sampleCount == 1)
    }
}
