import Foundation
import Testing
import VigilCore
import VigilServer
import VigilStore

/// A base-128 varint at `position`, which moves past it.
private func readVarint(_ bytes: ArraySlice<UInt8>, _ position: inout Int) -> UInt64 {
    var value: UInt64 = 0, shift: UInt64 = 0
    while true {
        let byte = bytes[position]; position += 1
        value |= UInt64(byte & 0x7F) << shift
        if byte < 0x80 { return value }
        shift += 7
    }
}

/// Snappy's block format, decoded as the format description says (literals; copies with 1- and 2-byte
/// offsets; a 4-byte offset, which the encoder never writes, is an error here).
private func unsnappy(_ input: [UInt8]) throws -> [UInt8] {
    struct Bad: Error {}
    var position = 0
    let length = Int(readVarint(input[...], &position))
    var out: [UInt8] = []
    while position < input.count {
        let tag = input[position]; position += 1
        switch tag & 3 {
        case 0:
            var n = Int(tag >> 2)
            if n >= 60 {
                let bytes = n - 59
                n = 0
                for index in 0..<bytes { n |= Int(input[position + index]) << (8 * index) }
                position += bytes
            }
            out += input[position..<position + n + 1]
            position += n + 1
        case 1:
            let n = Int((tag >> 2) & 7) + 4
            let offset = Int(tag >> 5) << 8 | Int(input[position]); position += 1
            for _ in 0..<n { out.append(out[out.count - offset]) }
        case 2:
            let n = Int(tag >> 2) + 1
            let offset = Int(input[position]) | Int(input[position + 1]) << 8; position += 2
            guard offset > 0, offset <= out.count else { throw Bad() }
            for _ in 0..<n { out.append(out[out.count - offset]) }
        default:
            throw Bad()
        }
    }
    guard out.count == length else { throw Bad() }
    return out
}

/// The fields of one protobuf message: (field number, wire type, bytes or number).
private func fields(_ bytes: ArraySlice<UInt8>) -> [(Int, Int, ArraySlice<UInt8>, UInt64)] {
    var out: [(Int, Int, ArraySlice<UInt8>, UInt64)] = []
    var position = bytes.startIndex
    func varint() -> UInt64 { readVarint(bytes, &position) }
    while position < bytes.endIndex {
        let key = varint()
        switch key & 7 {
        case 0: out.append((Int(key >> 3), 0, [], varint()))
        case 1:
            var raw: UInt64 = 0
            for index in 0..<8 { raw |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
            position += 8
            out.append((Int(key >> 3), 1, [], raw))
        case 2:
            let length = Int(varint())
            out.append((Int(key >> 3), 2, bytes[position..<position + length], 0))
            position += length
        default: return out
        }
    }
    return out
}

@Suite("remote write encoding")
struct RemoteWriteTests {
    @Test("snappy round-trips text, repeats, long runs and random bytes, and compresses what repeats")
    func snappy() throws {
        var random = SystemRandomNumberGenerator()
        let inputs: [[UInt8]] = [
            [], Array("a".utf8), Array(String(repeating: "gpu_temperature_celsius{gpu=\"0\"} ", count: 500).utf8),
            [UInt8](repeating: 7, count: 200_000), (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &random) },
            Array((0..<3000).map { "series_\($0 % 17) value \($0)\n" }.joined().utf8),
        ]
        for input in inputs {
            let packed = RemoteWriteEncoding.snappy(input)
            #expect(try unsnappy(packed) == input, "round trip of \(input.count) bytes")
        }
        let repetitive = inputs[2]
        #expect(RemoteWriteEncoding.snappy(repetitive).count * 10 < repetitive.count, "repeats are copies")
    }

    @Test("a WriteRequest's protobuf holds each series' sorted labels and its samples")
    func protobuf() throws {
        let series = RemoteWriteEncoding.Series(labels: Labels(name: "gpu_up", ["uuid": "GPU-1", "gpu": "0"]),
                                                samples: [Sample(1_700_000_000_123, 1), Sample(1_700_000_001_123, 0.5)])
        let bytes = RemoteWriteEncoding.protobuf([series, series])
        let request = fields(bytes[...])
        #expect(request.count == 2 && request.allSatisfy { $0.0 == 1 && $0.1 == 2 }, "two timeseries, field 1")
        let timeseries = fields(request[0].2)
        let labels = timeseries.filter { $0.0 == 1 }.map { label -> (String, String) in
            let parts = fields(label.2)
            return (String(decoding: parts[0].2, as: UTF8.self), String(decoding: parts[1].2, as: UTF8.self))
        }
        #expect(labels.map(\.0) == ["__name__", "gpu", "uuid"] && labels.map(\.1) == ["gpu_up", "0", "GPU-1"])
        let samples = timeseries.filter { $0.0 == 2 }.map { sample -> (Double, Int64) in
            let parts = fields(sample.2)
            return (Double(bitPattern: parts.first { $0.0 == 1 }!.3), Int64(bitPattern: parts.first { $0.0 == 2 }!.3))
        }
        #expect(samples.map(\.0) == [1, 0.5] && samples.map(\.1) == [1_700_000_000_123, 1_700_000_001_123])
    }
}
