import FlockCore
import Foundation

/// Trains a model on one machine from CSV files: the `flock-edge train` workflow as a library, so tests
/// and the edge runtime call exactly what the command runs.
///
/// Loads and validates the data, fits the feature scaling on the training set only, builds the model from a
/// preset, trains epoch by epoch (resuming from a checkpoint folder when one holds a checkpoint), evaluates,
/// and saves a model file that carries the scaling.
public struct CentralTraining: Sendable {
    /// What to train, on what, and how.
    public struct Options: Sendable {
        /// Training CSV (label first).
        public var trainPath: String
        /// Evaluation CSV, evaluated after every epoch and at the end.
        public var evalPath: String?
        /// Model preset (`2nn`, `cnn`, `mlp:…`, `logreg`).
        public var model: String
        /// Number of classes; `nil`: the largest label in the training data plus one.
        public var classes: Int?
        /// Feature scaling fitted on the training data.
        public var scaling: ScalingKind
        /// Training hyper-parameters.
        public var config: TrainingConfig
        /// Where to save the final model, if anywhere.
        public var savePath: String?
        /// Checkpoint folder: resumed from when it holds a checkpoint, written after every epoch.
        public var checkpointFolder: String?
        /// Seed of the weight initialization.
        public var initSeed: UInt64
        /// Threads the model splits batches over.
        public var threads: Int

        /// Creates options; defaults match `flock-edge train`'s.
        public init(
            trainPath: String, evalPath: String? = nil, model: String = "2nn", classes: Int? = nil,
            scaling: ScalingKind = .max, config: TrainingConfig = TrainingConfig(), savePath: String? = nil,
            checkpointFolder: String? = nil, initSeed: UInt64? = nil, threads: Int = ComputeThreads.count
        ) {
            self.trainPath = trainPath
            self.evalPath = evalPath
            self.model = model
            self.classes = classes
            self.scaling = scaling
            self.config = config
            self.savePath = savePath
            self.checkpointFolder = checkpointFolder
            self.initSeed = initSeed ?? config.seed
            self.threads = threads
        }
    }

    /// What a finished run reports.
    public struct Summary: Sendable, Codable {
        /// Final accuracy on the evaluation set (training set when there is none).
        public var accuracy: Double
        /// Final mean loss on that set.
        public var loss: Double
        /// Epochs completed.
        public var epochs: Int
        /// Mean training throughput over the epochs run in this process.
        public var samplesPerSecond: Double
        /// Number of parameters.
        public var parameters: Int
        /// The model preset.
        public var model: String
        /// Which set `accuracy` and `loss` are measured on: `eval` or `train`.
        public var evaluatedOn: String
        /// Per-class accuracy on that set.
        public var perClassAccuracy: [Double?]
        /// Confusion matrix on that set.
        public var confusion: [[Int]]
        /// Content hash of the saved model file.
        public var modelHash: String?
        /// Epoch the run resumed from (0 when it started fresh).
        public var resumedFromEpoch: Int
        /// True when early stopping ended the run.
        public var stoppedEarly: Bool
        /// Wall time of the whole run in seconds.
        public var seconds: Double

        enum CodingKeys: String, CodingKey {
            case accuracy, loss, epochs
            case samplesPerSecond = "samples_per_second"
            case parameters, model
            case evaluatedOn = "evaluated_on"
            case perClassAccuracy = "per_class_accuracy"
            case confusion
            case modelHash = "model_hash"
            case resumedFromEpoch = "resumed_from_epoch"
            case stoppedEarly = "stopped_early"
            case seconds
        }
    }

    /// Callbacks for progress display.
    public struct Observer: Sendable {
        /// Called once the data are loaded and the model is built: (parameters, training rows, resumed epoch).
        public var started: @Sendable (_ parameters: Int, _ rows: Int, _ resumedFrom: Int) -> Void = { _, _, _ in }
        /// Called after each batch: (epoch being trained, rows done, rows in the epoch).
        public var batch: @Sendable (_ epoch: Int, _ done: Int, _ total: Int) -> Void = { _, _, _ in }
        /// Called after each epoch.
        public var epoch: @Sendable (EpochReport) -> Void = { _ in }

        /// An observer that ignores everything.
        public init() {}
    }

    /// The options of this run.
    public let options: Options

    /// Creates a run.
    public init(options: Options) { self.options = options }

    /// Runs the whole workflow.
    /// - Throws: ``CoreError`` naming the file and line for bad data, or the value for bad options.
    public func run(observer: Observer = Observer()) throws(CoreError) -> Summary {
        let started = Date()
        try options.config.validate()
        var train = try Dataset.loadCSV(path: options.trainPath)
        var eval = try options.evalPath.map { path throws(CoreError) in try Dataset.loadCSV(path: path) }
        let classes = options.classes ?? train.classCount
        guard classes >= 2 else {
            throw CoreError(.invalidData, "\(options.trainPath): the training data hold only \(classes) class; a classifier needs at least 2 (or pass --classes)")
        }

        var checkpoint = try options.checkpointFolder.flatMap { folder throws(CoreError) in try TrainingCheckpoint.read(fromFolder: folder) }
        let spec: ModelSpec
        let scaling: FeatureScaling
        if let checkpoint {
            spec = checkpoint.spec
            scaling = checkpoint.scaling
        } else {
            spec = try ModelSpec.preset(options.model, inputFeatures: train.featureCount, classCount: classes)
            scaling = FeatureScaling.fit(options.scaling, to: train)
        }
        try train.validate(featureCount: spec.inputFeatures, classCount: spec.classCount)
        try eval?.validate(featureCount: spec.inputFeatures, classCount: spec.classCount)
        scaling.apply(to: &train)
        if eval != nil { scaling.apply(to: &eval!) }

        let model = try Model(spec: spec, seed: options.initSeed)
        model.threads = options.threads
        let trainer: Trainer
        if let existing = checkpoint {
            trainer = try Trainer(resuming: existing, model: model, training: train, validation: eval)
        } else {
            trainer = try Trainer(model: model, config: options.config, training: train, validation: eval)
        }
        let resumedFrom = trainer.epoch
        observer.started(model.parameterCount, train.count, resumedFrom)
        var trainedSeconds = 0.0
        var trainedRows = 0
        while !trainer.isFinished {
            let epochNumber = trainer.epoch + 1
            let report = trainer.trainEpoch { done, total in observer.batch(epochNumber, done, total) }
            trainedSeconds += report.seconds
            trainedRows += train.count
            if let folder = options.checkpointFolder {
                checkpoint = trainer.checkpoint()
                checkpoint!.scaling = scaling
                try checkpoint!.write(toFolder: folder)
            }
            observer.epoch(report)
        }

        let final = model.evaluate(eval ?? train)
        var hash: String?
        if let savePath = options.savePath {
            let metadata = [
                "trained_on": options.trainPath, "epochs": "\(trainer.epoch)", "batch_size": "\(trainer.config.batchSize)",
                "learning_rate": "\(trainer.config.learningRate)", "optimizer": trainer.config.optimizer.kind.rawValue,
                "accuracy": "\(final.accuracy)",
            ]
            hash = try ModelFile(model: model, scaling: scaling, metadata: metadata).write(to: savePath).hex
        }
        return Summary(
            accuracy: final.accuracy, loss: final.loss, epochs: trainer.epoch,
            samplesPerSecond: trainedSeconds > 0 ? Double(trainedRows) / trainedSeconds : 0,
            parameters: model.parameterCount, model: spec.name, evaluatedOn: eval == nil ? "train" : "eval",
            perClassAccuracy: final.perClassAccuracy, confusion: final.confusion, modelHash: hash,
            resumedFromEpoch: resumedFrom, stoppedEarly: trainer.stoppedEarly, seconds: Date().timeIntervalSince(started))
    }
}
