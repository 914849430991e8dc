import FlockCore
import FlockWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// `flock-server serve`: the coordinator behind gRPC over HTTP/2 (TLS by default, ``ServeTLS``; loopback by default), a
/// ticker that drives deadlines, timeouts and new rounds, run as services of one `ServiceGroup`: SIGTERM, SIGINT
/// and `admin stop` shut it down gracefully (no new rounds, held long polls answered, state on disk, in-flight
/// calls finished) and the process exits with status 0. The bound address is written to `DATA_DIR/serve.address` so that `flock-server admin
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
    ///   - metrics: what `configuration.metrics` exposes (`serve` passes the process's, ``ServerMetrics/bootstrap()``);
    ///     nil: a registry of this run's own.
    ///   - logger: where the server's events go (``Coordinator`` describes their metadata).
    /// - Throws: ``CoreError`` for bad configuration or files, `locked` when another process serves from the data
    ///   directory; transport errors when the address cannot be bound.
    public static func run(configuration: ServerConfiguration, waitForStart: Bool, metrics: ServerMetrics? = nil, logger: Logger) async throws {
        let folder = configuration.dataDirectory
        // Everything serve creates (checkpoints, journal, registry database, artifacts) is the owner's alone.
        umask(0o077)
        if try FileIO.createPrivateDirectory(folder) {
            logger.notice("\(folder): narrowed to mode 0700 (it holds models, updates and the admin token)")
        } else if !FileIO.isPrivateDirectory(folder) {
            logger.warning("other users can list \(folder) (a shared folder, or not yours to narrow); its files are 0600, but give the server a folder of its own")
        }
        let lock = try DirectoryLock(
            directory: folder,
            advice: "stop that server first (flock-server admin stop --data-dir \(folder)), or give another --data-dir")
        defer { lock.release() }
        let coordinator = try Coordinator(configuration: configuration, waitForStart: waitForStart, logger: logger)
        let (token, created) = try AdminToken.loadOrCreate(inFolder: folder)
        if created { logger.notice("admin token written to \(folder)/\(AdminToken.tokenFileName) (mode 0600); the server keeps only its hash") }
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
        let security = try configuration.tls.security(dataDirectory: folder, listen: configuration.listen) {
            $0.hasPrefix("warning: ") ? logger.warning("\($0.dropFirst(9))") : logger.notice("\($0)")
        }
        let enrolment = try deviceEnrolment(configuration, audit: audit, logger: logger)
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
        let metricsEndpoint = await MetricsEndpoint.serving(
            configuration, metrics: metrics, coordinator: coordinator, connections: connections, certificate: security.servedCertificate, log: { logger.info("\($0)") })
        var admin = AdminServiceHandler(coordinator: coordinator, tokens: adminTokens, audit: audit)
        admin.enrolment = enrolment
        let server = GRPCServer(
            transport: transport,
            services: [EdgeServiceHandler(coordinator: coordinator, enrolment: enrolment), admin],
            interceptors: (metricsEndpoint.map { [MetricsInterceptor(metrics: $0.metrics)] } ?? []) + [AdminAuthorization(tokens: adminTokens, audit: audit)]
                + (enrolment.map { [DeviceIdentityCheck(directory: $0.directory)] } ?? []))
        let ticker = RoundTicker(coordinator: coordinator) {
            let bound = try await transport.listeningAddress
            let port = bound.ipv4?.port ?? bound.ipv6?.port ?? configuration.listen.port
            let shown = ServerAddress(host: host, port: port)
            try FileIO.writeAtomically(
                Array((shown.description + "\n").utf8), to: folder + "/" + addressFileName, permissions: 0o600)
            logger.info("listening on \(shown) (data in \(folder), model \(configuration.model), strategy \(configuration.strategy))")
        }
        // A graceful shutdown stops the services in reverse order: the ticker drains the coordinator first, then
        // the endpoints finish their calls. Past the bound, what is left is cancelled (the state is on disk).
        var services = ServiceGroupConfiguration(
            services: [.init(service: GRPCServerService(server: server))] + (metricsEndpoint.map { [.init(service: $0)] } ?? [])
                + [.init(service: ticker)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        services.maximumGracefulShutdownDuration = .seconds(10)
        services.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: services)
        await coordinator.setStopHandler { Task { await group.triggerGracefulShutdown() } }
        defer {
            unlink(folder + "/" + addressFileName)
            unlink(folder + "/" + MetricsEndpoint.addressFileName)
        }
        try await group.run()
    }

    /// Device enrolment under `--enrolment certificate` (devices signed by the data directory's CA); nil, with a
    /// warning, under `--enrolment open`.
    /// - Throws: ``CoreError`` when the CA that signs device certificates is missing (an operator's own server
    ///   certificate without `flock-server init`), or the device directory cannot be opened.
    static func deviceEnrolment(_ configuration: ServerConfiguration, audit: AuditLog, logger: Logger) throws -> DeviceEnrolment? {
        guard configuration.enrolment == .certificate else {
            logger.warning("enrolment open: anyone who reaches \(configuration.listen) may register under any edge id; use it on loopback and in tests only")
            return nil
        }
        let folder = configuration.dataDirectory
        guard CertificateAuthority.exists(inDataDirectory: folder) else {
            throw CoreError(
                .invalidArgument,
                "--enrolment certificate signs device certificates with the CA in \(CertificateAuthority.folder(inDataDirectory: folder)), and there is none: run flock-server init --data-dir \(folder) (it keeps a server certificate you brought), or give --enrolment open")
        }
        let authority = try CertificateAuthority.load(fromDataDirectory: folder)
        if let clientCA = configuration.tls.clientCAPath,
            (try? CertificateAuthority.readCertificate(clientCA)) != authority.certificate
        {
            logger.warning("--tls-client-ca \(clientCA) is not the CA that signs device certificates (\(CertificateAuthority.certificatePath(inDataDirectory: folder))); enrolled edges will be refused at the handshake")
        }
        let directory = try DeviceDirectory(folder: folder)
        logger.notice("enrolment: only enrolled devices take part (flock-server admin enrol create issues tokens); \((try? directory.devices().filter(\.isActive).count) ?? 0) enrolled")
        return DeviceEnrolment(
            directory: directory, authority: authority, certificateLifetime: .seconds(configuration.deviceCertificateSeconds), audit: audit)
    }
}
