import FlockCore
import FlockWire
import GRPCCore
import GRPCNIOTransportHTTP2

/// One gRPC connection (HTTP/2 over TCP, plaintext) to the server's edge service, shared by every edge
/// agent in the process. It reconnects by itself; calls made while the server is away fail fast with
/// `unavailable` so that the agent's own backoff decides when to try again.
public final class EdgeConnection: Sendable {
    /// The generated client.
    public let edge: Flock_V1_EdgeService.Client<HTTP2ClientTransport.Posix>
    private let client: GRPCClient<HTTP2ClientTransport.Posix>

    /// Creates the connection (nothing is dialled until ``run()`` runs and a call is made).
    /// - Throws: ``CoreError/Code/invalidArgument`` when the address cannot be resolved.
    public init(server: ServerAddress) throws(CoreError) {
        let transport = try server.clientTransport(config: .defaults {
            $0.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
        })
        client = GRPCClient(transport: transport)
        edge = Flock_V1_EdgeService.Client(wrapping: client)
    }

    /// Runs the connection until ``close()``; call it in a task of its own.
    public func run() async throws { try await client.runConnections() }

    /// Finishes in-flight calls and closes.
    public func close() { client.beginGracefulShutdown() }

    /// Call options: fail fast when the server is away, give up after `seconds`.
    public static func options(timeout seconds: Double) -> CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = false
        options.timeout = .milliseconds(Int64(seconds * 1000))
        return options
    }
}
