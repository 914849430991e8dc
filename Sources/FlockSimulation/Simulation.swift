import FlockCompression
import FlockCore
import FlockEdge
import FlockRegistry
import FlockServer
import Foundation
import Synchronization

/// Federated training of N edges in one process: the server's selection and aggregation and the edges'
/// local training, with the same FlockServer and FlockEdge code that serving uses, and no network.
///
/// Each round selects K edges (a seeded sample), trains them in parallel (scratch models per worker thread,
/// each single-threaded), sums their example-weighted updates exactly (in fixed point, so the result does
/// not depend on the thread count), applies the strategy, and evaluates the new global model. Under secure
/// aggregation (``Options/secureAggregation``) the sum is instead the one the server unmasks
/// (``SecureSimulationRound``).
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
        /// Secure aggregation of every round, or nil for plain (the server sees each update).
        public var secureAggregation: SecureAggregationOptions?
        /// The update codec of plain rounds (`f32`, `fixed32`, `q{b}`, `rot+q{b}`); secure rounds use
        /// ``SecureAggregationOptions/codec``.
        public var codec: CodecSpec = .f32
        /// How the global model travels to the edges: they train from the model it decodes to.
        public var downloadCodec: ModelDownload = .f32
        /// A server data directory whose model registry every round's model goes into (`--data-dir`), with the
        /// gate, shadow analyses, promotions and rollbacks of `serve`; nil for none.
        public var registryFolder: String?
        /// The registry's gate and analysis settings.
        public var promotion = PromotionSettings()
        /// Share of each edge's rows held out (not trained on) for the paired evidence, when a registry is on.
        public var heldOutShare = 0.1
        /// Standardize the features with the per-feature mean and deviation of a statistics round over the edges'
        /// rows (what `serve --scale standardize` fits); otherwise every feature is divided by the largest value.
        public var standardize = false

        /// Creates options with the defaults of `flock-server simulate`.
        public init(
            trainPath: String, evalPath: String, clients: Int = 20, partition: PartitionScheme = .iid, fraction: Double = 0.5,
            clientsPerRound: Int? = nil, rounds: Int = 20, model: String = "2nn", plan: LocalTrainingPlan = LocalTrainingPlan(),
            strategy: AggregationStrategy = .fedAvg, seed: UInt64 = 0, threads: Int = 1, stateFolder: String? = nil,
            secureAggregation: SecureAggregationOptions? = nil
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
            self.secureAggregation = secureAggregation
        }

        /// Checks the counts and the fraction.
        /// - Throws: ``CoreError/Code/invalidArgument`` naming what is out of range.
        public func validate() throws(CoreError) {
            guard clients >= 1, rounds >= 1, threads >= 1, fraction > 0, fraction <= 1 else {
                throw CoreError(.invalidArgument, "clients, rounds and threads must be at least 1 and fraction in (0, 1]")
            }
            try secureAggregation?.validate()
            if secureAggregation == nil {
                do { try codec.check(secureAggregation: false) } catch { throw CoreError(.invalidArgument, error.message) }
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
        /// edges one worker thread trained (workers take the next untrained edges as they finish). The rest
        /// of the round is orchestration: selection, model copies, aggregation (and secure aggregation's
        /// phases), the server update.
        public var trainingSeconds: Double
        /// Update payload bytes sent up by all participants (32-bit floats; no transport in-process).
        public var uploadBytes: Int
        /// Model payload bytes sent down to all participants.
        public var downloadBytes: Int
        /// What secure aggregation did, when it was on.
        public var secureAggregation: SecureRoundReport?
        /// What the model registry decided after the round (with `--data-dir`).
        public var registry: [String]?

        enum CodingKeys: String, CodingKey {
            case round, accuracy, loss, participants, seconds
            case trainingSeconds = "training_seconds"
            case uploadBytes = "upload_bytes"
            case downloadBytes = "download_bytes"
            case secureAggregation = "secure_aggregation"
            case registry
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
        /// The round time that was not local training on the critical path (selection, model copies,
        /// aggregation, the server update), as a share of that training time: 0.1 means rounds took 10%
        /// longer than their local training alone.
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

    /// Edges in a group (trained by one worker, their updates summed in float before the exact sum) when
    /// `selected` edges train a round: about ten groups a round, so that two workers get equal shares
    /// (measured with `simulate --clients 20` and `100 --fraction 0.5`: 10 groups of 1 and of 5 gave the
    /// shortest rounds), and at most 8 edges per float sum. It depends on the round's size only, never on
    /// the thread count, so results do not either.
    static func groupSize(selected: Int) -> Int { min(8, max(1, (selected + 9) / 10)) }

    /// Creates a simulation.
    public init(options: Options) { self.options = options }

    /// The standardization a statistics round fits: every edge's feature moments of its own rows, summed in the ring
    /// as secure aggregation sums them, decoded to the federation's totals.
    /// - Throws: ``CoreError/Code/invalidData`` for rows whose sums are too large to encode.
    static func federatedStandardization(of rows: Dataset, over shares: [[Int]]) throws(CoreError) -> FeatureScaling {
        do {
            let moments = try FeatureMoments(features: rows.featureCount)
            var sum = [UInt32](repeating: 0, count: moments.wordCount)
            for share in shares {
                let words = try moments.encode(rows.subset(share))
                for i in sum.indices { sum[i] &+= words[i] }
            }
            return try moments.decode(sum: sum).standardization
        } catch {
            throw CoreError(.invalidData, "feature statistics: \(error.message)")
        }
    }

    /// Runs every round.
    /// - Parameter onRound: called after each round.
    /// - Throws: ``CoreError`` for bad data or options.
    public func run(onRound: (RoundReport) -> Void = { _ in }) throws(CoreError) -> Summary {
        let o = options
        try o.validate()
        // Thread start-up belongs to the run's set-up, not to its first round.
        Parallel.startWorkers()
        var train = try Dataset.loadCSV(path: o.trainPath)
        var eval = try Dataset.loadCSV(path: o.evalPath)
        let classes = max(train.classCount, eval.classCount)
        let spec = try ModelSpec.preset(o.model, inputFeatures: train.featureCount, classCount: classes)
        try eval.validate(featureCount: spec.inputFeatures, classCount: classes)
        let shares = try o.partition.partition(labels: train.labels, clients: o.clients, seed: o.seed)
        let scaling = o.standardize ? try Self.federatedStandardization(of: train, over: shares) : FeatureScaling.fit(.max, to: train)
        scaling.apply(to: &train)
        scaling.apply(to: &eval)
        var edges = shares.map { train.subset($0) }
        // With a registry, each edge keeps a seeded share of its rows out of training, for the paired evidence.
        var heldOut: [Dataset] = []
        if o.registryFolder != nil {
            guard o.heldOutShare >= 0, o.heldOutShare <= 0.5 else { throw CoreError(.invalidArgument, "the held-out share must lie in [0, 0.5]") }
            var split = SeededGenerator(seed: o.seed ^ 0x4E1D_0017)
            for e in edges.indices {
                let order = split.permutation(edges[e].count)
                let held = min(max(0, edges[e].count - 1), Int((o.heldOutShare * Double(edges[e].count)).rounded()))
                heldOut.append(edges[e].subset(Array(order.prefix(held)).sorted()))
                edges[e] = edges[e].subset(Array(order.dropFirst(held)).sorted())
            }
        }

        let global = try Model(spec: spec, seed: o.seed)
        global.threads = o.threads
        var state = GlobalModelState(strategy: o.strategy, weights: global.parameterVector())
        var selection = SeededGenerator(seed: o.seed ^ 0x5E1E_C7ED)
        var reports = [RoundReport]()
        var savedCodec = CodecState()
        if let folder = o.stateFolder, let saved = try RoundCheckpoint.read(fromFolder: folder) {
            guard saved.spec == spec, saved.model.strategy == o.strategy, saved.model.weights.count == global.parameterCount else {
                throw CoreError(.modelMismatch, "\(folder) holds rounds of a different model or strategy; use another --state-dir")
            }
            state = saved.model
            savedCodec = try saved.codecState(spec: o.secureAggregation?.codec ?? o.codec, length: global.parameterCount)
            selection = SeededGenerator(state: saved.selectionState)
            reports = try saved.history.map { line throws(CoreError) -> RoundReport in
                do { return try JSONDecoder().decode(RoundReport.self, from: Data(line.utf8)) } catch {
                    throw CoreError(.corruptFile, "\(folder): unreadable round history")
                }
            }
        }
        var plan = o.plan
        plan.proximalMu = o.strategy.proximalMu
        // Each worker trains its edges, one after another, on one scratch model.
        let workers = try (0..<o.threads).map { _ throws(CoreError) -> Model in
            let m = try Model(spec: spec, seed: 0)
            m.threads = 1
            return m
        }
        // The round's sum and mean, made here and kept from round to round so that no round allocates them.
        var roundSum = WeightedAverage(length: 0)
        var decodedMean: [Float] = []
        if o.secureAggregation == nil {
            let length: Int
            do { length = try PlainCodec(o.codec, length: global.parameterCount, seed: 0).decodedLength } catch {
                throw CoreError(.invalidArgument, error.message)
            }
            roundSum = WeightedAverage(length: length)
            decodedMean = [Float](repeating: 0, count: length)
        }
        // Each worker's group sums, up to 32 MB in all.
        let slots = (0..<o.threads).map { _ in GroupSumSlots(length: global.parameterCount, budgetBytes: 32 << 20 / max(1, o.threads)) }
        let k = o.selectedPerRound
        // Round numbers count every round run, aborted ones included; the model version counts completed ones.
        var round = reports.count
        var abortsInARow = 0
        // A quantizing codec's block ranges under secure aggregation, adapted after every round.
        var ranges = savedCodec.ranges
        // Each edge's error-feedback state under `topk`, by edge number.
        let edgeStates = ErrorFeedbackStore<Int>()
        for (id, feedback) in savedCodec.feedback { if let edge = Int(id) { edgeStates.put(feedback, for: edge) } }
        // The server's FetchSGD momentum and error sketches under `sketch`.
        var fetch = savedCodec.fetch
        var deployment = try o.registryFolder.map { folder throws(CoreError) in
            try SimulatedDeployment(
                dataDirectory: folder, settings: o.promotion, spec: spec, scaling: scaling, heldOut: heldOut,
                lastCompletedRound: reports.last(where: { $0.participants > 0 })?.round)
        }
        while state.round < o.rounds {
            round += 1
            let start = Date()
            let selected = Array(selection.permutation(o.clients).prefix(k)).sorted()
            let parameterCount = state.weights.count
            let roundSeed = o.seed &+ UInt64(round) &* 1_000_003
            // The model the edges receive: the global itself, or what the download codec decodes to.
            var served = state.weights
            var downloadBytes = selected.count * parameterCount * 4
            if o.downloadCodec != .f32 {
                do {
                    let prepared = try o.downloadCodec.prepare(ModelFile(spec: spec, scaling: scaling, parameters: state.weights))
                    served = prepared.served.parameters
                    downloadBytes = selected.count * prepared.payload.count
                } catch {
                    throw CoreError(.invalidData, "round \(round): the download codec: \(error.message)")
                }
            }
            var report: RoundReport
            if let secure = o.secureAggregation {
                let outcome = try SecureSimulationRound(
                    options: secure, round: round, selected: selected, edges: edges, workers: workers,
                    global: served, plan: plan, seed: roundSeed, ranges: ranges
                ).run()
                if let next = outcome.nextRanges { ranges = next }
                if let decoded = outcome.meanDelta {
                    let mean: [Float]
                    do { mean = try FetchSGDState.update(fromDecodedMean: decoded, of: secure.codec, length: parameterCount, state: &fetch) } catch {
                        throw CoreError(.invalidArgument, error.message)
                    }
                    guard mean.allSatisfy(\.isFinite) else {
                        throw CoreError(.invalidData, "round \(round): the decoded sum holds NaN or infinite values")
                    }
                    state.apply(meanDelta: mean, threads: o.threads)
                    abortsInARow = 0
                } else {
                    abortsInARow += 1
                    guard abortsInARow < 10 else {
                        throw CoreError(.invalidData, "secure aggregation aborted 10 rounds in a row (\(outcome.report.abortReason ?? "too few survivors")); lower --drop-fraction or --threshold")
                    }
                }
                report = RoundReport(
                    round: round, accuracy: 0, loss: 0, participants: outcome.included, seconds: Date().timeIntervalSince(start),
                    trainingSeconds: outcome.trainingSeconds, uploadBytes: outcome.uploadBytes,
                    downloadBytes: downloadBytes, secureAggregation: outcome.report)
            } else {
                let codec: PlainCodec
                do { codec = try PlainCodec(o.codec, length: parameterCount, seed: roundSeed) } catch {
                    throw CoreError(.invalidArgument, error.message)
                }
                let trained = try Self.trainInParallel(
                    selected: selected, edges: edges, workers: workers, slots: slots, global: served, plan: plan, seed: roundSeed,
                    codec: codec, edgeStates: edgeStates, threads: o.threads, into: &roundSum)
                try Self.accept(trained, sum: roundSum, selected: selected, round: round)
                // A NaN or infinity in any update makes the mean's value there NaN or infinite too.
                roundSum.mean(into: &decodedMean)
                guard decodedMean.allSatisfy(\.isFinite) else {
                    throw CoreError(.invalidData, "round \(round): an update holds NaN or infinite values (local training diverged; lower --lr)")
                }
                let mean: [Float]
                do { mean = try FetchSGDState.update(fromDecodedMean: decodedMean, of: o.codec, length: parameterCount, state: &fetch) } catch {
                    throw CoreError(.invalidArgument, error.message)
                }
                state.apply(meanDelta: mean, threads: o.threads)
                report = RoundReport(
                    round: round, accuracy: 0, loss: 0, participants: roundSum.count, seconds: Date().timeIntervalSince(start),
                    trainingSeconds: trained.trainingSeconds.max() ?? 0,
                    uploadBytes: trained.uploadBytes ?? roundSum.count * codec.payloadBytes, downloadBytes: downloadBytes)
            }
            try global.setParameters(state.weights)
            let metrics = global.evaluate(eval)
            report.accuracy = metrics.accuracy
            report.loss = metrics.loss
            // Into the registry before the checkpoint: a round replayed after a crash finds its version there.
            if deployment != nil, report.participants > 0 {
                report.registry = try deployment!.afterRound(
                    weights: state.weights, round: round, modelVersion: state.round, participants: report.participants, strategy: o.strategy.description,
                    codec: (o.secureAggregation?.codec ?? o.codec).identifier, accuracy: metrics.accuracy, loss: metrics.loss,
                    uploadBytes: report.uploadBytes, downloadBytes: report.downloadBytes)
            }
            reports.append(report)
            if let folder = o.stateFolder {
                // After this write the round is complete for good: a restart resumes with round + 1.
                let codec = CodecState(ranges: ranges, fetch: fetch, feedback: Dictionary(uniqueKeysWithValues: edgeStates.all.map { (String($0.key), $0.value) }))
                let checkpoint = RoundCheckpoint(
                    model: state, spec: spec, selectionState: selection.state, history: reports.map { JSONOutput.line($0) }, codec: codec)
                try checkpoint.write(toFolder: folder)
            }
            onRound(report)
        }
        return try Summary(reports: reports, timed: reports, clients: o.clients, parameters: global.parameterCount)
    }

    /// Runs the server's round logic over the trained edges: every update goes through the state machine.
    /// In-process edges have no stragglers, so no over-selection: the target is the K selected, and every
    /// edge that trained is accepted (the workers have already added its update to the sum).
    /// `sum` is the round's sum of updates, checked to hold at least one.
    /// - Throws: ``CoreError/Code/invalidData`` when no edge held data.
    private static func accept(_ trained: ParallelRound, sum average: WeightedAverage, selected: [Int], round: Int) throws(CoreError) {
        var machine = RoundStateMachine(configuration: .init(target: selected.count, minimumUpdates: 1, overSelection: 0, timeout: .infinity))
        let ids = selected.map { "edge-\($0)" }
        do {
            _ = try machine.receive(.open(round: round, selected: ids, now: 0))
            for (id, result) in zip(ids, trained.results) {
                guard result.examples > 0 else {
                    _ = try machine.receive(.edgeLost(edge: id, now: 0))
                    continue
                }
                let verdict = try machine.receive(.update(round: round, edge: id, now: 0))
                precondition(verdict == .accept, "round \(round): the round logic refused \(id), whose update is already in the sum")
            }
        } catch {
            throw CoreError(.invalidData, "round \(round): \(error.message)")
        }
        guard machine.pendingAction == .aggregate(round: round), average.count > 0 else {
            throw CoreError(.invalidData, "round \(round): no selected edge holds any data")
        }
        _ = try? machine.receive(.aggregated(round: round))
    }

    /// One round's local training over the workers.
    struct ParallelRound {
        /// Per selected edge, in selection order.
        var results: [LocalTraining]
        /// Seconds each worker spent in local training.
        var trainingSeconds: [Double]
        /// Payload bytes of a compressing codec's updates (nil for `f32`).
        var uploadBytes: Int?
    }

    /// Trains the selected edges in groups of consecutive selection positions: each worker takes the next
    /// untrained group and trains its edges one after another on its scratch model, adding each update to
    /// the group's float sum in its slots as soon as it is trained; the slots are added exactly once the
    /// workers are done. Groups are fixed by position and group sums add exactly, so the result does not
    /// depend on the number of workers or on which worker took which group.
    private static func trainInParallel(
        selected: [Int], edges: [Dataset], workers: [Model], slots: [GroupSumSlots], global: [Float], plan: LocalTrainingPlan, seed: UInt64,
        codec: PlainCodec, edgeStates: ErrorFeedbackStore<Int>, threads: Int, into total: inout WeightedAverage
    ) throws(CoreError) -> ParallelRound {
        let groups = Self.groups(positions: selected.count, size: Self.groupSize(selected: selected.count))
        let groupCount = groups.count
        let workerCount = min(workers.count, groupCount)
        let nextGroup = Atomic<Int>(0)
        let perWorker = Parallel.map(workerCount) { w in
            let model = workers[w]
            // A worker's own sum: the updates of a compressing codec, and group sums when its slots fill up.
            // Made when first needed: plain rounds mostly leave it to the slots.
            var sum: WeightedAverage?
            var trained = [(Int, Result<LocalTraining, CoreError>)]()
            var seconds = 0.0
            var uploaded = 0
            while true {
                let group = nextGroup.add(1, ordering: .relaxed).oldValue
                guard group < groupCount else { break }
                if case .f32 = codec, slots[w].isFull {
                    if sum == nil { sum = WeightedAverage(length: codec.decodedLength) }
                    sum!.add(groupSums: slots[w].groupSums, threads: 1)
                    slots[w].empty()
                }
                for i in groups[group] {
                    let edge = selected[i]
                    guard edges[edge].count > 0 else {
                        trained.append((i, .success(LocalTraining(examples: 0, trainLoss: 0, seconds: 0))))
                        continue
                    }
                    // The first step reads the global weights in place, so the scratch model needs no copy of them;
                    // the update goes into the round's sum as soon as it is trained, while it is still in cache.
                    let result = Result { () throws(CoreError) -> LocalTraining in
                        let run = try LocalTraining.run(model: model, global: global, data: edges[edge], plan: plan, seed: seed ^ UInt64(edge))
                        if case .f32 = codec {
                            model.withParameters { local in
                                global.withUnsafeBufferPointer { slots[w].add(difference: UnsafeBufferPointer(local), from: $0, examples: run.examples) }
                            }
                            return run
                        }
                        // A compressing codec: the update goes through its encoding and the server's decoding.
                        let decoded: (update: [Float], bytes: Int)
                        var feedback = codec.keepsEdgeState ? edgeStates.take(edge) : nil
                        do throws(CodecError) {
                            decoded = try codec.roundTrip(
                                local: model.parameterVector(), global: global, seed: seed ^ UInt64(edge) ^ 0xC0DE, feedback: &feedback)
                        } catch {
                            throw CoreError(.invalidData, "edge-\(edge): \(error.message)")
                        }
                        if let feedback { edgeStates.put(feedback, for: edge) }
                        uploaded += decoded.bytes
                        if sum == nil { sum = WeightedAverage(length: codec.decodedLength) }
                        try sum!.add(delta: decoded.update, examples: run.examples)
                        return run
                    }
                    if case .success(let run) = result { seconds += run.seconds }
                    trained.append((i, result))
                }
                slots[w].close()
            }
            return (trained, sum, seconds, uploaded)
        }
        var outcomes = [Result<LocalTraining, CoreError>?](repeating: nil, count: selected.count)
        for (trained, _, _, _) in perWorker {
            for (i, result) in trained { outcomes[i] = result }
        }
        let trainingSeconds = perWorker.map(\.2)
        let uploadBytes = perWorker.reduce(0) { $0 + $1.3 }
        if total.length != codec.decodedLength { total = WeightedAverage(length: codec.decodedLength) }
        total.reset(summing: slots.flatMap(\.groupSums), threads: threads)
        for s in slots { s.empty() }
        for case let sum? in perWorker.map(\.1) { total.merge(sum) }
        let results = try outcomes.map { result throws(CoreError) -> LocalTraining in try result!.get() }
        if case .f32 = codec {
            return ParallelRound(results: results, trainingSeconds: trainingSeconds, uploadBytes: nil)
        }
        return ParallelRound(results: results, trainingSeconds: trainingSeconds, uploadBytes: uploadBytes)
    }

    /// Splits selection positions `0..<positions` into consecutive groups of `size` (the last may be
    /// shorter). The groups depend only on the number of positions, never on the number of workers.
    static func groups(positions: Int, size: Int) -> [Range<Int>] {
        stride(from: 0, to: positions, by: size).map { $0..<min($0 + size, positions) }
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
        let overhead: Double = training > 0 ? max(0, total / training - 1) : 0
        self.init(
            rounds: reports.count, accuracy: last.accuracy, loss: last.loss, clients: clients,
            medianRoundSeconds: median, overhead: overhead, parameters: parameters)
    }
}
