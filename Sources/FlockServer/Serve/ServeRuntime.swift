import FlockCore
import FlockWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// `flock-server serve`: the coordinator behind gRPC over HTTP/2 (plaintext; loopback by default), a
/// ticker that drives deadlines, timeouts and new rounds, and a clean shutdown on SIGINT, SIGTERM or
/// `admin stop`. The bound address is written to `DATA_DIR/serve.address` so that `flock-server admin
/// --data-dir DIR` finds the server.
public enum ServeRuntime {
    /// Name of the file that holds the bound `HOST:PORT`.
    public static let addressFileName = "serve.address"

    /// Runs the server until it is told to stop.
    /// - Parameters:
    ///   - configuration: what to serve.
    ///   - waitForStart: stay idle until `admin start`.
    ///   - log: receives one line per event.
    /// - Throws: ``CoreError`` for bad configuration or files; transport errors when the address cannot be bound.
    public static func run(configuration: ServerConfiguration, waitForStart: Bool, log: @escaping @Sendable (String) -> Void) async throws {
        let coordinator = try Coordinator(configuration: configuration, waitForStart: waitForStart, log: log)
        let folder = configuration.dataDirectory
        let (token, created) = try AdminToken.loadOrCreate(inFolder: folder)
        if created { log("admin token written to \(folder)/\(AdminToken.tokenFileName) (mode 0600); the server keeps only its hash") }

        let host = configuration.listen.host == "localhost" ? "127.0.0.1" : configuration.listen.host
        let address: GRPCNIOTransportHTTP2.SocketAddress
        if configuration.listen.isIPv6 {
            address = .ipv6(host: host, port: configuration.listen.port)
        } else if ServerAddress(host: host, port: 0).isIPv4 {
            address = .ipv4(host: host, port: configuration.listen.port)
        } else {
            throw CoreError(.invalidArgument, "listen: '\(configuration.listen.host)' is not an IP address; use e.g. 127.0.0.1:7070 or 0.0.0.0:7070")
        }
        let transport = HTTP2ServerTransport.Posix(
            address: address, transportSecurity: .plaintext,
            config: .defaults {
                $0.rpc.maxRequestPayloadSize = configuration.maximumMessageBytes
                // One process may run many edges over one connection (`flock-edge run --simulate-clients`),
                // each with a heartbeat in flight.
                $0.http2.maxConcurrentStreams = 16_384
            })
        let server = GRPCServer(
            transport: transport,
            services: [EdgeServiceHandler(coordinator: coordinator), AdminServiceHandler(coordinator: coordinator, token: token)])
        await coordinator.setStopHandler { server.beginGracefulShutdown() }

        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                log("signal \(number): shutting down (completed rounds are on disk)")
                server.beginGracefulShutdown()
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask {
                let bound = try await transport.listeningAddress
                let port = bound.ipv4?.port ?? bound.ipv6?.port ?? configuration.listen.port
                let shown = ServerAddress(host: host, port: port)
                try FileIO.writeAtomically(Array((shown.description + "\n").utf8), to: folder + "/" + addressFileName)
                log("listening on \(shown) (data in \(folder), model \(configuration.model), strategy \(configuration.strategy))")
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(100))
                    await coordinator.tick()
                }
            }
            // serve() returns after a graceful shutdown; the ticker goes with it.
            try await group.next()
            group.cancelAll()
            _ = try? await group.next()
        }
        unlink(folder + "/" + addressFileName)
    }
}
