#if canImport(Glibc)
import Glibc
#endif

/// Trains a ``Model`` on a data set with mini-batch gradient descent, epoch by epoch.
///
/// Deterministic: shuffling and dropout draw from one ``SeededGenerator`` whose state, with the optimizer
/// state, the weights and the epoch, is what a ``TrainingCheckpoint`` stores; a run resumed from a
/// checkpoint ends in exactly the same weights as an uninterrupted one (with the same thread count).
/// A step allocates nothing: rows are gathered into the model's preallocated input buffer.
public final class Trainer {
    /// The model being trained (its parameters change in place).
    public let model: Model
    /// The run's configuration.
    public let config: TrainingConfig
    /// Completed epochs.
    public private(set) var epoch: Int
    /// Optimizer steps taken.
    public private(set) var step: Int
    /// The optimizer and its state.
    public private(set) var optimizer: Optimizer
    /// Reports of the completed epochs.
    public private(set) var history: [EpochReport]
    /// Reference weights of the FedProx proximal term (the global model); required when μ > 0.
    public var proximalReference: [Float]?

    private let training: Dataset
    private let validation: Dataset?
    /// Weights the first step reads in place of the model's own (see ``start(from:)``); nil after it.
    private var startWeights: [Float]?
    private var rng: SeededGenerator
    private var best: BestSoFar?
    private var labelBuffer: UnsafeMutablePointer<Int32>

    /// Starts a fresh run.
    /// - Throws: ``CoreError`` when the config is out of range or the data do not fit the model.
    public init(model: Model, config: TrainingConfig, training: Dataset, validation: Dataset? = nil) throws(CoreError) {
        try config.validate()
        try training.validate(featureCount: model.spec.inputFeatures, classCount: model.spec.classCount)
        try validation?.validate(featureCount: model.spec.inputFeatures, classCount: model.spec.classCount)
        guard training.count > 0 else { throw CoreError(.invalidData, "\(training.source): no training rows") }
        self.model = model
        self.config = config
        self.training = training
        self.validation = validation
        epoch = 0
        step = 0
        optimizer = Optimizer(config: config.optimizer, parameterCount: model.parameterCount)
        history = []
        rng = SeededGenerator(seed: config.seed)
        labelBuffer = .allocate(capacity: config.batchSize)
    }

    /// Resumes a run from a checkpoint: weights, optimizer state, epoch, step, random stream and
    /// early-stopping state are restored.
    /// - Throws: ``CoreError/Code/modelMismatch`` when the checkpoint does not belong to this model.
    public convenience init(resuming checkpoint: TrainingCheckpoint, model: Model, training: Dataset, validation: Dataset? = nil) throws(CoreError) {
        guard checkpoint.spec == model.spec else {
            throw CoreError(.modelMismatch, "the checkpoint was written for model '\(checkpoint.spec.name)', not '\(model.spec.name)'")
        }
        try self.init(model: model, config: checkpoint.config, training: training, validation: validation)
        try model.setParameters(checkpoint.parameters)
        guard checkpoint.optimizer.config == checkpoint.config.optimizer,
            checkpoint.optimizer.firstMoment.isEmpty || checkpoint.optimizer.firstMoment.count == model.parameterCount,
            checkpoint.optimizer.secondMoment.isEmpty || checkpoint.optimizer.secondMoment.count == model.parameterCount
        else { throw CoreError(.corruptFile, "the checkpoint's optimizer state does not match the model") }
        epoch = checkpoint.epoch
        step = checkpoint.step
        optimizer = checkpoint.optimizer
        history = checkpoint.history
        rng = SeededGenerator(state: checkpoint.randomState)
        proximalReference = checkpoint.proximalReference
        if let metric = checkpoint.bestMetric, let bestEpoch = checkpoint.bestEpoch, let weights = checkpoint.bestParameters {
            best = BestSoFar(metric: metric, epoch: bestEpoch, parameters: weights)
        }
    }

    deinit { labelBuffer.deallocate() }

    /// Starts the run from `weights` without copying them into the model first: the first step reads
    /// `weights` in place of the model's parameters and writes its result into them, so the model's own
    /// parameters before that step do not matter. The result is bit for bit that of setting the parameters
    /// to `weights` first. A federated simulation trains many edges from one global model this way.
    /// - Throws: ``CoreError/Code/modelMismatch`` for a wrong length.
    public func start(from weights: [Float]) throws(CoreError) {
        precondition(step == 0, "a run starts from other weights before its first step only")
        guard weights.count == model.parameterCount else {
            throw CoreError(.modelMismatch, "got \(weights.count) parameters, the model has \(model.parameterCount)")
        }
        startWeights = weights
    }

    /// True when all epochs are done or early stopping has fired.
    public var isFinished: Bool { epoch >= config.epochs || stoppedEarly }

    /// True when early stopping ended the run before the last epoch.
    public var stoppedEarly: Bool {
        guard let patience = config.patience, let best else { return false }
        return epoch - best.epoch >= patience && epoch < config.epochs
    }

    /// The epoch whose weights early stopping kept, if it is watching.
    public var bestEpoch: Int? { best?.epoch }

    /// Trains one epoch and evaluates on the validation set.
    /// - Parameter progress: called after each batch with (rows done, rows in the epoch).
    /// - Returns: the epoch's report.
    @discardableResult
    public func trainEpoch(progress: ((Int, Int) -> Void)? = nil) -> EpochReport {
        precondition(!isFinished, "training is finished")
        let features = training.featureCount
        let batchSize = config.batchSize
        let rows = training.count
        let stepsPerEpoch = (rows + batchSize - 1) / batchSize
        let totalSteps = stepsPerEpoch * config.epochs
        let order = rng.permutation(rows)
        model.reserve(batch: min(batchSize, rows))
        if config.proximalMu > 0 {
            precondition(proximalReference?.count == model.parameterCount, "FedProx needs reference weights of the model's size")
        }
        var lossSum = 0.0
        var correct = 0
        var learningRate = config.learningRate
        let start = Clock.now()
        training.features.withUnsafeBufferPointer { allFeatures in
            var offset = 0
            while offset < rows {
                let n = min(batchSize, rows - offset)
                let x = model.inputBuffer
                for r in 0..<n {
                    let row = order[offset + r]
                    (x + r * features).update(from: allFeatures.baseAddress! + row * features, count: features)
                    labelBuffer[r] = training.labels[row]
                }
                let result: (loss: Double, correct: Int)
                if let start = startWeights {
                    result = start.withUnsafeBufferPointer { weights in
                        model.reading(parameters: weights) { model.pass(batch: n, labels: labelBuffer, training: true, backward: true, rng: &rng) }
                    }
                } else {
                    result = model.pass(batch: n, labels: labelBuffer, training: true, backward: true, rng: &rng)
                }
                lossSum += result.loss * Double(n)
                correct += result.correct
                learningRate = config.learningRate * config.schedule.factor(step: step, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
                if let start = startWeights {
                    applyUpdate(learningRate: learningRate, from: start)
                    startWeights = nil
                } else {
                    applyUpdate(learningRate: learningRate)
                }
                step += 1
                offset += n
                progress?(offset, rows)
            }
        }
        let seconds = Clock.now() - start
        epoch += 1
        var report = EpochReport(
            epoch: epoch, trainLoss: lossSum / Double(rows), trainAccuracy: Double(correct) / Double(rows),
            learningRate: learningRate, seconds: seconds, samplesPerSecond: Double(rows) / max(seconds, 1e-9))
        if let validation {
            let metrics = model.evaluate(validation)
            report.validationLoss = metrics.loss
            report.validationAccuracy = metrics.accuracy
            trackBest(metrics)
        }
        history.append(report)
        if isFinished, let best, config.patience != nil {
            try? model.setParameters(best.parameters)
        }
        return report
    }

    private func applyUpdate(learningRate: Double) {
        model.withParametersAndGradients { w, g in
            adjust(gradients: g, weights: UnsafeBufferPointer(w))
            optimizer.update(parameters: w, gradients: g, learningRate: learningRate)
        }
    }

    /// The first step's update when the pass read `start` (``start(from:)``): written from `start` into the
    /// model for plain SGD, and otherwise after copying `start` in, so the result is the same either way.
    private func applyUpdate(learningRate: Double, from start: [Float]) {
        guard optimizer.updatesOutOfPlace else {
            // The length was checked by start(from:).
            try? model.setParameters(start)
            applyUpdate(learningRate: learningRate)
            return
        }
        model.withParametersAndGradients { w, g in
            start.withUnsafeBufferPointer { start in
                adjust(gradients: g, weights: start)
                optimizer.update(from: start, into: w, gradients: g, learningRate: learningRate)
            }
        }
    }

    /// Adds FedProx's proximal term μ(w − reference) to the gradient, then clips its norm when configured.
    private func adjust(gradients g: UnsafeMutableBufferPointer<Float>, weights w: UnsafeBufferPointer<Float>) {
        let mu = Float(config.proximalMu)
        if mu > 0, let reference = proximalReference {
            reference.withUnsafeBufferPointer { ref in
                for i in 0..<w.count { g[i] += mu * (w[i] - ref[i]) }
            }
        }
        if let clip = config.clipNorm.map({ Float($0) }) {
            let norm = BLAS.norm(count: g.count, x: g.baseAddress!)
            if norm > clip { BLAS.scale(count: g.count, alpha: clip / norm, x: g.baseAddress!) }
        }
    }

    private func trackBest(_ metrics: EvaluationMetrics) {
        guard config.patience != nil else { return }
        let value = config.earlyStoppingMetric == .accuracy ? metrics.accuracy : -metrics.loss
        guard value.isFinite else { return }
        if best == nil || value > best!.metric {
            best = BestSoFar(metric: value, epoch: epoch, parameters: model.parameterVector())
        }
    }

    /// Runs epochs until the configured count or early stopping.
    /// - Parameter onEpoch: called after each epoch with its report.
    public func run(onEpoch: ((EpochReport) -> Void)? = nil) {
        while !isFinished {
            let report = trainEpoch()
            onEpoch?(report)
        }
    }

    /// Everything needed to resume this run exactly.
    public func checkpoint() -> TrainingCheckpoint {
        TrainingCheckpoint(
            spec: model.spec, config: config, epoch: epoch, step: step, randomState: rng.state,
            parameters: startWeights ?? model.parameterVector(), optimizer: optimizer, history: history,
            bestMetric: best?.metric, bestEpoch: best?.epoch, bestParameters: best?.parameters,
            proximalReference: proximalReference)
    }

    private struct BestSoFar {
        var metric: Double
        var epoch: Int
        var parameters: [Float]
    }
}

/// A monotonic clock in seconds.
enum Clock {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
