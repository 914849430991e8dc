import FlockCore
import FlockWire
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import X509

/// `serve --metrics HOST:PORT`: an HTTP server (Hummingbird) that answers `GET /metrics` with ``ServerMetrics`` in
/// the Prometheus text format, and every other path with 404. It is off unless an address is given, and listens
/// on that address only (plain HTTP: bind it to loopback or a network only the scraper reaches).
///
/// A `Service`: it runs until it is cancelled or shut down gracefully.
public struct MetricsEndpoint: Service {
    /// Name of the file in the data directory that holds the bound `HOST:PORT` while the endpoint runs.
    public static let addressFileName = "metrics.address"
    /// The media type of the text format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Where to listen (port 0: any free port).
    public let address: ServerAddress
    /// What to expose.
    public let metrics: ServerMetrics
    /// Brings the metrics up to date before each scrape (reads the coordinator).
    public let refresh: @Sendable () async -> Void
    /// Told the address once the endpoint listens (with the port it got).
    public let onListening: @Sendable (ServerAddress) async -> Void
    /// The HTTP server's own log.
    public let logger: Logger

    /// An endpoint for `metrics` on `address`.
    public init(
        address: ServerAddress, metrics: ServerMetrics, logger: Logger = Logger(label: "flock.metrics"),
        refresh: @escaping @Sendable () async -> Void = {}, onListening: @escaping @Sendable (ServerAddress) async -> Void = { _ in }
    ) {
        self.address = address
        self.metrics = metrics
        self.refresh = refresh
        self.onListening = onListening
        self.logger = logger
    }

    /// Serves until cancelled or shut down gracefully.
    /// - Throws: ``CoreError`` when the address cannot be bound.
    public func run() async throws {
        let router = Router()
        let metrics = self.metrics
        let refresh = self.refresh
        router.get("metrics") { _, _ -> Response in
            await refresh()
            return Response(
                status: .ok, headers: [.contentType: Self.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        let host = address.host == "localhost" ? "127.0.0.1" : address.host
        let onListening = self.onListening
        let application = Application(
            router: router,
            // A scraper asks every few seconds; a connection silent for a minute is closed.
            server: .http1(configuration: .init(idleTimeout: .seconds(60))),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: address.port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(64)),
            onServerRunning: { channel in
                await onListening(ServerAddress(host: host, port: channel.localAddress?.port ?? address.port))
            },
            logger: logger)
        do {
            try await application.run()
        } catch let error as IOError {
            throw CoreError(.io, "metrics: cannot listen on \(address) (\(error.description)); give --metrics a free port, or 0 for any")
        }
    }
}

extension MetricsEndpoint {
    /// The endpoint `configuration.metrics` asks for (nil when it asks for none): `metrics` (a registry of its own
    /// when nil), counting from the coordinator's state now, brought up to date from it at each scrape; its bound
    /// address is written to ``addressFileName`` in the data directory (mode 0600) and logged. With TLS, each scrape
    /// also reads when the served `certificate` expires (as it is on disk now: a rotated one counts at once).
    static func serving(
        _ configuration: ServerConfiguration, metrics: ServerMetrics?, coordinator: Coordinator, connections: ConnectionBounds,
        certificate: ServerCertificate? = nil, log: @escaping @Sendable (String) -> Void
    ) async -> MetricsEndpoint? {
        let file = configuration.dataDirectory + "/" + addressFileName
        unlink(file)
        guard let address = configuration.metrics else { return nil }
        let metrics = metrics ?? ServerMetrics()
        await metrics.begin(with: coordinator)
        // The HTTP server's own lines: only its warnings and errors (serve logs the address itself).
        var logger = Logger(label: "flock.metrics")
        logger.logLevel = .warning
        return MetricsEndpoint(
            address: address, metrics: metrics, logger: logger,
            refresh: {
                if let certificate {
                    certificate.reloadIfChanged(minimumInterval: .seconds(1))
                    metrics.setCertificateExpiry(certificate.certificate.notValidAfter)
                }
                await metrics.collect(from: coordinator, openConnections: connections.count)
            },
            onListening: { bound in
                do {
                    try FileIO.writeAtomically(Array((bound.description + "\n").utf8), to: file, permissions: 0o600)
                } catch {
                    log("error: metrics: cannot write \(file): \((error as? CoreError)?.message ?? "\(error)")")
                }
                log("metrics on http://\(bound)/metrics")
            })
    }
}

extension ServeTransportSecurity {
    /// The certificate the server presents; nil in plaintext.
    var servedCertificate: ServerCertificate? {
        if case .tls(let certificate, _) = self { return certificate }
        return nil
    }
}
