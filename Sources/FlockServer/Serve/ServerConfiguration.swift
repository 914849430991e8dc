import FlockCompression
import FlockCore
import FlockRegistry
import FlockWire

/// Everything `flock-server serve` needs, with embedded defaults so that it runs with no config file:
/// the `2nn` model on 784 features and 10 classes (MNIST, pixels scaled by 1/255), FedAvg, rounds that
/// start as soon as `min_clients` edges are connected and go on until paused, stopped or `rounds` is reached.
///
/// Read from a TOML file (``ConfigFile``; keys below, commented example in `server/flock-server.toml`), then
/// overridden by command-line flags, then checked by ``validate()``.
public struct ServerConfiguration: Sendable, Equatable {
    /// Address for edges and the admin API.
    public var listen = ServerAddress(host: "127.0.0.1", port: 7070)
    /// TLS (the default, ``ServeTLS``) or plaintext, and which certificate.
    public var tls = ServeTLS()
    /// Address of the Prometheus endpoint (`GET /metrics`, ``MetricsEndpoint``); nil: none.
    public var metrics: ServerAddress?
    /// Who may be an edge.
    public enum Enrolment: String, Sendable, CaseIterable {
        /// Only enrolled devices: every edge call is made over mutual TLS with a device certificate the server
        /// issued (`flock-server admin enrol create`, `flock-edge enrol`), and is bound to the id it carries.
        case certificate
        /// Anyone who can reach the server may register under any id (loopback and tests only).
        case open
    }
    /// Who may be an edge.
    public var enrolment = Enrolment.certificate
    /// Seconds a device certificate is valid (edges renew it after two thirds of it).
    public var deviceCertificateSeconds: Double = 30 * 86_400
    /// Round checkpoint, global model, admin token hash.
    public var dataDirectory = "./flock-data"
    /// Model preset (`2nn`, `cnn`, `mlp:…`, `logreg`).
    public var model = "2nn"
    /// Features per row.
    public var inputFeatures = 784
    /// Classes.
    public var classes = 10
    /// Rows are divided by this before use (stored in the model file, applied by every edge); 0: unscaled.
    /// Used when ``scale`` is ``Scale/input``.
    public var inputScale: Double = 255
    /// How the edges' rows are scaled before the model sees them.
    public enum Scale: String, Sendable, CaseIterable {
        /// Every feature divided by ``inputScale`` (0: rows as they are).
        case input
        /// Per-feature standardization, fitted from the federation's rows by a first statistics round under
        /// secure aggregation: the server learns only the total count, sums and sums of squares.
        case standardize
    }
    /// How rows are scaled (stored in the model file, applied by every edge).
    public var scale = Scale.input
    /// Server holdout CSV for centralized evaluation after every round; nil: none.
    public var holdoutPath: String?
    /// Rounds to complete; 0: no limit.
    public var rounds = 0
    /// Updates a round aggregates (K); 0: `fraction` of the connected edges.
    public var clientsPerRound = 0
    /// Share of connected edges a round aims for when `clientsPerRound` is 0.
    public var fraction = 1.0
    /// Fewest connected edges to start a round, and fewest updates to aggregate at the deadline.
    public var minimumClients = 2
    /// Extra share of edges selected beyond the target (Bonawitz et al. 2019).
    public var overSelection = 0.3
    /// Seconds from plan to deadline.
    public var roundTimeout = 600.0
    /// How often edges heartbeat, in seconds; also the longest an idle edge waits on the server for work.
    public var heartbeatSeconds = 5.0
    /// Seconds without contact after which an edge is gone.
    public var edgeTimeout = 30.0
    /// Server strategy.
    public var strategy = AggregationStrategy.fedAvg
    /// Ask selected edges to evaluate the global model on their held-out split.
    public var federatedEvaluation = true
    /// Local training sent in every plan (μ comes from the strategy).
    public var epochs = 1
    /// Mini-batch size.
    public var batchSize = 10
    /// Local SGD learning rate.
    public var learningRate = 0.05
    /// L2 bound on each local step's gradient; 0: none.
    public var clipNorm = 0.0
    /// Seed of the initial weights and of selection.
    public var seed: UInt64 = 0
    /// Largest gRPC message the transport accepts, in bytes (chunks are at most 1 MiB).
    public var maximumMessageBytes = 4 << 20
    /// Most examples one edge weighs in an average: a larger count (at registration or with an update) is
    /// weighted as this many, so one edge that claims a huge count cannot outweigh the rest.
    public var maximumExamples = 10_000
    /// Largest L2 norm of one plain update: a longer one is scaled down to it before it is added (0: no bound).
    /// Under secure aggregation the server cannot see one update; the codec's clip bounds each value instead.
    public var maximumUpdateNorm = 100.0
    /// Most connections open at once (also kept below the process's descriptor limit, with a reserve for the
    /// checkpoint, journal and registry files); a connection beyond it is closed at once.
    public var maximumConnections = 20_000
    /// Idle heartbeats held as long polls at once (0: twice what the next round selects, at least 16);
    /// beyond it, edges are given pace-steered retry windows.
    public var longPollCapacity = 0
    /// Secure aggregation of every round (Bonawitz et al. 2017 with SecAgg+ neighbourhoods): the server
    /// learns only the sum of the updates.
    public var secureAggregation = true
    /// `secagg+` (k = 2 log2 n neighbours) or `complete`.
    public var secureGraph = "secagg+"
    /// Reconstruction threshold; 0 for two thirds of a neighbourhood.
    public var secureThreshold = 0
    /// Seconds each key phase (advertise, share, unmask) waits for edges before it closes without them.
    public var securePhaseSeconds = 20.0
    /// The update codec; nil for the default of the secure-aggregation setting (`fixed32` on, `f32` off).
    public var codec: CodecSpec?
    /// The first secure round's range of every block under `q{b}`/`rot+q{b}` (later rounds adapt it).
    public var codecInitialRange: Float = 0.01

    /// How the global model travels to the edges (`f32`: the model file as it is).
    public var downloadCodec = ModelDownload.f32

    /// The model registry's gate, shadow share and analysis settings (`registry.*` keys).
    public var promotion = PromotionSettings()

    /// The codec rounds use.
    public var roundCodec: CodecSpec { codec ?? (secureAggregation ? .fixed32 : .f32) }

    /// The defaults.
    public init() {}

    /// Every key a config file may hold.
    public static let keys: Set<String> = [
        "listen", "data_dir", "model", "input_features", "classes", "input_scale", "holdout", "rounds",
        "metrics",
        "clients_per_round", "fraction", "min_clients", "over_selection", "round_timeout", "heartbeat_seconds",
        "edge_timeout", "strategy", "federated_evaluation", "seed", "max_message_bytes", "long_poll_capacity",
        "max_examples", "max_update_norm", "max_connections", "scale", "enrolment", "device_certificate_seconds",
        "local.epochs", "local.batch", "local.lr", "local.clip",
        "secure_aggregation", "secure_graph", "secure_threshold", "secure_phase_seconds", "codec", "codec_initial_range",
        "download_codec",
        "registry.min_accuracy", "registry.max_loss", "registry.max_drop", "registry.shadow_share", "registry.margin",
        "registry.alpha", "registry.min_pairs", "registry.min_edges", "registry.looks", "registry.max_error_rate",
        "registry.max_latency_p99_ms",
    ]

    /// The defaults overridden by the keys of `file`.
    /// - Throws: ``CoreError/Code/invalidData`` for an unknown key or a value of the wrong type.
    public init(file: ConfigFile) throws(CoreError) {
        self.init()
        if let unknown = file.unusedKeys(known: Self.keys).first {
            throw CoreError(.invalidData, unknown + " (known keys: \(Self.keys.sorted().joined(separator: ", ")))")
        }
        if let v = try file.string("listen") { listen = try ServerAddress(parsing: v) }
        if let v = try file.string("metrics") { metrics = v.isEmpty ? nil : try ServerAddress(parsing: v) }
        if let v = try file.string("data_dir") { dataDirectory = v }
        if let v = try file.string("model") { model = v }
        if let v = try file.integer("input_features") { inputFeatures = v }
        if let v = try file.integer("classes") { classes = v }
        if let v = try file.number("input_scale") { inputScale = v }
        if let v = try file.string("scale") {
            guard let chosen = Scale(rawValue: v) else {
                throw CoreError(.invalidData, "\(file.source): scale must be input or standardize, not '\(v)'")
            }
            scale = chosen
        }
        if let v = try file.string("holdout") { holdoutPath = v.isEmpty ? nil : v }
        if let v = try file.integer("rounds") { rounds = v }
        if let v = try file.integer("clients_per_round") { clientsPerRound = v }
        if let v = try file.number("fraction") { fraction = v }
        if let v = try file.integer("min_clients") { minimumClients = v }
        if let v = try file.number("over_selection") { overSelection = v }
        if let v = try file.number("round_timeout") { roundTimeout = v }
        if let v = try file.number("heartbeat_seconds") { heartbeatSeconds = v }
        if let v = try file.number("edge_timeout") { edgeTimeout = v }
        if let v = try file.string("strategy") { strategy = try AggregationStrategy(parsing: v) }
        if let v = try file.boolean("federated_evaluation") { federatedEvaluation = v }
        if let v = try file.integer("seed") {
            guard v >= 0 else { throw CoreError(.invalidData, "\(file.source): seed must not be negative") }
            seed = UInt64(v)
        }
        if let v = try file.integer("max_message_bytes") { maximumMessageBytes = v }
        if let v = try file.integer("long_poll_capacity") { longPollCapacity = v }
        if let v = try file.integer("max_examples") { maximumExamples = v }
        if let v = try file.number("max_update_norm") { maximumUpdateNorm = v }
        if let v = try file.integer("max_connections") { maximumConnections = v }
        if let v = try file.string("enrolment") {
            guard let chosen = Enrolment(rawValue: v) else {
                throw CoreError(.invalidData, "\(file.source): enrolment must be certificate or open, not '\(v)'")
            }
            enrolment = chosen
        }
        if let v = try file.number("device_certificate_seconds") { deviceCertificateSeconds = v }
        if let v = try file.integer("local.epochs") { epochs = v }
        if let v = try file.integer("local.batch") { batchSize = v }
        if let v = try file.number("local.lr") { learningRate = v }
        if let v = try file.number("local.clip") { clipNorm = v }
        if let v = try file.boolean("secure_aggregation") { secureAggregation = v }
        if let v = try file.string("secure_graph") { secureGraph = v }
        if let v = try file.integer("secure_threshold") { secureThreshold = v }
        if let v = try file.number("secure_phase_seconds") { securePhaseSeconds = v }
        if let v = try file.string("codec") {
            do { codec = try CodecSpec(parsing: v) } catch { throw CoreError(.invalidData, "\(file.source): \(error.message)") }
        }
        if let v = try file.number("codec_initial_range") { codecInitialRange = Float(v) }
        if let v = try file.string("download_codec") {
            do { downloadCodec = try ModelDownload(parsing: v) } catch { throw CoreError(.invalidData, "\(file.source): \(error.message)") }
        }
        if let v = try file.number("registry.min_accuracy") { promotion.gate.minimumAccuracy = v }
        if let v = try file.number("registry.max_loss") { promotion.gate.maximumLoss = v }
        if let v = try file.number("registry.max_drop") { promotion.gate.maximumDrop = v < 0 ? nil : v }
        if let v = try file.number("registry.shadow_share") { promotion.shadowShare = v }
        if let v = try file.number("registry.margin") { promotion.analysis.margin = v }
        if let v = try file.number("registry.alpha") { promotion.analysis.alpha = v }
        if let v = try file.integer("registry.min_pairs") { promotion.analysis.minimumPairs = v }
        if let v = try file.integer("registry.min_edges") { promotion.analysis.minimumEdges = v }
        if let v = try file.integer("registry.looks") { promotion.analysis.looks = v }
        if let v = try file.number("registry.max_error_rate") { promotion.analysis.maximumErrorRate = v }
        if let v = try file.number("registry.max_latency_p99_ms") { promotion.analysis.maximumLatencyP99Ms = v > 0 ? v : nil }
    }

    /// Checks every value's range.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the key and the allowed range.
    public func validate() throws(CoreError) {
        try tls.validate(listen: listen)
        func require(_ ok: Bool, _ message: String) throws(CoreError) {
            if !ok { throw CoreError(.invalidArgument, message) }
        }
        try require(inputFeatures >= 1 && inputFeatures <= 1 << 24, "input_features must be 1-16777216")
        try require(classes >= 2 && classes <= 1 << 16, "classes must be 2-65536")
        try require(inputScale >= 0 && inputScale.isFinite, "input_scale must be 0 (no scaling) or positive")
        try require(rounds >= 0, "rounds must be 0 (no limit) or positive")
        try require(clientsPerRound >= 0 && clientsPerRound <= 100_000, "clients_per_round must be 0-100000 (0: use fraction)")
        try require(fraction > 0 && fraction <= 1, "fraction must be in (0, 1]")
        try require(minimumClients >= 1 && minimumClients <= 100_000, "min_clients must be 1-100000")
        try require(clientsPerRound == 0 || clientsPerRound >= minimumClients, "clients_per_round must be at least min_clients")
        try require(overSelection >= 0 && overSelection <= 10, "over_selection must be 0-10 (0.3 = 30% extra)")
        try require(roundTimeout > 0 && roundTimeout <= 7 * 86_400, "round_timeout must be in (0, 604800] seconds")
        try require(heartbeatSeconds >= 0.05 && heartbeatSeconds <= 3_600, "heartbeat_seconds must be 0.05-3600")
        try require(edgeTimeout > heartbeatSeconds, "edge_timeout must be longer than heartbeat_seconds")
        try require(maximumExamples >= 1 && maximumExamples <= 1 << 40, "max_examples must be 1-1099511627776")
        try require(maximumUpdateNorm >= 0 && maximumUpdateNorm.isFinite, "max_update_norm must be 0 (no bound) or positive")
        try require(maximumConnections >= 1 && maximumConnections <= 10_000_000, "max_connections must be 1-10000000")
        try require(
            deviceCertificateSeconds >= 60 && deviceCertificateSeconds <= 366 * 86_400,
            "device_certificate_seconds must be 60 (a minute) to 31622400 (a year)")
        try require(
            enrolment == .open || tls.mode == .on,
            "--enrolment certificate binds edges to device certificates, which need TLS: drop --tls off, or give --enrolment open (anyone may register under any id: loopback and tests only)")
        try require(longPollCapacity >= 0 && longPollCapacity <= 1_000_000, "long_poll_capacity must be 0 (automatic) to 1000000")
        try require(maximumMessageBytes >= WireLimits.maximumChunkBytes + 4_096 && maximumMessageBytes <= 1 << 30,
                    "max_message_bytes must be at least 1 MiB + 4 KiB (one chunk and its header) and at most 1 GiB")
        try require(["secagg+", "complete"].contains(secureGraph), "secure_graph must be secagg+ or complete")
        try require(secureThreshold >= 0 && secureThreshold <= 255, "secure_threshold must be 0 (two thirds of a neighbourhood) to 255")
        try require(securePhaseSeconds > 0 && securePhaseSeconds <= 3_600, "secure_phase_seconds must be in (0, 3600]")
        try require(codecInitialRange.isFinite && codecInitialRange > 0, "codec_initial_range must be positive")
        do { try roundCodec.check(secureAggregation: secureAggregation) } catch { throw CoreError(.invalidArgument, error.message) }
        do { try promotion.validate() } catch { throw CoreError(.invalidArgument, "registry: " + error.message) }
        try plan.validate()
    }

    /// The local training every plan asks for.
    public var plan: TrainingConfig {
        TrainingConfig(
            epochs: epochs, batchSize: batchSize, learningRate: learningRate,
            clipNorm: clipNorm > 0 ? clipNorm : nil, proximalMu: strategy.proximalMu, seed: seed)
    }

    /// The scaling every edge applies to its rows (stored in the model file) before any is fitted: with
    /// ``Scale/standardize`` none, until the statistics round.
    public var scaling: FeatureScaling {
        switch scale {
        case .input: inputScale > 0 ? .max(Float(inputScale)) : .none
        case .standardize: .none
        }
    }

    /// Updates a round aims for when `connected` edges are connected.
    public func target(connected: Int) -> Int {
        let wanted = clientsPerRound > 0 ? clientsPerRound : Int((fraction * Double(connected)).rounded())
        return max(minimumClients, wanted)
    }
}
