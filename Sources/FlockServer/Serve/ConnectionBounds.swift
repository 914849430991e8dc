#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import Synchronization

/// Bounds the server's connections, so that idle, half-open or hostile ones cannot take every file descriptor
/// and leave none for the checkpoint, the journal and the registry:
///
/// - a connection beyond ``maximum`` is closed as soon as it is accepted;
/// - a connection that sends nothing for ``idleSeconds`` is closed (a live edge calls at least once per
///   heartbeat interval, and a long poll is held for one interval at most), whether or not it ever finished its
///   HTTP/2 preface. gRPC's own idle handling only asks a client to leave (GOAWAY and a ping); a client that never
///   answers would keep its connection.
final class ConnectionBounds: Sendable {
    /// Descriptors kept free for the server's own files beyond the connections.
    static let reservedDescriptors = 256

    /// The most connections open at once.
    let maximum: Int
    /// Seconds without a byte from the client after which its connection is closed.
    let idleSeconds: Double
    private let open = Atomic<Int>(0)

    /// Bounds of at most `configured` connections, lowered to what the process's descriptor limit allows with
    /// ``reservedDescriptors`` kept free (the soft limit is raised to the hard one first), each closed after
    /// `idleSeconds` of silence.
    init(configured: Int, idleSeconds: Double) {
        maximum = max(1, min(configured, Self.raiseDescriptorLimit() - Self.reservedDescriptors))
        self.idleSeconds = idleSeconds
    }

    /// Connections open now.
    var count: Int { open.load(ordering: .relaxed) }

    /// Counts an accepted connection until it closes and watches it for silence; closes it at once beyond the
    /// limit. Runs on the connection's event loop.
    func admit(_ channel: any Channel) -> EventLoopFuture<Void> {
        let now = open.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { _ in self.open.subtract(1, ordering: .relaxed) }
        guard now <= maximum else {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        let timeout = TimeAmount.milliseconds(Int64(idleSeconds * 1000))
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers([IdleStateHandler(readTimeout: timeout), ClosingSilentConnection()], position: .first)
        }
    }

    /// Raises the soft limit on open descriptors to the hard limit; returns the soft limit in force.
    private static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// Closes its connection when the ``IdleStateHandler`` before it reports that nothing was read for its timeout.
private final class ClosingSilentConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case IdleStateHandler.IdleStateEvent.read? = event as? IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
