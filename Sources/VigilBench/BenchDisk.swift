import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension BenchRunner {
    /// Sequential write (fsync included) and read (the page cache dropped first) of a file in the data
    /// folder, and the latency of a 4 KiB write made durable with fdatasync.
    func disk() throws -> [BenchResult] {
        try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        let path = (options.directory as NSString).appendingPathComponent(".vigil-bench-\(getpid()).tmp")
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer {
            close(fd)
            unlink(path)
        }
        let total = options.quick ? 64 << 20 : 256 << 20
        let blockSize = 1 << 20
        var block = [UInt8](repeating: 0, count: blockSize)
        var generator = SplitMix(seed: 3)
        for i in stride(from: 0, to: blockSize, by: 8) {
            let value = generator.next()
            withUnsafeBytes(of: value) { bytes in for j in 0..<8 { block[i + j] = bytes[j] } }
        }
        var start = DispatchTime.now().uptimeNanoseconds
        var written = 0
        while written < total {
            guard writeFully(fd, block, blockSize) else { throw BenchError("writing \(path): \(String(cString: strerror(errno)))") }
            written += blockSize
        }
        fsync(fd)
        let writeSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var writeResult = BenchResult(name: "disk.seq_write", suite: .disk, value: Double(total) / writeSeconds / 1e6, unit: "MB/s",
                                higherIsBetter: true, detail: "\(total >> 20) MiB in 1 MiB writes, then fsync, in \(options.directory)")
        writeResult.cost = options.coreHourPrice / 3600 * writeSeconds / (Double(total) / 1e9)
        writeResult.costUnit = "\(options.currency) per GB (one core's time)"

        // Drop the file's pages so the read comes from the device.
        posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        lseek(fd, 0, SEEK_SET)
        start = DispatchTime.now().uptimeNanoseconds
        var readBytes = 0
        while true {
            let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress!, blockSize) }
            if n <= 0 { break }
            readBytes += n
        }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard readBytes == total else { throw BenchError("read back \(readBytes) of \(total) bytes") }
        var readResult = BenchResult(name: "disk.seq_read", suite: .disk, value: Double(total) / readSeconds / 1e6, unit: "MB/s",
                               higherIsBetter: true, detail: "\(total >> 20) MiB in 1 MiB reads after dropping the page cache for the file")
        readResult.cost = options.coreHourPrice / 3600 * readSeconds / (Double(total) / 1e9)
        readResult.costUnit = "\(options.currency) per GB (one core's time)"

        let syncs = options.quick ? 30 : 200
        var samples: [Double] = []
        let page = [UInt8](repeating: 0x5a, count: 4096)
        for i in 0..<syncs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = page.withUnsafeBytes { pwrite(fd, $0.baseAddress!, 4096, off_t(i * 4096)) }
            fdatasync(fd)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        var sync = BenchResult(name: "disk.fsync", suite: .disk, value: BenchStatistics.median(samples) ?? 0, unit: "ms",
                               higherIsBetter: false, detail: "\(syncs) × (4 KiB pwrite + fdatasync)")
        sync.p50 = BenchStatistics.quantile(0.5, samples)
        sync.p99 = BenchStatistics.quantile(0.99, samples)
        sync.histogram = BenchStatistics.histogram(samples)
        sync.cost = options.coreHourPrice / 3600 * sync.value / 1000
        sync.costUnit = "\(options.currency) per durable write"
        return [writeResult, readResult, sync]
    }
}
