import FlockCore
import FlockWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// `flock-server serve`: the coordinator behind gRPC over HTTP/2 (plaintext; loopback by default), a
/// ticker that drives deadlines, timeouts and new rounds, and a clean shutdown on SIGINT, SIGTERM or
/// `admin stop`. The bound address is written to `DATA_DIR/serve.address` so that `flock-server admin
/// --data-dir DIR` finds the server.
///
/// The data directory is the server's alone: it is locked (``DirectoryLock``) for as long as the server runs,
/// so a second server on it stops at once instead of overwriting the first one's files; it is mode 0700 and
/// every file the server creates is 0600 (the process's umask is 077), since the open round's journal holds
/// updates in the clear when secure aggregation is off, and the folder holds the models and the admin token.
public enum ServeRuntime {
    /// Name of the file that holds the bound `HOST:PORT`.
    public static let addressFileName = "serve.address"

    /// Runs the server until it is told to stop.
    /// - Parameters:
    ///   - configuration: what to serve.
    ///   - waitForStart: stay idle until `admin start`.
    ///   - log: receives one line per event.
    /// - Throws: ``CoreError`` for bad configuration or files, `locked` when another process serves from the data
    ///   directory; transport errors when the address cannot be bound.
    public static func run(configuration: ServerConfiguration, waitForStart: Bool, log: @escaping @Sendable (String) -> Void) async throws {
        let folder = configuration.dataDirectory
        // Everything serve creates (checkpoints, journal, registry database, artifacts) is the owner's alone.
        umask(0o077)
        if try FileIO.createPrivateDirectory(folder) {
            log("\(folder): narrowed to mode 0700 (it holds models, updates and the admin token)")
        } else if !FileIO.isPrivateDirectory(folder) {
            log("warning: other users can list \(folder) (a shared folder, or not yours to narrow); its files are 0600, but give the server a folder of its own")
        }
        let lock = try DirectoryLock(
            directory: folder,
            advice: "stop that server first (flock-server admin stop --data-dir \(folder)), or give another --data-dir")
        defer { lock.release() }
        let coordinator = try Coordinator(configuration: configuration, waitForStart: waitForStart, log: log)
        let (token, created) = try AdminToken.loadOrCreate(inFolder: folder)
        if created { log("admin token written to \(folder)/\(AdminToken.tokenFileName) (mode 0600); the server keeps only its hash") }
        let adminTokens = try AdminTokenStore(directory: folder, initial: token)
        let audit = AuditLog(directory: folder)

        let host = configuration.listen.host == "localhost" ? "127.0.0.1" : configuration.listen.host
        let address: GRPCNIOTransportHTTP2.SocketAddress
        if configuration.listen.isIPv6 {
            address = .ipv6(host: host, port: configuration.listen.port)
        } else if ServerAddress(host: host, port: 0).isIPv4 {
            address = .ipv4(host: host, port: configuration.listen.port)
        } else {
            throw CoreError(.invalidArgument, "listen: '\(configuration.listen.host)' is not an IP address; use e.g. 127.0.0.1:7070 or 0.0.0.0:7070")
        }
        // Silence allowed: an edge timeout, and always more than a long poll's hold (one heartbeat interval).
        let connections = ConnectionBounds(
            configured: configuration.maximumConnections, idleSeconds: max(configuration.edgeTimeout, 2 * configuration.heartbeatSeconds))
        let security = try configuration.tls.security(dataDirectory: folder, listen: configuration.listen, log: log)
        let transport = ServeTransport(
            address: address, security: security,
            config: .defaults {
                $0.rpc.maxRequestPayloadSize = configuration.maximumMessageBytes
                // One process may run many edges over one connection (`flock-edge run --simulate-clients`),
                // each with a heartbeat in flight.
                $0.http2.maxConcurrentStreams = 16_384
                // A connection without a call for an edge timeout is asked to go (a live edge calls at least
                // every heartbeat); one that sends nothing at all, or goes beyond the bound, is closed.
                $0.connection.maxIdleTime = .milliseconds(Int64(connections.idleSeconds * 1000))
                $0.channelDebuggingCallbacks.onAcceptTCPConnection = { connections.admit($0) }
                $0.channelDebuggingCallbacks.onAcceptHTTP2Stream = OversizedMessageGuard.installer(limit: configuration.maximumMessageBytes)
            })
        let server = GRPCServer(
            transport: transport,
            services: [EdgeServiceHandler(coordinator: coordinator), AdminServiceHandler(coordinator: coordinator, tokens: adminTokens, audit: audit)],
            interceptors: [AdminAuthorization(tokens: adminTokens, audit: audit)])
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
                try FileIO.writeAtomically(
                    Array((shown.description + "\n").utf8), to: folder + "/" + addressFileName, permissions: 0o600)
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
