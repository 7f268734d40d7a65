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
    var chunks: [ChunkMeta] = []
    var head: ChunkEncoder?
    var lastTime: Timestamp = .min
    var lastValue: Double = .nan
    var sampleCount = 0

    enum AppendResult { case appended, duplicate, outOfOrder }

    mutating func append(_ t: Timestamp, _ v: Double) -> AppendResult {
        if t <= lastTime {
            if t == lastTime && v.bitPattern == lastValue.bitPattern { return .duplicate }
            return .outOfOrder
        }
        if head == nil || head!.count >= ChunkCodec.samplesPerChunk {
            seal()
            head = ChunkEncoder(startOffset: arena.count)
        }
        head!.append(t, v, to: arena)
        lastTime = t
        lastValue = v
        sampleCount += 1
        return .appended
    }

    /// Closes the open chunk.
    mutating func seal() {
        guard var open = head else { return }
        open.writer.flush(to: arena)
        chunks.append(ChunkMeta(minTime: open.minTime, offset: UInt32(open.startOffset), count: UInt32(open.count)))
        head = nil
    }

    /// Calls `body` with every sample in `(start, end]`, oldest first.
    func forEachSample(after start: Timestamp, through end: Timestamp, _ body: (Sample) -> Void) {
        guard sampleCount > 0, lastTime > start else { return }
        let headMin = head?.minTime ?? .max
        for (index, chunk) in chunks.enumerated() {
            let nextMin = index + 1 < chunks.count ? chunks[index + 1].minTime : headMin
            if nextMin <= start { continue }   // every sample of this chunk is before the window
            if chunk.minTime > end { return }
            let byteEnd = index + 1 < chunks.count ? Int(chunks[index + 1].offset) : (head?.startOffset ?? arena.count)
            var decoder = ChunkDecoder(arena.base! + Int(chunk.offset), byteCount: byteEnd - Int(chunk.offset),
                                       sampleCount: Int(chunk.count), minTime: chunk.minTime)
            while let sample = decoder.next() {
                if sample.timestamp > end { return }
                if sample.timestamp > start { body(sample) }
            }
        }
        guard let head, head.minTime <= end else { return }
        // The open chunk: its bytes plus the bits not yet forming a byte.
        var bytes = [UInt8](repeating: 0, count: arena.count - head.startOffset + 1)
        bytes.withUnsafeMutableBufferPointer { buffer in
            if arena.count > head.startOffset {
                buffer.baseAddress!.update(from: arena.base! + head.startOffset, count: arena.count - head.startOffset)
            }
            buffer[buffer.count - 1] = head.writer.pendingByte
            var decoder = ChunkDecoder(UnsafePointer(buffer.baseAddress!), byteCount: buffer.count,
                                       sampleCount: head.count, minTime: head.minTime)
            while let sample = decoder.next() {
                if sample.timestamp > end { return }
                if sample.timestamp > start { body(sample) }
            }
        }
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
