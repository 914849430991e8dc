/// Everything that decides a training run besides the data and the model: the same config, seed and
/// data give the same weights.
public struct TrainingConfig: Sendable, Codable, Equatable {
    /// Number of passes over the training data.
    public var epochs: Int
    /// Rows per mini-batch (the last batch of an epoch may be smaller).
    public var batchSize: Int
    /// Base learning rate.
    public var learningRate: Double
    /// Update rule and its hyper-parameters.
    public var optimizer: OptimizerConfig
    /// Learning-rate schedule.
    public var schedule: LearningRateSchedule
    /// Clip the global gradient L2 norm to this bound before each update (`nil`: no clipping).
    public var clipNorm: Double?
    /// FedProx proximal coefficient μ (Li et al. 2020): adds μ/2 ‖w − w_ref‖² to the loss. 0 disables it.
    public var proximalMu: Double
    /// Stop when the validation metric has not improved for this many epochs (`nil`: never), then
    /// restore the best weights.
    public var patience: Int?
    /// The validation metric for early stopping.
    public var earlyStoppingMetric: EarlyStoppingMetric
    /// Seed of the shuffling and dropout stream.
    public var seed: UInt64

    /// Creates a configuration.
    public init(
        epochs: Int = 5, batchSize: Int = 10, learningRate: Double = 0.05, optimizer: OptimizerConfig = OptimizerConfig(),
        schedule: LearningRateSchedule = .constant, clipNorm: Double? = nil, proximalMu: Double = 0,
        patience: Int? = nil, earlyStoppingMetric: EarlyStoppingMetric = .accuracy, seed: UInt64 = 0
    ) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.optimizer = optimizer
        self.schedule = schedule
        self.clipNorm = clipNorm
        self.proximalMu = proximalMu
        self.patience = patience
        self.earlyStoppingMetric = earlyStoppingMetric
        self.seed = seed
    }

    /// Checks every value's range.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the value and what is allowed.
    public func validate() throws(CoreError) {
        guard epochs >= 1 else { throw CoreError(.invalidArgument, "epochs must be at least 1, got \(epochs)") }
        guard batchSize >= 1 else { throw CoreError(.invalidArgument, "batch size must be at least 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else {
            throw CoreError(.invalidArgument, "learning rate must be a positive number, got \(learningRate)")
        }
        if let clipNorm, !(clipNorm > 0 && clipNorm.isFinite) {
            throw CoreError(.invalidArgument, "gradient clipping bound must be positive, got \(clipNorm)")
        }
        guard proximalMu >= 0, proximalMu.isFinite else { throw CoreError(.invalidArgument, "FedProx mu must be >= 0, got \(proximalMu)") }
        if let patience, patience < 1 { throw CoreError(.invalidArgument, "patience must be at least 1 epoch, got \(patience)") }
        try optimizer.validate()
    }
}

/// The validation metric that early stopping watches.
public enum EarlyStoppingMetric: String, Sendable, Codable, CaseIterable {
    /// Higher is better.
    case accuracy
    /// Lower is better.
    case loss
}

/// What one epoch of training did.
public struct EpochReport: Sendable, Codable, Equatable {
    /// One-based epoch number.
    public var epoch: Int
    /// Mean training loss over the epoch's batches (weighted by rows).
    public var trainLoss: Double
    /// Training accuracy over the epoch (in training mode, as the batches were seen).
    public var trainAccuracy: Double
    /// Learning rate of the epoch's last step.
    public var learningRate: Double
    /// Wall time of the epoch's training passes, in seconds.
    public var seconds: Double
    /// Training rows per second.
    public var samplesPerSecond: Double
    /// Validation loss after the epoch, when a validation set is given.
    public var validationLoss: Double?
    /// Validation accuracy after the epoch, when a validation set is given.
    public var validationAccuracy: Double?

    enum CodingKeys: String, CodingKey {
        case epoch
        case trainLoss = "train_loss"
        case trainAccuracy = "train_accuracy"
        case learningRate = "lr"
        case seconds
        case samplesPerSecond = "samples_per_second"
        case validationLoss = "loss"
        case validationAccuracy = "accuracy"
    }
}
