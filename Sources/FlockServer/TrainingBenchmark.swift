import FlockCore

/// Local-training throughput of Flock's models, measured the way the PyTorch peer measures its own
/// (`scripts/peer_torch_bench.py`, `shared/peer/torch_train_bench.py`), so the two can sit in one table.
///
/// For each thread count T, model M and batch size B, in that nesting order:
/// 1. a model with ``Model/threads`` set to T;
/// 2. a fresh model from the preset M with weight seed 0;
/// 3. plain SGD (no momentum, no weight decay, constant learning rate 0.05) for ``Options/epochs`` epochs over
///    the training CSV, features divided by their maximum (``FeatureScaling`` `max`, fitted on the training
///    data: 255 for MNIST, the peer's fixed scale);
/// 4. epoch 1 is warm-up; throughput = training rows / ``timedMedian(_:)`` of the epoch times, where an
///    epoch's time is ``EpochReport/seconds``: the training passes only (batch gathering, forward, loss,
///    backward, update), like the peer's timed loop;
/// 5. accuracy on the test CSV after the last epoch.
///
/// Before the models of each thread count, ``MatrixMultiplyBenchmark`` measures sgemm GFLOP/s at that count.
/// The thread count in force before ``run(peer:observer:)`` is restored when it returns.
///
/// Numbers are only comparable between runs on an otherwise idle machine.
public struct TrainingBenchmark: Sendable {
    /// What to measure.
    public struct Options: Sendable {
        /// Training CSV (label first).
        public var trainPath: String
        /// Test CSV, scored after the last epoch.
        public var testPath: String
        /// Thread counts of the matrix kernels, each at least 1.
        public var threads: [Int]
        /// Model presets (`2nn`, `cnn`; any ``ModelSpec/preset(_:inputFeatures:classCount:)`` name works).
        public var models: [String]
        /// Mini-batch sizes, each at least 1.
        public var batchSizes: [Int]
        /// Total epochs per configuration, at least 2 (1 warm-up + at least 1 timed). The peer uses 5 and needs 4.
        public var epochs: Int
        /// SGD learning rate.
        public var learningRate: Double
        /// Side of the sgemm measurement, or `nil` to skip it.
        public var sgemmSize: Int?

        /// Creates options; the defaults are the peer's grid.
        public init(
            trainPath: String = "data/mnist5k-train.csv",
            testPath: String = "data/mnist5k-test.csv",
            threads: [Int] = [1, 2],
            models: [String] = ["2nn", "cnn"],
            batchSizes: [Int] = [10, 32, 64],
            epochs: Int = 5,
            learningRate: Double = 0.05,
            sgemmSize: Int? = 1024
        ) {
            self.trainPath = trainPath
            self.testPath = testPath
            self.threads = threads
            self.models = models
            self.batchSizes = batchSizes
            self.epochs = epochs
            self.learningRate = learningRate
            self.sgemmSize = sgemmSize
        }
    }

    /// Callbacks for progress display. They run on the measuring thread, between measurements.
    public struct Observer {
        /// Called once the data are loaded: (training rows, test rows, configurations to measure).
        public var started: (_ trainRows: Int, _ testRows: Int, _ configurations: Int) -> Void = { _, _, _ in }
        /// Called after each sgemm measurement: (threads, GFLOP/s).
        public var sgemm: (_ threads: Int, _ gigaflopsPerSecond: Double) -> Void = { _, _ in }
        /// Called after each configuration.
        public var measured: (BenchmarkResult) -> Void = { _ in }

        /// An observer that ignores everything.
        public init() {}
    }

    /// What to measure.
    public let options: Options

    /// Creates a benchmark.
    public init(options: Options) { self.options = options }

    /// Runs every configuration and returns them beside the peer's matching rows.
    /// - Parameters:
    ///   - peer: The PyTorch peer's numbers, if any.
    ///   - observer: Progress callbacks.
    /// - Throws: ``CoreError`` for unreadable or malformed data, a model that does not fit the data, or
    ///   out-of-range options.
    public func run(
        peer: PeerResults? = nil,
        observer: Observer = Observer()
    ) throws(CoreError) -> TrainingBenchmarkReport {
        try validate()
        var train = try Dataset.loadCSV(path: options.trainPath)
        var test = try Dataset.loadCSV(path: options.testPath)
        let scaling = FeatureScaling.fit(.max, to: train)
        scaling.apply(to: &train)
        scaling.apply(to: &test)

        observer.started(
            train.count,
            test.count,
            options.threads.count * options.models.count * options.batchSizes.count
        )
        var results = [BenchmarkResult]()
        var sgemm = [Int: Double]()
        for threads in options.threads {
            if let size = options.sgemmSize {
                let gflops = try MatrixMultiplyBenchmark(size: size).gigaflopsPerSecond(threads: threads)
                sgemm[threads] = gflops
                observer.sgemm(threads, gflops)
            }
            for model in options.models {
                for batch in options.batchSizes {
                    let result = try Self.measure(
                        model: model,
                        batch: batch,
                        threads: threads,
                        epochs: options.epochs,
                        learningRate: options.learningRate,
                        training: train,
                        test: test
                    )
                    results.append(result)
                    observer.measured(result)
                }
            }
        }
        return TrainingBenchmarkReport(results: results, peer: peer, sgemmGflops: sgemm, sgemmSize: options.sgemmSize)
    }

    /// Checks the options' ranges.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the value.
    public func validate() throws(CoreError) {
        guard options.epochs >= 2 else {
            throw CoreError(
                .invalidArgument,
                "the benchmark needs at least 2 epochs (1 warm-up, then timed ones), got \(options.epochs)"
            )
        }
        guard !options.threads.isEmpty, !options.models.isEmpty, !options.batchSizes.isEmpty else {
            throw CoreError(.invalidArgument, "the benchmark needs at least one thread count, model and batch size")
        }
        if let bad = options.threads.first(where: { $0 < 1 }) {
            throw CoreError(.invalidArgument, "thread counts must be at least 1, got \(bad)")
        }
        if let bad = options.batchSizes.first(where: { $0 < 1 }) {
            throw CoreError(.invalidArgument, "batch sizes must be at least 1, got \(bad)")
        }
        if let size = options.sgemmSize, size < 1 {
            throw CoreError(.invalidArgument, "the sgemm size must be at least 1, got \(size)")
        }
    }

    /// Measures one configuration on data that are already scaled.
    ///
    /// Sets the thread count of the matrix kernels to `threads` and leaves it there.
    ///
    /// - Parameters:
    ///   - model: A preset name; the result carries it lowercased.
    ///   - batch: Rows per mini-batch.
    ///   - threads: Threads of the matrix kernels.
    ///   - epochs: Total epochs, at least 2.
    ///   - learningRate: Plain-SGD learning rate.
    ///   - training: Scaled training rows.
    ///   - test: Scaled test rows, scored after the last epoch.
    /// - Throws: ``CoreError`` for a bad preset, data that do not fit it, or out-of-range values.
    /// - Complexity: `epochs` passes over `training`, one over `test`.
    public static func measure(
        model: String,
        batch: Int,
        threads: Int,
        epochs: Int,
        learningRate: Double = 0.05,
        training: Dataset,
        test: Dataset
    ) throws(CoreError) -> BenchmarkResult {
        guard epochs >= 2 else {
            throw CoreError(
                .invalidArgument,
                "the benchmark needs at least 2 epochs (1 warm-up, then timed ones), got \(epochs)"
            )
        }
        guard threads >= 1 else {
            throw CoreError(.invalidArgument, "thread counts must be at least 1, got \(threads)")
        }
        let classes = max(training.classCount, test.classCount)
        let spec = try ModelSpec.preset(model, inputFeatures: training.featureCount, classCount: classes)
        try test.validate(featureCount: spec.inputFeatures, classCount: spec.classCount)
        let network = try Model(spec: spec, seed: 0)
        network.threads = threads
        let config = TrainingConfig(
            epochs: epochs,
            batchSize: batch,
            learningRate: learningRate,
            optimizer: OptimizerConfig(),
            schedule: .constant,
            seed: 0
        )
        let trainer = try Trainer(model: network, config: config, training: training)
        var seconds = [Double]()
        while !trainer.isFinished { seconds.append(trainer.trainEpoch().seconds) }
        let accuracy = network.evaluate(test).accuracy
        return BenchmarkResult(
            threads: threads,
            model: model.lowercased(),
            batch: batch,
            samplesPerSecond: Double(training.count) / max(timedMedian(seconds), 1e-12),
            testAccuracy: accuracy,
            epochSeconds: seconds
        )
    }

    /// The epoch time the throughput is computed from: the median of epochs 2 to 4 (`epochSeconds[1..<4]`), or
    /// of those of them that were run; epoch 1 is warm-up. With the peer's 5 epochs that is its "median of 3".
    /// - Precondition: at least 2 epochs.
    public static func timedMedian(_ epochSeconds: [Double]) -> Double {
        precondition(epochSeconds.count >= 2, "the benchmark needs a warm-up epoch and at least one timed epoch")
        return median(Array(epochSeconds[1..<min(4, epochSeconds.count)]))
    }

    /// The median; the mean of the two middle values for an even count (as Python's `statistics.median`).
    /// - Precondition: `values` is not empty.
    static func median(_ values: [Double]) -> Double {
        precondition(!values.isEmpty, "the median of nothing")
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
