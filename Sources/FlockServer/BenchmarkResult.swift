/// Flock's measurement of one training-benchmark configuration: a thread count, a model and a batch size.
///
/// Its JSON form has the keys `threads`, `model`, `batch`, `samples_per_second`, `test_accuracy` and
/// `epoch_seconds`.
public struct BenchmarkResult: Sendable, Codable, Equatable {
    /// Threads of the matrix kernels during the run.
    public var threads: Int
    /// The model preset, lowercased (`2nn`, `cnn`).
    public var model: String
    /// Rows per mini-batch.
    public var batch: Int
    /// Training rows divided by the median wall time of the timed epochs (see
    /// ``TrainingBenchmark/timedMedian(_:)``).
    public var samplesPerSecond: Double
    /// Accuracy on the test set after the last epoch, in 0...1.
    public var testAccuracy: Double
    /// Wall time of every epoch's training passes in seconds, the warm-up epoch first.
    public var epochSeconds: [Double]

    /// Creates a result.
    public init(
        threads: Int,
        model: String,
        batch: Int,
        samplesPerSecond: Double,
        testAccuracy: Double,
        epochSeconds: [Double]
    ) {
        self.threads = threads
        self.model = model
        self.batch = batch
        self.samplesPerSecond = samplesPerSecond
        self.testAccuracy = testAccuracy
        self.epochSeconds = epochSeconds
    }

    enum CodingKeys: String, CodingKey {
        case threads, model, batch
        case samplesPerSecond = "samples_per_second"
        case testAccuracy = "test_accuracy"
        case epochSeconds = "epoch_seconds"
    }
}
