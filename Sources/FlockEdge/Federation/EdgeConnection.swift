import FlockCore
import FlockWire
import GRPCCore
import GRPCNIOTransportHTTP2

/// One gRPC connection to the server's edge service, shared by every edge agent in the process: HTTP/2
/// over TCP (plaintext) for `flock-edge run`, or any other gRPC client transport (the in-process one for
/// `flock-server simulate --transport grpc`). It reconnects by itself; calls made while the server is away
/// fail fast with `unavailable` so that the agent's own backoff decides when to try again.
public final class EdgeConnection: Sendable {
    /// The generated client.
    public let edge: any Flock_V1_EdgeService.ClientProtocol
    private let runClient: @Sendable () async throws -> Void
    private let shutdown: @Sendable () -> Void

    /// Creates a TCP connection (nothing is dialled until ``run()`` runs and a call is made).
    /// - Throws: ``CoreError/Code/invalidArgument`` when the address cannot be resolved.
    public convenience init(server: ServerAddress) throws(CoreError) {
        let transport = try server.clientTransport(config: .defaults {
            $0.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
        })
        self.init(transport: transport)
    }

    /// Creates a connection over `transport`.
    public init<Transport: ClientTransport>(transport: Transport) {
        let client = GRPCClient(transport: transport)
        edge = Flock_V1_EdgeService.Client(wrapping: client)
        runClient = { try await client.runConnections() }
        shutdown = { client.beginGracefulShutdown() }
    }

    /// Runs the connection until ``close()``; call it in a task of its own.
    public func run() async throws { try await runClient() }

    /// Finishes in-flight calls and closes.
    public func close() { shutdown() }

    /// Call options: fail fast when the server is away, give up after `seconds`.
    public static func options(timeout seconds: Double) -> CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = false
        options.timeout = .milliseconds(Int64(seconds * 1000))
        return options
    }
}
