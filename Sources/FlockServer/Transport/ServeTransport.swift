import FlockCore
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import X509

/// How `serve` secures its listener.
public enum ServeTransportSecurity: Sendable {
    /// Plaintext HTTP/2 (`--tls off`).
    case plaintext
    /// TLS with the server's certificate; client certificates are requested and, when a client presents one,
    /// verified against `clientCertificateAuthorities` (none: client certificates are not requested).
    case tls(certificate: ServerCertificate, clientCertificateAuthorities: [Certificate])
}

/// The gRPC server transport of `serve`: HTTP/2 over TCP, in plaintext or TLS, that serves a rotated certificate
/// without a restart and hands each call the certificate its connection presented.
///
/// Why not grpc-swift-nio-transport's `HTTP2ServerTransport.Posix` with `.mTLS`: its TLS configuration knows only
/// "no client certificate" and "client certificate required", while an edge that has no certificate yet must reach
/// the enrolment call on the same port. So this transport builds the NIOSSL configuration itself, with
/// `.optionalVerification` (a presented certificate must verify against the CA; none at all is allowed) and a
/// per-handshake `sslContextCallback` that serves the certificate files as they are now (``ServerCertificate``), and
/// lets `HTTP2ServerTransport.Custom` run gRPC over the connections. `Custom` gives calls no transport-specific
/// context, so this wrapper records each connection's peer certificate when its handshake completes (before any
/// HTTP/2 frame can arrive) and sets `context.transportSpecific` to an `HTTP2ServerTransport.Posix.Context` with
/// `peerCertificate`, exactly as the Posix transport does: handlers and interceptors read it the same way.
public final class ServeTransport: ServerTransport {
    public typealias Bytes = GRPCNIOTransportBytes

    private let underlying: HTTP2ServerTransport.Custom<Listener>
    private let peers: PeerCertificates

    /// A transport that will listen on `address` (port 0 picks a free port).
    public init(
        address: GRPCNIOTransportHTTP2.SocketAddress, security: ServeTransportSecurity,
        config: HTTP2ServerTransport.Posix.Config = .defaults,
        eventLoopGroup: MultiThreadedEventLoopGroup = .singletonMultiThreadedEventLoopGroup
    ) {
        let peers = PeerCertificates()
        self.peers = peers
        underlying = HTTP2ServerTransport.Custom(
            listenerFactory: Listener(address: address, security: security, peers: peers, eventLoopGroup: eventLoopGroup),
            config: .init(
                compression: config.compression, connection: config.connection, http2: config.http2, rpc: config.rpc,
                channelDebuggingCallbacks: config.channelDebuggingCallbacks))
    }

    /// The bound address, once listening.
    /// - Throws: `RPCError` when the transport stopped (or failed to bind) before it listened.
    public var listeningAddress: GRPCNIOTransportHTTP2.SocketAddress {
        get async throws {
            guard let address = await underlying.listeningAddress else {
                throw RPCError(code: .unavailable, message: "the server is not listening (it could not bind, or it stopped)")
            }
            return address
        }
    }

    public func configure(context: GRPCServerContext) { underlying.configure(context: context) }

    public func listen(
        streamHandler: @escaping @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void
    ) async throws {
        let peers = self.peers
        try await underlying.listen { stream, context in
            var context = context
            if let certificate = peers.certificate(remotePeer: context.remotePeer, localPeer: context.localPeer) {
                var specific = HTTP2ServerTransport.Posix.Context()
                specific.peerCertificate = certificate
                context.transportSpecific = specific
            }
            await streamHandler(stream, context)
        }
    }

    public func beginGracefulShutdown() { underlying.beginGracefulShutdown() }
}

/// Binds the listening socket and puts TLS (when on) in front of gRPC on each accepted connection.
struct Listener: HTTP2ServerTransport.ListenerFactory {
    let address: GRPCNIOTransportHTTP2.SocketAddress
    let security: ServeTransportSecurity
    let peers: PeerCertificates
    let eventLoopGroup: any EventLoopGroup

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let sslContext: NIOSSLContext?
        switch security {
        case .plaintext:
            sslContext = nil
        case .tls(let certificate, let authorities):
            let current = certificate.current
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: current.chain.map { .certificate($0) }, privateKey: .privateKey(current.key))
            configuration.minimumTLSVersion = .tlsv12
            configuration.applicationProtocols = ["grpc-exp", "h2"]
            if authorities.isEmpty {
                configuration.certificateVerification = .none
            } else {
                configuration.certificateVerification = .optionalVerification
                configuration.trustRoots = .certificates(
                    try authorities.map { try NIOSSLCertificate(bytes: Array(CertificateAuthority.pem($0).utf8), format: .pem) })
            }
            configuration.sslContextCallback = { _, promise in promise.succeed(certificate.handshakeOverride) }
            sslContext = try NIOSSLContext(configuration: configuration)
        }
        let address: NIOCore.SocketAddress
        if let v4 = self.address.ipv4 {
            address = try NIOCore.SocketAddress(ipAddress: v4.host, port: v4.port)
        } else if let v6 = self.address.ipv6 {
            address = try NIOCore.SocketAddress(ipAddress: v6.host, port: v6.port)
        } else {
            throw RPCError(code: .invalidArgument, message: "serve listens on IPv4 or IPv6 addresses only, not \(self.address)")
        }
        let peers = self.peers
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { listenerConfigurator.configure(channel: $0) }
            .bind(to: address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        try channel.pipeline.syncOperations.addHandler(PeerCertificateRecorder(peers: peers))
                    }
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: sslContext == nil ? .none : .configured(requireALPN: false))
                }
            }
    }
}

/// The certificate each live TLS connection presented, by its peers' addresses as gRPC names them in a
/// `ServerContext` (`ipv4:10.0.0.5:50312`).
final class PeerCertificates: Sendable {
    // Guards the table; a connection's entry is removed when it closes, and only by its own channel.
    private let table = Mutex<[String: (channel: ObjectIdentifier, certificate: Certificate)]>([:])

    func record(_ certificate: Certificate, for channel: any Channel) {
        let key = Self.key(remote: channel.remoteAddress, local: channel.localAddress)
        let id = ObjectIdentifier(channel)
        table.withLock { $0[key] = (id, certificate) }
        channel.closeFuture.whenComplete { [self] _ in
            table.withLock { if $0[key]?.channel == id { $0[key] = nil } }
        }
    }

    func certificate(remotePeer: String, localPeer: String) -> Certificate? {
        table.withLock { $0[remotePeer + " " + localPeer]?.certificate }
    }

    var count: Int { table.withLock { $0.count } }

    /// gRPC's rendering of a connection's addresses (`ipv4:HOST:PORT`, `ipv6:[HOST]:PORT`).
    static func key(remote: NIOCore.SocketAddress?, local: NIOCore.SocketAddress?) -> String {
        func name(_ address: NIOCore.SocketAddress?) -> String {
            switch address {
            case .v4(let v4)?: return "ipv4:\(v4.host):\(address!.port!)"
            case .v6(let v6)?: return "ipv6:[\(v6.host)]:\(address!.port!)"
            default: return "<unknown>"
            }
        }
        return name(remote) + " " + name(local)
    }
}

/// Records the peer's certificate in ``PeerCertificates`` when the TLS handshake completes.
final class PeerCertificateRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let peers: PeerCertificates

    init(peers: PeerCertificates) { self.peers = peers }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent,
            let presented = try? context.pipeline.syncOperations.nioSSL_peerCertificate(),
            let certificate = try? Certificate(derEncoded: presented.toDERBytes())
        {
            peers.record(certificate, for: context.channel)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
