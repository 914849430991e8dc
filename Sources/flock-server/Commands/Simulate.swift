import ArgumentParser
import FlockCompression
import FlockCore
import FlockEdge
import FlockRegistry
import FlockServer
import FlockSimulation
import Foundation
import Logging

/// How `simulate` scales the features.
enum SimulationScale: String, CaseIterable, ExpressibleByArgument {
    case max, standardize
}

/// `flock-server simulate`: federated training of many edges in one process.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run federated training of N edges in one process (no network) and report each round.",
        discussion: """
            The training data are partitioned over --clients edges. Every round the server selects a share of \
            them, each trains locally from the global model, and the strategy folds their example-weighted \
            updates into the next global model, which is evaluated on --eval. Prints a line per round (a JSON \
            object per round and a final summary with --json).

            --transport direct (the default) calls the server's round logic and the edges' training directly, \
            with no messages. --transport grpc runs the code of `serve` and `flock-edge run` themselves, one \
            coordinator and one agent per edge, exchanging protobuf messages over gRPC's in-process transport \
            instead of TCP.

            Secure aggregation is on by default (--transport direct): every round runs the protocol of Bonawitz \
            et al. 2017 with the SecAgg+ neighbour graph of Bell et al. 2020 (--secure-graph complete for the \
            2017 one): each edge encodes its update in fixed point into Z_2^32, masks it, and the server learns \
            only the sum over the survivors. --drop-fraction F makes a random share F of each round's edges drop \
            out, each at a random phase. With --json each round object carries "secure_aggregation": {graph, \
            neighbours, threshold, dropped_per_phase, phase_seconds, abort_reason}.

            --data-dir DIR feeds the model registry in DIR (as `serve` does): every round's model becomes a \
            version, goes through the acceptance gate, is shadowed beside production on a share of the edges, and \
            is promoted or rolled back on their paired evidence (each edge keeps --holdout-fraction of its rows out of \
            training for it). `flock-server registry … --data-dir DIR` then shows it all. --data-dir and --state-dir \
            are locked while the run lasts (a server or another run on them is refused) and made mode 0700.

            --codec compresses the updates: q{b} and rot+q{b} under secure aggregation too (their encodings add \
            up in Z_2^32), f32 and the quantizers without it. upload_bytes counts the encoded payloads.

            Example: flock-server simulate --train data/mnist5k-train.csv --eval data/mnist5k-test.csv \
            --clients 20 --partition shards --fraction 0.5 --rounds 20 --model 2nn --epochs 1 --batch 10 --lr 0.05
            """)

    @Option(
        name: [.customLong("train"), .customLong("data")],
        help: ArgumentHelp("Training data, partitioned over the edges (--data, as in flock-edge, works too).", valueName: "TRAIN.csv"))
    var train: String = "data/mnist5k-train.csv"

    @Option(help: ArgumentHelp("Evaluation data, scored after every round.", valueName: "TEST.csv"))
    var eval: String = "data/mnist5k-test.csv"

    @Option(parsing: .unconditional, help: "Number of edges.")
    var clients: Int = 20

    @Option(
        help: ArgumentHelp("How rows are dealt to edges: iid | shards | dirichlet:ALPHA. (default: iid)", valueName: "SCHEME"),
        transform: ArgumentParsers.partition)
    var partition: PartitionScheme = .iid

    @Option(parsing: .unconditional, help: "Share of edges selected per round.")
    var fraction: Double = 0.5

    @Option(name: .customLong("clients-per-round"), parsing: .unconditional, help: "Edges selected per round (overrides --fraction).")
    var clientsPerRound: Int?

    @Option(parsing: .unconditional, help: "Rounds to run.")
    var rounds: Int = 20

    @Option(help: ArgumentHelp("Model: 2nn | cnn | mlp:H1,H2,... | logreg.", valueName: "MODEL"))
    var model: String = "2nn"

    @Option(parsing: .unconditional, help: "Local epochs per round.")
    var epochs: Int = 1

    @Option(parsing: .unconditional, help: "Local mini-batch size.")
    var batch: Int = 10

    @Option(parsing: .unconditional, help: "Local learning rate.")
    var lr: Double = 0.05

    @Option(
        help: ArgumentHelp("Server strategy: \(AggregationStrategy.syntax). (default: fedavg)", valueName: "NAME"),
        transform: ArgumentParsers.strategy)
    var strategy: AggregationStrategy = .fedAvg

    @Option(parsing: .unconditional, help: "Seed of partition, selection, initialization and local shuffling.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "Edges trained at once (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Write a round checkpoint here after every round, and resume from it when the run is started again (after a crash or kill -9).", valueName: "DIR"))
    var stateDir: String?

    @Option(help: ArgumentHelp("direct, or grpc: the serve and edge code over gRPC's in-process transport.", valueName: "KIND"))
    var transport: SimulationTransport = .direct

    @Option(
        name: .customLong("secure-aggregation"),
        help: ArgumentHelp("The server sees only the sum of the updates (off prints a warning).", valueName: "on|off"))
    var secureAggregation: Switch = .on

    @Option(
        name: .customLong("secure-graph"),
        help: ArgumentHelp("secagg+: masks with k = 2 log2(n) neighbours; complete: everyone with everyone.", valueName: "GRAPH"))
    var secureGraph: SecureGraph = .secaggPlus

    @Option(
        name: .customLong("secure-threshold"), parsing: .unconditional,
        help: "Shares that reconstruct an edge's secrets (default: two thirds of a neighbourhood, rounded up).")
    var secureThreshold: Int?

    /// The older spelling of --secure-threshold, still accepted.
    @Option(name: .customLong("threshold"), parsing: .unconditional, help: .hidden)
    var legacyThreshold: Int?

    /// --secure-threshold, under either spelling.
    private var threshold: Int? { secureThreshold ?? legacyThreshold }

    @Option(name: .customLong("drop-fraction"), parsing: .unconditional, help: ArgumentHelp("Share of each round's selected edges that drop out of secure aggregation, each at a random phase.", valueName: "F"))
    var dropFraction: Double = 0

    @Option(help: CodecHelp.codec, transform: ArgumentParsers.codec)
    var codec: CodecSpec?

    @Option(name: .customLong("download-codec"), help: CodecHelp.downloadCodec, transform: ArgumentParsers.download)
    var downloadCodec: ModelDownload?

    @Option(name: .customLong("initial-range"), parsing: .unconditional, help: ArgumentHelp("Under secure aggregation, the first round's quantization range of every block of q{b}/rot+q{b}; later rounds adapt it.", valueName: "S"))
    var initialRange: Float = 0.01

    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Feed the model registry in this server data directory: gate, shadow, promotion and rollback after every round.", valueName: "DIR"))
    var dataDir: String?

    @Option(
        name: .customLong("holdout-fraction"), parsing: .unconditional,
        help: "With --data-dir: share of each edge's rows held out of training for the paired evidence (0-0.5). (default: 0.1)")
    var holdoutFraction: Double?

    /// The older spelling of --holdout-fraction, still accepted (`serve --holdout` is a file).
    @Option(name: .customLong("holdout"), parsing: .unconditional, help: .hidden, transform: Self.fraction)
    var legacyHoldout: Double?

    /// A share of rows, as the older --holdout took it; a file name gets a pointer to --eval.
    private static func fraction(_ text: String) throws -> Double {
        guard let value = Double(text) else {
            throw ValidationError("simulate's --holdout is a share of each edge's rows (--holdout-fraction F); the evaluation file is --eval FILE.csv")
        }
        return value
    }

    /// --holdout-fraction, under either spelling.
    private var holdout: Double { holdoutFraction ?? legacyHoldout ?? 0.1 }

    @Option(name: .customLong("shadow-share"), parsing: .unconditional, help: "With --data-dir: share of edges that run a shadow candidate beside production.")
    var shadowShare: Double = 0.5

    @Option(name: .customLong("min-pairs"), parsing: .unconditional, help: "With --data-dir: labelled pairs before an analysis first decides.")
    var minPairs: Int = 200

    @Option(name: .customLong("min-edges"), parsing: .unconditional, help: "With --data-dir: distinct edges before an analysis decides.")
    var minEdges: Int = 3

    @Option(parsing: .unconditional, help: "With --data-dir: the non-inferiority margin on accuracy.")
    var margin: Double = 0.02

    @Option(name: .customLong("min-accuracy"), parsing: .unconditional, help: "With --data-dir: the gate's minimum holdout accuracy.")
    var minAccuracy: Double?

    @Option(
        help: ArgumentHelp(
            "max: every feature divided by the largest value; standardize: per-feature mean and deviation from the edges' feature moments, as serve --scale standardize fits them.",
            valueName: "max|standardize"))
    var scale: SimulationScale = .max

    @Flag(help: "Print one JSON object per round and a final summary.")
    var json = false

    @OptionGroup(title: "Logging (on standard error)")
    var logging: LogOptions

    func validate() throws {
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard fraction > 0, fraction <= 1 else { throw ValidationError("--fraction must be in (0, 1]") }
        if let clientsPerRound, clientsPerRound < 1 || clientsPerRound > clients {
            throw ValidationError("--clients-per-round must be between 1 and --clients")
        }
        guard epochs >= 1, batch >= 1 else { throw ValidationError("--epochs and --batch must be at least 1") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard dropFraction >= 0, dropFraction < 1 else { throw ValidationError("--drop-fraction must be in [0, 1)") }
        if secureThreshold != nil, legacyThreshold != nil {
            throw ValidationError("--threshold is the older spelling of --secure-threshold: give one")
        }
        if let threshold, threshold < 1 { throw ValidationError("--secure-threshold must be at least 1") }
        if !secureAggregation.isOn, dropFraction > 0 || threshold != nil {
            throw ValidationError("--drop-fraction and --secure-threshold apply to secure aggregation; drop --secure-aggregation off")
        }
        if transport == .grpc, dropFraction > 0 {
            throw ValidationError("--drop-fraction injects drop-outs with --transport direct; with grpc, stop edges instead")
        }
        do throws(CodecError) {
            try codecSpec.check(secureAggregation: secureAggregation.isOn)
        } catch {
            throw ValidationError(error.message)
        }
        guard initialRange.isFinite, initialRange > 0 else { throw ValidationError("--initial-range must be a positive number") }
        if holdoutFraction != nil, legacyHoldout != nil {
            throw ValidationError("--holdout is the older spelling of --holdout-fraction: give one")
        }
        guard holdout >= 0, holdout <= 0.5 else { throw ValidationError("--holdout-fraction must be in [0, 0.5]") }
        do { try promotion.validate() } catch { throw ValidationError(error.message) }
        if let dataDir, let stateDir, transport == .grpc, dataDir != stateDir {
            throw ValidationError("with --transport grpc the served coordinator keeps its checkpoint and registry together: give one folder")
        }
    }

    /// Creates (mode 0700) and locks each distinct folder of `paths`, so that no server or other run works in
    /// them at the same time.
    private static func lockFolders(_ paths: [String]) throws(CoreError) -> [DirectoryLock] {
        var locks = [DirectoryLock]()
        var seen = Set<String>()
        for path in paths {
            try FileIO.createPrivateDirectory(path)
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            guard seen.insert(resolved).inserted else { continue }
            locks.append(try DirectoryLock(directory: path, advice: "wait for it to finish or stop it, or give another folder"))
        }
        return locks
    }

    /// The registry's settings from the options.
    private var promotion: PromotionSettings {
        PromotionSettings(
            gate: GateSettings(minimumAccuracy: minAccuracy),
            analysis: AnalysisSettings(margin: margin, minimumPairs: minPairs, minimumEdges: minEdges), shadowShare: shadowShare)
    }

    /// The codec asked for, or the default of the secure-aggregation setting.
    private var codecSpec: CodecSpec { codec ?? (secureAggregation.isOn ? .fixed32 : .f32) }

    /// Reports a failed run on standard error, as `{"code": 1, "error": …}` under `--json`; the exit status to throw.
    func failure(_ message: String) -> ExitCode {
        StandardError.line(json ? failureJSON(message, code: 1) : "error: \(message)")
        return ExitCode(1)
    }

    func run() async throws {
        // The data and state folders hold models and updates: the owner's alone, and one run's at a time.
        umask(0o077)
        let locks: [DirectoryLock]
        do { locks = try Self.lockFolders([dataDir, stateDir].compactMap { $0 }) } catch {
            throw failure(error.message)
        }
        defer { locks.forEach { $0.release() } }
        let spec = codecSpec
        var options = Simulation.Options(
            trainPath: train, evalPath: eval, clients: clients, partition: partition,
            fraction: fraction, clientsPerRound: clientsPerRound, rounds: rounds, model: model,
            plan: LocalTrainingPlan(epochs: epochs, batchSize: batch, learningRate: lr),
            strategy: strategy, seed: seed,
            threads: threads ?? ProcessInfo.processInfo.activeProcessorCount, stateFolder: stateDir,
            secureAggregation: secureAggregation.isOn
                ? SecureAggregationOptions(
                    complete: secureGraph == .complete, threshold: threshold, dropFraction: dropFraction, codec: spec, initialRange: initialRange)
                : nil)
        if !secureAggregation.isOn { options.codec = spec }
        options.downloadCodec = downloadCodec ?? .f32
        options.registryFolder = dataDir
        options.promotion = promotion
        options.heldOutShare = holdout
        options.standardize = scale == .standardize
        let rounds = options.rounds
        // The log goes to standard error: standard output holds the rounds (a table, or JSON lines).
        let logger = logging.bootstrap(label: "flock.simulate", sink: .standardError)
        if !secureAggregation.isOn {
            logger.warning("secure aggregation is off: the server sees every edge's update in the clear")
        }
        if !json {
            logger.info("simulating \(clients) edges (\(partition)), \(options.selectedPerRound) per round, \(rounds) rounds of \(model) with \(strategy)")
        }
        let asJSON = json
        let summary: Simulation.Summary
        do {
            let show: @Sendable (Simulation.RoundReport) -> Void = { report in
                if asJSON {
                    print(JSONOutput.line(report))
                } else {
                    var line = String(
                        format: "round %3d/%d  accuracy %.4f  loss %.4f  edges %d  %.3f s (training %.3f s)  up %.1f MB",
                        report.round, rounds, report.accuracy, report.loss, report.participants, report.seconds,
                        report.trainingSeconds, Double(report.uploadBytes) / 1e6)
                    if let secure = report.secureAggregation {
                        let drops = secure.droppedPerPhase.map(String.init).joined(separator: "/")
                        line += "  secagg dropped \(drops)"
                        if let reason = secure.abortReason { line += "  ABORTED: \(reason)" }
                    }
                    print(line)
                    for decision in report.registry ?? [] { print("           registry: \(decision)") }
                }
                fflush(nil)
            }
            if transport == .grpc {
                summary = try await GRPCSimulation(options: options).run(onRound: show)
            } else {
                summary = try Simulation(options: options).run(onRound: show)
            }
        } catch let error as CoreError {
            throw failure(error.message)
        } catch {
            throw failure("\(error)")
        }
        if json {
            print(JSONOutput.line(summary))
        } else {
            print("")
            print(String(format: "final accuracy %.4f  loss %.4f after %d rounds", summary.accuracy, summary.loss, summary.rounds))
            print(String(format: "median round   %.3f s; overhead beyond local training: %.1f%% of the training time", summary.medianRoundSeconds, summary.overhead * 100))
        }
    }
}
