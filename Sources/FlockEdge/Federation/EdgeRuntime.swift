import Logging
import ServiceLifecycle

/// `flock-edge run`: the edges of one process and their connection to the server, run as services of one
/// `ServiceGroup`. SIGTERM and SIGINT shut it down gracefully: every edge abandons the round it is in and leaves
/// the federation (``EdgeAgent/run()``), then the connection closes, and the process exits with status 0.
public enum EdgeRuntime {
    /// Runs `agents` over `connection` until SIGTERM or SIGINT.
    /// - Throws: ``CoreError`` when the server refuses an edge for good (the others stop too).
    public static func run(agents: [EdgeAgent], connection: EdgeConnection, logger: Logger) async throws {
        // Shut down in reverse order: the agents leave first, over a connection that is still open.
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: ConnectionService(connection: connection)), .init(service: AgentsService(agents: agents))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Each goodbye waits at most 5 s; past this bound what is left is cancelled.
        configuration.maximumGracefulShutdownDuration = .seconds(15)
        configuration.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: configuration).run()
    }
}

/// The connection, closed once the agents are done with it.
private struct ConnectionService: Service, CustomStringConvertible {
    let connection: EdgeConnection

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await connection.run()
        } onGracefulShutdown: {
            connection.close()
        }
    }

    var description: String { "connection" }
}

/// Every agent of the process; one refused for good ends them all.
private struct AgentsService: Service, CustomStringConvertible {
    let agents: [EdgeAgent]

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for agent in agents {
                group.addTask { try await agent.run() }
            }
            try await group.waitForAll()
        }
    }

    var description: String { "edges" }
}
