import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The far end of the network benchmark: `vigil bench serve` on another host, or a thread of this process
/// on 127.0.0.1. A client's first byte picks the mode: `S` (sink: read until the client shuts its side,
/// then answer the byte count as 8 bytes) or `E` (echo 64-byte messages until the client closes).
public final class BenchServer: @unchecked Sendable {
    public let port: Int
    private let listener: Int32

    /// Listens on `host:port` (port 0: any free port).
    public init(host: String = "127.0.0.1", port: Int = 0) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw BenchError("cannot open a socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "0.0.0.0" || host.isEmpty ? "0.0.0.0" : host, &address.sin_addr) == 1 else {
            close(listener)
            throw BenchError("\(host) is not an IPv4 address")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0, listen(listener, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(listener)
            throw BenchError("cannot listen on \(host):\(port): \(message)")
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        self.listener = listener
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Accepts connections on a thread of its own until `stop()`.
    public func start() {
        let thread = Thread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                DispatchQueue.global().async { Self.serve(client) }
            }
        }
        thread.start()
    }

    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private static func serve(_ fd: Int32) {
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
        var mode: UInt8 = 0
        guard read(fd, &mode, 1) == 1 else { return }
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        switch mode {
        case UInt8(ascii: "S"):
            var total: UInt64 = 0
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                total += UInt64(n)
            }
            var answer = total.bigEndian
            _ = write(fd, &answer, 8)
        case UInt8(ascii: "E"):
            while readFully(fd, &buffer, 64) { guard writeFully(fd, buffer, 64) else { return } }
        default:
            return
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func readFully(_ fd: Int32, _ buffer: inout [UInt8], _ count: Int) -> Bool {
    var done = 0
    while done < count {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
        if n <= 0 { return false }
        done += n
    }
    return true
}

func writeFully(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
    var done = 0
    while done < count {
        let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + done, count - done) }
        if n <= 0 { return false }
        done += n
    }
    return true
}

extension BenchRunner {
    /// Throughput and round-trip latency against `peer` (`host:port`), or against a server on 127.0.0.1.
    func network(peer: String?) throws -> [BenchResult] {
        var server: BenchServer?
        let host: String, port: Int
        if let peer {
            guard let colon = peer.lastIndex(of: ":"), let parsed = Int(peer[peer.index(after: colon)...]) else {
                throw BenchError("--peer must be HOST:PORT of a `vigil bench serve`")
            }
            host = String(peer[..<colon])
            port = parsed
        } else {
            let local = try BenchServer()
            local.start()
            server = local
            host = "127.0.0.1"
            port = local.port
        }
        defer { server?.stop() }
        let prefix = peer == nil ? "network.loopback" : "network.peer"
        let seconds = options.quick ? 0.5 : 2.0

        // Throughput: 256 KiB writes for `seconds`, timed until the far end has counted every byte.
        let sink = try Self.connect(host, port)
        defer { close(sink) }
        var mode = UInt8(ascii: "S")
        _ = write(sink, &mode, 1)
        let block = [UInt8](repeating: 0xa5, count: 256 << 10)
        var sent: UInt64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        while DispatchTime.now().uptimeNanoseconds < deadline {
            guard writeFully(sink, block, block.count) else { throw BenchError("\(host):\(port) closed the connection") }
            sent += UInt64(block.count)
        }
        shutdown(sink, Int32(SHUT_WR))
        var answer = [UInt8](repeating: 0, count: 8)
        guard readFully(sink, &answer, 8) else { throw BenchError("\(host):\(port) did not answer the byte count") }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let received = answer.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard received == sent else { throw BenchError("sent \(sent) bytes, the far end counted \(received)") }
        let gigabits = Double(sent) * 8 / elapsed / 1e9
        var throughput = BenchResult(name: "\(prefix)_throughput", suite: .network, value: gigabits, unit: "Gbit/s", higherIsBetter: true,
                                     detail: "one TCP stream to \(host):\(port), 256 KiB writes for \(seconds) s")
        throughput.cost = Double(options.coreHourPrice) / 3600 / (gigabits / 8)
        throughput.costUnit = "\(options.currency) per GB sent (one core)"

        // Round trips: 64-byte messages echoed, one at a time.
        let echo = try Self.connect(host, port)
        defer { close(echo) }
        mode = UInt8(ascii: "E")
        _ = write(echo, &mode, 1)
        var message = [UInt8](repeating: 7, count: 64)
        var samples: [Double] = []
        let rttDeadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        repeat {
            let t0 = DispatchTime.now().uptimeNanoseconds
            guard writeFully(echo, message, 64), readFully(echo, &message, 64) else { throw BenchError("\(host):\(port) stopped echoing") }
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
        } while DispatchTime.now().uptimeNanoseconds < rttDeadline && samples.count < 200_000
        var rtt = BenchResult(name: "\(prefix)_rtt", suite: .network, value: BenchStatistics.median(samples) ?? 0, unit: "µs",
                              higherIsBetter: false, detail: "64-byte TCP round trips to \(host):\(port), \(samples.count) samples")
        rtt.p50 = BenchStatistics.quantile(0.5, samples)
        rtt.p99 = BenchStatistics.quantile(0.99, samples)
        rtt.histogram = BenchStatistics.histogram(samples)
        rtt.cost = options.coreHourPrice / 3600 * rtt.value / 1e6
        rtt.costUnit = "\(options.currency) per round trip"
        return [throughput, rtt]
    }

    static func connect(_ host: String, _ port: Int) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw BenchError("cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw BenchError("cannot open a socket") }
        guard Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw BenchError("cannot connect to \(host):\(port): \(message) (is `vigil bench serve` running there?)")
        }
        var yes: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }
}
