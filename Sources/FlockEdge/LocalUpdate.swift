import FlockCore

/// What the server asks of an edge for one round's local training.
public struct LocalTrainingPlan: Sendable, Codable, Equatable {
    /// Local epochs over the edge's data.
    public var epochs: Int
    /// Rows per mini-batch.
    public var batchSize: Int
    /// Local learning rate (plain SGD, as in McMahan et al.).
    public var learningRate: Double
    /// FedProx μ (0: plain FedAvg).
    public var proximalMu: Double
    /// Clip the local gradient norm (nil: no clipping).
    public var clipNorm: Double?

    /// Creates a plan.
    public init(epochs: Int = 1, batchSize: Int = 10, learningRate: Double = 0.05, proximalMu: Double = 0, clipNorm: Double? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.proximalMu = proximalMu
        self.clipNorm = clipNorm
    }
}

/// One edge's contribution to a round: the change it made to the global weights and how many examples
/// it trained on (its weight in the average).
public struct LocalUpdate: Sendable {
    /// w_local − w_global.
    public var delta: [Float]
    /// Training rows behind the update.
    public var examples: Int
    /// Mean training loss of the last local epoch.
    public var trainLoss: Double
    /// Seconds spent training.
    public var seconds: Double

    /// Creates an update from its parts.
    public init(delta: [Float], examples: Int, trainLoss: Double, seconds: Double) {
        self.delta = delta
        self.examples = examples
        self.trainLoss = trainLoss
        self.seconds = seconds
    }

    /// Trains `model` (a scratch model of the global spec, reused across calls) from `global` on `data`
    /// (already scaled) following `plan`, and returns the update. Deterministic for a given `seed`.
    /// - Throws: ``CoreError`` when the data do not fit the model or the plan is out of range.
    public static func train(
        model: Model, global: [Float], data: Dataset, plan: LocalTrainingPlan, seed: UInt64
    ) throws(CoreError) -> LocalUpdate {
        let run = try LocalTraining.run(model: model, global: global, data: data, plan: plan, seed: seed)
        let delta = model.withParameters { local in
            global.withUnsafeBufferPointer { g in
                [Float](unsafeUninitializedCapacity: g.count) { out, initialized in
                    for i in 0..<g.count { out[i] = local[i] - g[i] }
                    initialized = g.count
                }
            }
        }
        return LocalUpdate(delta: delta, examples: run.examples, trainLoss: run.trainLoss, seconds: run.seconds)
    }
}

/// Local training without the delta: the trained weights stay in the model, for callers that read them
/// in place (the simulation adds `local − global` straight into its running sum).
public struct LocalTraining: Sendable {
    /// Training rows behind the update.
    public var examples: Int
    /// Mean training loss of the last local epoch.
    public var trainLoss: Double
    /// Seconds spent training.
    public var seconds: Double

    /// Creates a result from its parts.
    public init(examples: Int, trainLoss: Double, seconds: Double) {
        self.examples = examples
        self.trainLoss = trainLoss
        self.seconds = seconds
    }

    /// Trains `model` from `global` on `data` following `plan`; the model ends with the local weights.
    /// Deterministic for a given `seed`. The model's parameters before the call do not matter: its first step
    /// reads `global` in place (``Trainer/start(from:)``), which saves a copy per edge in a simulation.
    /// - Throws: ``CoreError`` when the data do not fit the model or the plan is out of range.
    public static func run(
        model: Model, global: [Float], data: Dataset, plan: LocalTrainingPlan, seed: UInt64
    ) throws(CoreError) -> LocalTraining {
        let config = TrainingConfig(
            epochs: plan.epochs, batchSize: plan.batchSize, learningRate: plan.learningRate,
            clipNorm: plan.clipNorm, proximalMu: plan.proximalMu, seed: seed)
        let trainer = try Trainer(model: model, config: config, training: data)
        try trainer.start(from: global)
        if plan.proximalMu > 0 { trainer.proximalReference = global }
        var seconds = 0.0
        var loss = 0.0
        while !trainer.isFinished {
            let report = trainer.trainEpoch()
            seconds += report.seconds
            loss = report.trainLoss
        }
        return LocalTraining(examples: data.count, trainLoss: loss, seconds: seconds)
    }
}
