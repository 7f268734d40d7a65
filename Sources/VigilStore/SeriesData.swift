import VigilCore

/// Where a sealed chunk starts and what it holds.
struct ChunkMeta {
    var minTime: Timestamp
    var offset: UInt32
    var count: UInt32
}

/// The samples of one series: sealed chunks back to back in one arena, then the open chunk.
struct SeriesData {
    let arena = Arena()
    var encoding: ValueEncoding = .decimal
    /// Whether the next chunk should use second-order residuals (chosen by the last sealed chunk).
    var secondOrder = false
    var chunks: [ChunkMeta] = []
    var head: ChunkEncoder?
    var lastTime: Timestamp = .min
    var lastValue: Double = .nan
    var sampleCount = 0
    /// Samples ever appended (not lowered by retention), for the store's appended total.
    var appendedCount = 0

    enum AppendResult { case appended, duplicate, outOfOrder }

    mutating func append(_ t: Timestamp, _ v: Double) -> AppendResult {
        if t <= lastTime {
            if t == lastTime && v.bitPattern == lastValue.bitPattern { return .duplicate }
            return .outOfOrder
        }
        if head == nil || head!.count >= ChunkCodec.samplesPerChunk {
            seal()
            head = ChunkEncoder(startOffset: arena.count, encoding: encoding, secondOrder: secondOrder)
        }
        head!.append(t, v, to: arena)
        lastTime = t
        lastValue = v
        sampleCount += 1
        appendedCount += 1
        return .appended
    }

    /// Closes the open chunk.
    mutating func seal() {
        guard var open = head else { return }
        open.writer.flush(to: arena)
        secondOrder = open.prefersSecondOrder
        chunks.append(ChunkMeta(minTime: open.minTime, offset: UInt32(open.startOffset), count: UInt32(open.count)))
        head = nil
    }

    /// Appends every sample in `(start, end]` to `out`, oldest first; with `skipStale`, staleness
    /// markers are left out.
    func appendSamples(after start: Timestamp, through end: Timestamp, into out: inout [Sample], skipStale: Bool = false) {
        guard sampleCount > 0, lastTime > start else { return }
        let headMin = head?.minTime ?? .max
        for index in chunks.indices {
            let chunk = chunks[index]
            let nextMin = index + 1 < chunks.count ? chunks[index + 1].minTime : headMin
            if nextMin <= start { continue }   // every sample of this chunk is before the window
            if chunk.minTime > end { return }
            let byteEnd = index + 1 < chunks.count ? Int(chunks[index + 1].offset) : (head?.startOffset ?? arena.count)
            let more = ChunkDecoder.decode(arena.base! + Int(chunk.offset), byteCount: byteEnd - Int(chunk.offset),
                                           sampleCount: Int(chunk.count), minTime: chunk.minTime,
                                           after: start, through: end, into: &out, skipStale: skipStale)
            if !more { return }
        }
        guard let head, head.minTime <= end else { return }
        // The open chunk: its whole bytes, then the bits not yet forming a byte.
        let startPointer = arena.base.map { $0 + head.startOffset } ?? UnsafeMutablePointer<UInt8>(bitPattern: 1)!
        _ = ChunkDecoder.decode(startPointer, byteCount: arena.count - head.startOffset, tail: head.writer.pendingByte,
                                sampleCount: head.count, minTime: head.minTime,
                                after: start, through: end, into: &out, skipStale: skipStale)
    }

    /// Drops sealed chunks whose samples are all older than `cutoff`. Returns samples dropped.
    mutating func dropChunks(before cutoff: Timestamp) -> Int {
        var drop = 0
        let headMin = head?.minTime ?? .max
        while drop < chunks.count {
            let nextMin = drop + 1 < chunks.count ? chunks[drop + 1].minTime : headMin
            if nextMin > cutoff { break }
            drop += 1
        }
        guard drop > 0 else { return 0 }
        let removedSamples = chunks[..<drop].reduce(0) { $0 + Int($1.count) }
        let removedBytes = drop < chunks.count ? Int(chunks[drop].offset) : (head?.startOffset ?? arena.count)
        chunks.removeFirst(drop)
        arena.removeFirst(removedBytes)
        for index in chunks.indices { chunks[index].offset -= UInt32(removedBytes) }
        head?.startOffset -= removedBytes
        sampleCount -= removedSamples
        return removedSamples
    }

    /// Bytes this series' samples occupy (buffer capacity plus chunk index).
    var memoryBytes: Int {
        arena.capacity + chunks.capacity * MemoryLayout<ChunkMeta>.stride + MemoryLayout<SeriesData>.size
    }
}
