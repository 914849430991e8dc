import FlockCore

/// Single-precision matrix-multiply (sgemm) throughput in GFLOP/s, measured through FlockCore's public API.
///
/// FlockCore keeps its BLAS wrapper internal, so this runs the forward pass of a one-layer model,
/// `ModelSpec(inputShape: [N], classCount: N, layers: [.dense(units: N)])`, on an N x N batch with
/// ``Model/logits(features:count:)``: one N x N x N sgemm (2N^3 floating-point operations, which is what is
/// counted) plus the bias rows and the copies in and out, which are O(N^2) and so a few per cent at N = 1024.
/// The model feeds the batch to the kernel in chunks of rows, as it does in evaluation, so the figure is what
/// Flock's dense layers actually get, slightly below a single large `cblas_sgemm` call.
public struct MatrixMultiplyBenchmark: Sendable {
    /// Matrix side N.
    public var size: Int
    /// Timed runs; the median is reported. One untimed run comes first.
    public var runs: Int

    /// Creates a benchmark.
    /// - Precondition: `size >= 1` and `runs >= 1`.
    public init(size: Int = 1024, runs: Int = 5) {
        precondition(size >= 1 && runs >= 1, "size and runs must be at least 1")
        self.size = size
        self.runs = runs
    }

    /// Floating-point operations of one run: 2N^3.
    public var operations: Double { 2 * Double(size) * Double(size) * Double(size) }

    /// Measures with the batch's rows split over `threads` threads (``Model/threads``).
    /// - Returns: GFLOP/s of the median run.
    /// - Throws: ``CoreError`` when the model cannot be built (not expected for a positive size).
    /// - Complexity: O(`runs` x N^3).
    public func gigaflopsPerSecond(threads: Int = 1) throws(CoreError) -> Double {
        let spec = ModelSpec(name: "sgemm", inputShape: [size], classCount: size, layers: [.dense(units: size)])
        let model = try Model(spec: spec, seed: 0)
        model.threads = threads
        var generator = SeededGenerator(seed: 1)
        let batch = (0..<(size * size)).map { _ in Float(generator.nextNormal()) }
        _ = model.logits(features: batch, count: size)  // allocates the activation buffers; untimed
        var seconds = [Double]()
        let clock = ContinuousClock()
        for _ in 0..<runs {
            let elapsed = clock.measure { _ = model.logits(features: batch, count: size) }
            seconds.append(Self.seconds(elapsed))
        }
        return operations / max(TrainingBenchmark.median(seconds), 1e-12) / 1e9
    }

    static func seconds(_ duration: Duration) -> Double {
        let (whole, attoseconds) = duration.components
        return Double(whole) + Double(attoseconds) * 1e-18
    }
}
