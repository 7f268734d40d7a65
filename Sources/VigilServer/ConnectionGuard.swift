import Foundation
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Limits on connections, so that no client can starve the daemon of descriptors or hold a worker:
/// a cap on connections in all (beyond it, new ones wait in the kernel's backlog), a cap per peer address
/// (beyond it a connection is closed at once), and a deadline for each request's header (a client that
/// trickles its header a byte at a time is closed; Hummingbird's idle timeout closes silent ones).
public struct ConnectionLimits: Sendable {
    public var total = 512
    public var perPeer = 64
    public var headerTimeoutMilliseconds: Int64 = 10_000
    public var idleTimeoutMilliseconds: Int64 = 60_000

    public init() {}

    /// Raises the soft descriptor limit to the hard one and keeps `reserve` descriptors for the daemon's own
    /// files (rules, plugins, SQLite, task logs): the total cap is lowered to fit what is left.
    public mutating func fitDescriptors(reserve: Int = 256) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let available = Int(clamping: limit.rlim_cur) - reserve
        total = max(16, min(total, available))
        perPeer = min(perPeer, total)
    }
}

/// Open connections per peer address, shared by every connection's guard.
final class PeerCounts: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// Counts one more for `peer`; false (and nothing counted) when it already has `limit`.
    func open(_ peer: String, limit: Int) -> Bool {
        counts.withLock { counts in
            let now = counts[peer, default: 0]
            guard now < limit else { return false }
            counts[peer] = now + 1
            return true
        }
    }

    func close(_ peer: String) {
        counts.withLock { counts in
            let left = (counts[peer] ?? 1) - 1
            counts[peer] = left > 0 ? left : nil
        }
    }
}

/// One per connection, just after HTTP decoding.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limits: ConnectionLimits
    private let peers: PeerCounts
    private var peer: String?
    private var deadline: Scheduled<Void>?

    init(limits: ConnectionLimits, peers: PeerCounts) {
        self.limits = limits
        self.peers = peers
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let address: String = switch context.channel.remoteAddress {
        case .some(.unixDomainSocket): "unix"
        case .some(let remote): remote.ipAddress ?? "unknown"
        case .none: "unknown"
        }
        guard peers.open(address, limit: limits.perPeer) else {
            context.close(promise: nil)
            return
        }
        peer = address
        armDeadline(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if let peer { peers.close(peer) }
        peer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if let peer { peers.close(peer) }
        peer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The next request's header has its own deadline, from the end of this response.
        if case .end = unwrapOutboundIn(data) { armDeadline(context) }
        context.write(data, promise: promise)
    }

    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .milliseconds(limits.headerTimeoutMilliseconds)) { channel.close(promise: nil) }
    }
}
