import ArgumentParser
import FlockCompression
import FlockCore
import FlockServer
import FlockWire
import Foundation
import Logging

/// `flock-server serve`: the aggregation server.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the aggregation server: edges connect over gRPC, rounds of federated training run until stopped.",
        discussion: """
            Works with no config file: the 2nn model on 784 features and 10 classes (pixels scaled by 1/255), \
            FedAvg, rounds start as soon as --min-clients edges are connected and keep going until paused, \
            stopped or --rounds is reached. Values come from the embedded defaults, then --config, then the flags \
            below. After every round the global model, the strategy state and the round history are written \
            atomically to --data-dir; after a crash (kill -9 included) serve resumes from the last completed round \
            and edges reconnect by themselves.

            On first start an admin token is written to DATA_DIR/admin.token (mode 0600); the server keeps only \
            its hash. `flock-server admin --data-dir DIR ...` finds both the token and the bound address there.

            Example: flock-server serve --listen 127.0.0.1:7070 --data-dir ./flock-data --rounds 20 \
            --min-clients 10 --holdout data/mnist5k-test.csv
            """)

    @Option(help: ArgumentHelp("TOML config (commented example: server/flock-server.toml).", valueName: "FILE"))
    var config: String?

    @Option(
        help: ArgumentHelp("Address for edges and admin (port 0: any free port). [default: 127.0.0.1:7070]", valueName: "HOST:PORT"),
        transform: ArgumentParsers.address)
    var listen: ServerAddress?

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics at http://HOST:PORT/metrics, and nothing else there (port 0: any free port, written to DATA_DIR/metrics.address). [default: off]",
            valueName: "HOST:PORT"),
        transform: ArgumentParsers.address)
    var metrics: ServerAddress?

    @Option(
        help: ArgumentHelp(
            "certificate: only enrolled devices take part, each call bound to its device certificate over mutual TLS (admin enrol create, flock-edge enrol); open: anyone who reaches the server registers under any id (loopback and tests only). [default: certificate]",
            valueName: "certificate|open"))
    var enrolment: ServerConfiguration.Enrolment?

    @Option(
        name: .customLong("device-certificate-lifetime"),
        help: ArgumentHelp("How long a device certificate is valid; edges renew it after two thirds (a number and s, m, h or d). [default: 30d]", valueName: "DURATION"))
    var deviceCertificateLifetime: TimeSpan?

    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Checkpoint, global model, admin token. [default: ./flock-data]", valueName: "DIR"))
    var dataDir: String?

    @Option(help: ArgumentHelp("Model: 2nn | cnn | mlp:H1,H2,... | logreg. [default: 2nn]", valueName: "MODEL"))
    var model: String?

    @Option(parsing: .unconditional, help: "Rounds to complete; 0 for no limit. [default: 0]")
    var rounds: Int?

    @Option(name: .customLong("clients-per-round"), parsing: .unconditional, help: "Updates a round aggregates (K); 0 uses --fraction. [default: 0]")
    var clientsPerRound: Int?

    @Option(parsing: .unconditional, help: "Share of connected edges a round aims for, when --clients-per-round is 0. [default: 1.0]")
    var fraction: Double?

    @Option(name: .customLong("min-clients"), parsing: .unconditional, help: "Edges needed to start a round, and updates needed at the deadline. [default: 2]")
    var minClients: Int?

    @Option(
        help: ArgumentHelp("Server strategy: \(AggregationStrategy.syntax). [default: fedavg]", valueName: "NAME"),
        transform: ArgumentParsers.strategy)
    var strategy: AggregationStrategy?

    @Option(help: ArgumentHelp("Server holdout CSV: evaluate every new global model on it.", valueName: "FILE.csv"))
    var holdout: String?

    @Option(
        name: .customLong("input-features"), parsing: .unconditional,
        help: "Features per row of the edges' data; inferred from --holdout when not given. [default: 784]")
    var inputFeatures: Int?

    @Option(parsing: .unconditional, help: "Classes (labels 0 to N-1); inferred from --holdout when not given. [default: 10]")
    var classes: Int?

    @Option(
        help: ArgumentHelp(
            "input: every feature divided by --input-scale; standardize: per-feature mean and deviation fitted from the edges' rows in a first statistics round (under secure aggregation the server learns only their totals). [default: input]",
            valueName: "input|standardize"))
    var scale: ServerConfiguration.Scale?

    @Option(name: .customLong("input-scale"), parsing: .unconditional, help: "With --scale input: every feature is divided by this; 0 for rows as they are. [default: 255]")
    var inputScale: Double?

    @Option(parsing: .unconditional, help: "Local epochs per round. [default: 1]")
    var epochs: Int?

    @Option(parsing: .unconditional, help: "Local mini-batch size. [default: 10]")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Local learning rate. [default: 0.05]")
    var lr: Double?

    @Option(parsing: .unconditional, help: "Seed of the initial weights and of selection. [default: 0]")
    var seed: UInt64?

    @Option(name: .customLong("heartbeat"), parsing: .unconditional, help: "Seconds between edge heartbeats. [default: 5]")
    var heartbeatSeconds: Double?

    @Option(name: .customLong("edge-timeout"), parsing: .unconditional, help: "Seconds without contact after which an edge is gone. [default: 30]")
    var edgeTimeout: Double?

    @Option(name: .customLong("round-timeout"), parsing: .unconditional, help: "Seconds a round waits for updates. [default: 600]")
    var roundTimeout: Double?

    @Option(
        name: .customLong("max-message-bytes"), parsing: .unconditional,
        help: "Largest gRPC message accepted; a larger one is refused with resource exhausted and a message naming this limit. [default: 4194304]")
    var maxMessageBytes: Int?

    @Flag(name: .customLong("wait-for-start"), help: "Run no rounds until `flock-server admin start`.")
    var waitForStart = false

    @Option(
        name: .customLong("secure-aggregation"),
        help: ArgumentHelp("The server learns only the sum of the updates (off prints a warning). [default: on]", valueName: "on|off"))
    var secureAggregation: Switch?

    @Option(
        name: .customLong("secure-graph"),
        help: ArgumentHelp("secagg+: k = 2 log2(n) neighbours; complete: everyone. [default: secagg+]", valueName: "GRAPH"))
    var secureGraph: SecureGraph?

    @Option(name: .customLong("secure-threshold"), parsing: .unconditional, help: "Shares that reconstruct a secret; 0 for two thirds of a neighbourhood. [default: 0]")
    var secureThreshold: Int?

    @Option(help: CodecHelp.codec, transform: ArgumentParsers.codec)
    var codec: CodecSpec?

    @OptionGroup(title: "Logging")
    var logging: LogOptions

    @OptionGroup(title: "Transport security")
    var transportSecurity: ServeTLSOptions

    @Option(name: .customLong("download-codec"), help: CodecHelp.downloadCodec, transform: ArgumentParsers.download)
    var downloadCodec: ModelDownload?

    /// Why the configuration could not be resolved.
    enum ResolutionFailure: Error {
        /// The --config file is missing or malformed: exit 1.
        case file(CoreError)
        /// A value (from the flags, or the combination with the file's) is out of range: exit 64.
        case value(CoreError)
    }

    /// The configuration: the embedded defaults, then --config, then the flags, then validated.
    func resolved() throws(ResolutionFailure) -> ServerConfiguration {
        var c = ServerConfiguration()
        var fileKeys = Set<String>()
        if let config {
            do {
                let file = try ConfigFile(path: config)
                c = try ServerConfiguration(file: file)
                fileKeys = Set(file.entries.keys)
            } catch { throw .file(error) }
        }
        if let listen { c.listen = listen }
        transportSecurity.apply(to: &c.tls)
        if let metrics { c.metrics = metrics }
        if let enrolment { c.enrolment = enrolment }
        if let deviceCertificateLifetime { c.deviceCertificateSeconds = deviceCertificateLifetime.seconds }
        if let dataDir { c.dataDirectory = dataDir }
        if let model { c.model = model }
        if let rounds { c.rounds = rounds }
        if let clientsPerRound { c.clientsPerRound = clientsPerRound }
        if let fraction { c.fraction = fraction }
        if let minClients { c.minimumClients = minClients }
        if let strategy { c.strategy = strategy }
        if let holdout { c.holdoutPath = holdout }
        if let scale { c.scale = scale }
        if let inputScale { c.inputScale = inputScale }
        // The shape of the rows, when neither a flag nor the file gives it, is the holdout's.
        if let path = c.holdoutPath, inputFeatures == nil && !fileKeys.contains("input_features") || classes == nil && !fileKeys.contains("classes") {
            let rows: Dataset
            do { rows = try Dataset.loadCSV(path: path) } catch { throw .file(error) }
            if inputFeatures == nil, !fileKeys.contains("input_features") { c.inputFeatures = rows.featureCount }
            if classes == nil, !fileKeys.contains("classes") { c.classes = max(2, rows.classCount) }
        }
        if let inputFeatures { c.inputFeatures = inputFeatures }
        if let classes { c.classes = classes }
        if let epochs { c.epochs = epochs }
        if let batch { c.batchSize = batch }
        if let lr { c.learningRate = lr }
        if let seed { c.seed = seed }
        if let heartbeatSeconds { c.heartbeatSeconds = heartbeatSeconds }
        if let edgeTimeout { c.edgeTimeout = edgeTimeout }
        if let roundTimeout { c.roundTimeout = roundTimeout }
        if let maxMessageBytes { c.maximumMessageBytes = maxMessageBytes }
        if let secureAggregation { c.secureAggregation = secureAggregation.isOn }
        if let secureGraph { c.secureGraph = secureGraph.rawValue }
        if let secureThreshold { c.secureThreshold = secureThreshold }
        if let codec { c.codec = codec }
        if let downloadCodec { c.downloadCodec = downloadCodec }
        do { try c.validate() } catch { throw .value(error) }
        return c
    }

    func validate() throws {
        // A value out of range is a usage error (exit 64); a bad --config file is reported by run() (exit 1).
        do { _ = try resolved() } catch {
            if case .value(let error) = error { throw ValidationError(error.message) }
        }
    }

    func run() async throws {
        let configuration: ServerConfiguration
        do { configuration = try resolved() } catch {
            switch error {
            case .file(let error), .value(let error):
                StandardError.line("error: \(error.message)")
                throw ExitCode(1)
            }
        }
        let logger = logging.bootstrap(label: "flock.server")
        if !configuration.secureAggregation {
            logger.warning("secure aggregation is off: the server sees every edge's update in the clear")
        }
        do {
            // The process's metrics system, bootstrapped once, only when they are exposed.
            let metrics = configuration.metrics == nil ? nil : ServerMetrics.bootstrap()
            try await ServeRuntime.run(configuration: configuration, waitForStart: waitForStart, metrics: metrics, logger: logger)
        } catch let error as CoreError {
            StandardError.line("error: \(error.message)")
            throw ExitCode(1)
        } catch {
            StandardError.line("error: \(error)")
            throw ExitCode(1)
        }
    }
}

extension ServerConfiguration.Scale: ExpressibleByArgument {}
extension ServerConfiguration.Enrolment: ExpressibleByArgument {}
