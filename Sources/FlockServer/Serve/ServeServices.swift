import FlockCore
import GRPCCore
import ServiceLifecycle

/// The gRPC server as a service: serves until the group shuts it down gracefully (in-flight calls finish, new
/// ones are refused).
struct GRPCServerService<Transport: ServerTransport>: Service, CustomStringConvertible {
    let server: GRPCServer<Transport>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }

    var description: String { "gRPC server" }
}

/// Drives the coordinator's clock: deadlines, timeouts and new rounds, ten times a second. On a graceful shutdown
/// it drains the coordinator (``Coordinator/drain()``) before the gRPC server stops, so that every held long poll
/// is answered and the server's state is on disk when the process exits.
struct RoundTicker: Service, CustomStringConvertible {
    let coordinator: Coordinator
    /// Runs once before the first tick (the server announces its address).
    let start: @Sendable () async throws -> Void

    func run() async throws {
        try await start()
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: .milliseconds(100))
                    await coordinator.tick()
                }
            }
        } catch is CancellationError {
            // Shut down gracefully, or cancelled: drain either way.
        }
        await coordinator.drain()
    }

    var description: String { "round ticker" }
}
