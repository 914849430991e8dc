import FlockCore
import FlockEdge
import FlockServer
import Foundation

/// Federated training of N edges in one process: the server's selection and aggregation and the edges'
/// local training, with the same FlockServer and FlockEdge code that serving uses, and no network.
///
/// Each round selects K edges (a seeded sample), trains them in parallel (one scratch model per worker
/// thread, each single-threaded), folds their updates into the example-weighted mean in edge order (so the
/// result does not depend on the thread count), applies the strategy, and evaluates the new global model.
public struct Simulation: Sendable {
    /// What to simulate.
    public struct Options: Sendable {
        /// Training CSV, partitioned over the edges.
        public var trainPath: String
        /// Evaluation CSV, scored on the server after every round.
        public var evalPath: String
        /// Number of edges.
        public var clients: Int
        /// How the training rows are dealt to the edges.
        public var partition: PartitionScheme
        /// Share of edges selected per round (used when `clientsPerRound` is nil).
        public var fraction: Double
        /// Edges per round; overrides `fraction`.
        public var clientsPerRound: Int?
        /// Rounds to run.
        public var rounds: Int
        /// Model preset.
        public var model: String
        /// Local training plan sent to the edges (μ comes from the strategy).
        public var plan: LocalTrainingPlan
        /// Server strategy.
        public var strategy: AggregationStrategy
        /// Seed of the partition, the selection, the initialization and local shuffling.
        public var seed: UInt64
        /// Worker threads (edges trained at once).
        public var threads: Int
        /// Folder for the round checkpoint: resumed from when it holds one, written after every round.
        public var stateFolder: String?

        /// Creates options with the defaults of `flock-server simulate`.
        public init(
            trainPath: String, evalPath: String, clients: Int = 20, partition: PartitionScheme = .iid, fraction: Double = 0.5,
            clientsPerRound: Int? = nil, rounds: Int = 20, model: String = "2nn", plan: LocalTrainingPlan = LocalTrainingPlan(),
            strategy: AggregationStrategy = .fedAvg, seed: UInt64 = 0, threads: Int = 1, stateFolder: String? = nil
        ) {
            self.trainPath = trainPath
            self.evalPath = evalPath
            self.clients = clients
            self.partition = partition
            self.fraction = fraction
            self.clientsPerRound = clientsPerRound
            self.rounds = rounds
            self.model = model
            self.plan = plan
            self.strategy = strategy
            self.seed = seed
            self.threads = threads
            self.stateFolder = stateFolder
        }

        /// Checks the counts and the fraction.
        /// - Throws: ``CoreError/Code/invalidArgument`` naming what is out of range.
        public func validate() throws(CoreError) {
            guard clients >= 1, rounds >= 1, threads >= 1, fraction > 0, fraction <= 1 else {
                throw CoreError(.invalidArgument, "clients, rounds and threads must be at least 1 and fraction in (0, 1]")
            }
        }

        /// Edges selected per round.
        public var selectedPerRound: Int {
            min(clients, max(1, clientsPerRound ?? Int((fraction * Double(clients)).rounded())))
        }
    }

    /// One round's outcome.
    public struct RoundReport: Sendable, Codable, Equatable {
        /// One-based round number.
        public var round: Int
        /// Accuracy of the new global model on the evaluation set.
        public var accuracy: Double
        /// Its mean loss there.
        public var loss: Double
        /// Edges whose updates were aggregated.
        public var participants: Int
        /// Wall time of the round without the evaluation, in seconds.
        public var seconds: Double
        /// Local training time on the round's critical path: the largest sum of training time over the
        /// edges one worker thread trained (worker w trains edges w, w + W, ...). The rest of the round is
        /// orchestration: selection, model copies, aggregation, the server update.
        public var trainingSeconds: Double
        /// Update payload bytes sent up by all participants (32-bit floats; no transport in-process).
        public var uploadBytes: Int
        /// Model payload bytes sent down to all participants.
        public var downloadBytes: Int

        enum CodingKeys: String, CodingKey {
            case round, accuracy, loss, participants, seconds
            case trainingSeconds = "training_seconds"
            case uploadBytes = "upload_bytes"
            case downloadBytes = "download_bytes"
        }
    }

    /// The run's outcome.
    public struct Summary: Sendable, Codable {
        /// Rounds run.
        public var rounds: Int
        /// Final accuracy.
        public var accuracy: Double
        /// Final loss.
        public var loss: Double
        /// Edges in the federation.
        public var clients: Int
        /// Median round time (without evaluation), in seconds.
        public var medianRoundSeconds: Double
        /// Share of the summed round time that was not local training on the critical path (selection, model
        /// copies, aggregation, the server update).
        public var overhead: Double
        /// Parameters of the model.
        public var parameters: Int

        enum CodingKeys: String, CodingKey {
            case rounds, accuracy, loss, clients
            case medianRoundSeconds = "median_round_seconds"
            case overhead, parameters
        }
    }

    /// The options of this run.
    public let options: Options

    /// Creates a simulation.
    public init(options: Options) { self.options = options }

    /// Runs every round.
    /// - Parameter onRound: called after each round.
    /// - Throws: ``CoreError`` for bad data or options.
    public func run(onRound: (RoundReport) -> Void = { _ in }) throws(CoreError) -> Summary {
        let o = options
        try o.validate()
        var train = try Dataset.loadCSV(path: o.trainPath)
        var eval = try Dataset.loadCSV(path: o.evalPath)
        let classes = max(train.classCount, eval.classCount)
        let spec = try ModelSpec.preset(o.model, inputFeatures: train.featureCount, classCount: classes)
        try eval.validate(featureCount: spec.inputFeatures, classCount: classes)
        let scaling = FeatureScaling.fit(.max, to: train)
        scaling.apply(to: &train)
        scaling.apply(to: &eval)
        let shares = try o.partition.partition(labels: train.labels, clients: o.clients, seed: o.seed)
        let edges = shares.map { train.subset($0) }

        let global = try Model(spec: spec, seed: o.seed)
        global.threads = o.threads
        var state = GlobalModelState(strategy: o.strategy, weights: global.parameterVector())
        var selection = SeededGenerator(seed: o.seed ^ 0x5E1E_C7ED)
        var reports = [RoundReport]()
        if let folder = o.stateFolder, let saved = try RoundCheckpoint.read(fromFolder: folder) {
            guard saved.spec == spec, saved.model.strategy == o.strategy, saved.model.weights.count == global.parameterCount else {
                throw CoreError(.modelMismatch, "\(folder) holds rounds of a different model or strategy; use another --state-dir")
            }
            state = saved.model
            selection = SeededGenerator(state: saved.selectionState)
            reports = try saved.history.map { line throws(CoreError) -> RoundReport in
                do { return try JSONDecoder().decode(RoundReport.self, from: Data(line.utf8)) } catch {
                    throw CoreError(.corruptFile, "\(folder): unreadable round history")
                }
            }
        }
        var plan = o.plan
        plan.proximalMu = o.strategy.proximalMu
        let workers = try (0..<o.threads).map { _ throws(CoreError) -> Model in
            let m = try Model(spec: spec, seed: 0)
            m.threads = 1
            return m
        }
        let k = o.selectedPerRound
        for round in stride(from: state.round + 1, through: o.rounds, by: 1) {
            let start = Date()
            let selected = Array(selection.permutation(o.clients).prefix(k)).sorted()
            let parameterCount = state.weights.count
            let results = try Self.trainInParallel(
                selected: selected, edges: edges, workers: workers, global: state.weights, plan: plan,
                seed: o.seed &+ UInt64(round) &* 1_000_003)
            // The server's round logic decides what counts: every update goes through the state machine.
            // In-process edges have no stragglers, so no over-selection: the target is the K selected.
            var machine = RoundStateMachine(configuration: .init(target: selected.count, minimumUpdates: 1, overSelection: 0, timeout: .infinity))
            let ids = selected.map { "edge-\($0)" }
            var accepted = [(delta: [Float], examples: Int)]()
            var workerSeconds = [Double](repeating: 0, count: min(o.threads, selected.count))
            do {
                _ = try machine.receive(.open(round: round, selected: ids, now: 0))
                for (index, (id, update)) in zip(ids, results).enumerated() {
                    guard update.examples > 0 else {
                        _ = try machine.receive(.edgeLost(edge: id, now: 0))
                        continue
                    }
                    guard try machine.receive(.update(round: round, edge: id, now: 0)) == .accept else { continue }
                    accepted.append((update.delta, update.examples))
                    workerSeconds[index % workerSeconds.count] += update.seconds
                }
            } catch {
                throw CoreError(.invalidData, "round \(round): \(error.message)")
            }
            var average = WeightedAverage(length: parameterCount)
            try average.add(contentsOf: accepted, threads: o.threads)
            guard machine.pendingAction == .aggregate(round: round), average.count > 0 else {
                throw CoreError(.invalidData, "round \(round): no selected edge holds any data")
            }
            state.apply(meanDelta: average.mean(), threads: o.threads)
            _ = try? machine.receive(.aggregated(round: round))
            let seconds = Date().timeIntervalSince(start)
            try global.setParameters(state.weights)
            let metrics = global.evaluate(eval)
            let report = RoundReport(
                round: round, accuracy: metrics.accuracy, loss: metrics.loss, participants: average.count, seconds: seconds,
                trainingSeconds: workerSeconds.max() ?? 0,
                uploadBytes: average.count * parameterCount * 4, downloadBytes: selected.count * parameterCount * 4)
            reports.append(report)
            if let folder = o.stateFolder {
                // After this write the round is complete for good: a restart resumes with round + 1.
                let checkpoint = RoundCheckpoint(
                    model: state, spec: spec, selectionState: selection.state, history: reports.map { JSONOutput.line($0) })
                try checkpoint.write(toFolder: folder)
            }
            onRound(report)
        }
        return try Summary(reports: reports, timed: reports, clients: o.clients, parameters: global.parameterCount)
    }

    /// Trains the selected edges, worker w taking edges w, w + W, … with its own scratch model.
    /// Results come back in selection order.
    private static func trainInParallel(
        selected: [Int], edges: [Dataset], workers: [Model], global: [Float], plan: LocalTrainingPlan, seed: UInt64
    ) throws(CoreError) -> [LocalUpdate] {
        let workerCount = min(workers.count, selected.count)
        // Worker w trains edges w, w + W, ... with its own scratch model.
        let perWorker = Parallel.map(workerCount) { w in
            stride(from: w, to: selected.count, by: workerCount).map { i -> (Int, Result<LocalUpdate, CoreError>) in
                let edge = selected[i]
                guard edges[edge].count > 0 else { return (i, .success(LocalUpdate(delta: [], examples: 0, trainLoss: 0, seconds: 0))) }
                return (i, Result { () throws(CoreError) -> LocalUpdate in
                    try LocalUpdate.train(model: workers[w], global: global, data: edges[edge], plan: plan, seed: seed ^ UInt64(edge))
                })
            }
        }
        var slots = [Result<LocalUpdate, CoreError>?](repeating: nil, count: selected.count)
        for (i, result) in perWorker.joined() { slots[i] = result }
        return try slots.map { result throws(CoreError) -> LocalUpdate in try result!.get() }
    }
}

extension Simulation.Summary {
    /// The summary of `reports` (every round of the run, resumed ones included), with the median round
    /// time and the overhead taken over `timed` (the rounds this process ran).
    /// - Throws: ``CoreError/Code/invalidArgument`` when no round was run.
    public init(reports: [Simulation.RoundReport], timed: [Simulation.RoundReport], clients: Int, parameters: Int) throws(CoreError) {
        guard let last = reports.last else { throw CoreError(.invalidArgument, "no rounds were run") }
        let times: [Double] = timed.map(\.seconds).sorted()
        let total: Double = timed.reduce(0.0) { $0 + $1.seconds }
        let training: Double = timed.reduce(0.0) { $0 + $1.trainingSeconds }
        let median: Double = times.isEmpty ? 0 : times[times.count / 2]
        let overhead: Double = total > 0 ? max(0, 1 - training / total) : 0
        self.init(
            rounds: reports.count, accuracy: last.accuracy, loss: last.loss, clients: clients,
            medianRoundSeconds: median, overhead: overhead, parameters: parameters)
    }
}
