import Foundation

/// Two models run on the same inputs, counted pair by pair: the evidence that a shadow deployment gathers.
///
/// The *served* model is the one whose answers are used (production); the *compared* model runs beside it
/// on the very same rows (a shadow candidate, or the production it replaced). Labelled rows fall into the
/// four cells of McNemar's table; every row counts towards agreement. Latency is one sample per call of
/// ``add(served:compared:data:)`` for each model, in milliseconds; the most recent ``latencyWindow`` samples
/// are kept.
public struct PairedComparison: Sendable, Codable, Equatable {
    /// Samples of latency kept per model.
    public static let latencyWindow = 512

    /// Labelled rows both models got right.
    public var bothRight = 0
    /// Labelled rows only the served model got right.
    public var onlyServedRight = 0
    /// Labelled rows only the compared model got right.
    public var onlyComparedRight = 0
    /// Labelled rows both got wrong.
    public var bothWrong = 0
    /// Rows without a label (agreement and latency only).
    public var unlabelled = 0
    /// Rows where both models predicted the same class.
    public var agreements = 0
    /// Sum over labelled rows of (compared loss - served loss), in nats.
    public var lossDifferenceSum = 0.0
    /// Sum of squares of those differences.
    public var lossDifferenceSquares = 0.0
    /// Rows where the served model's output was not finite (an error: production answered with garbage).
    public var servedErrors = 0
    /// Rows where the compared model's output was not finite.
    public var comparedErrors = 0
    /// Milliseconds per call of the served model (most recent first out).
    public var servedLatencyMs: [Double] = []
    /// Milliseconds per call of the compared model.
    public var comparedLatencyMs: [Double] = []

    /// An empty comparison.
    public init() {}

    /// Labelled pairs: the four McNemar cells.
    public var labelledPairs: Int { bothRight + onlyServedRight + onlyComparedRight + bothWrong }
    /// Every row compared.
    public var rows: Int { labelledPairs + unlabelled }

    /// Runs both models on `data` (already scaled; a label below 0 marks an unlabelled row) and adds the pairs.
    /// - Returns: the served model's logits (row-major), which is what the caller answers with.
    /// - Precondition: both models take `data.featureCount` inputs and have the same classes.
    @discardableResult
    public mutating func add(served: Model, compared: Model, data: Dataset) -> [Float] {
        precondition(served.spec.classCount == compared.spec.classCount, "paired models must share their classes")
        let (servedLogits, servedMs) = Self.timed { served.logits(features: data.features, count: data.count) }
        let (comparedLogits, comparedMs) = Self.timed { compared.logits(features: data.features, count: data.count) }
        Self.push(servedMs, into: &servedLatencyMs)
        Self.push(comparedMs, into: &comparedLatencyMs)
        let classes = served.spec.classCount
        for row in 0..<data.count {
            let a = Self.scores(servedLogits, row: row, classes: classes)
            let b = Self.scores(comparedLogits, row: row, classes: classes)
            if !a.finite { servedErrors += 1 }
            if !b.finite { comparedErrors += 1 }
            if a.best == b.best { agreements += 1 }
            let label = Int(data.labels[row])
            guard label >= 0, label < classes else {
                unlabelled += 1
                continue
            }
            switch (a.best == label && a.finite, b.best == label && b.finite) {
            case (true, true): bothRight += 1
            case (true, false): onlyServedRight += 1
            case (false, true): onlyComparedRight += 1
            case (false, false): bothWrong += 1
            }
            let difference = b.loss(label) - a.loss(label)
            if difference.isFinite {
                lossDifferenceSum += difference
                lossDifferenceSquares += difference * difference
            }
        }
        return servedLogits
    }

    /// Adds another comparison's counts and latency samples.
    public mutating func merge(_ other: PairedComparison) {
        bothRight += other.bothRight
        onlyServedRight += other.onlyServedRight
        onlyComparedRight += other.onlyComparedRight
        bothWrong += other.bothWrong
        unlabelled += other.unlabelled
        agreements += other.agreements
        lossDifferenceSum += other.lossDifferenceSum
        lossDifferenceSquares += other.lossDifferenceSquares
        servedErrors += other.servedErrors
        comparedErrors += other.comparedErrors
        for ms in other.servedLatencyMs { Self.push(ms, into: &servedLatencyMs) }
        for ms in other.comparedLatencyMs { Self.push(ms, into: &comparedLatencyMs) }
    }

    /// The `q` quantile (0...1, nearest rank) of latency samples; 0 when there are none.
    public static func percentile(_ q: Double, of samples: [Double]) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    private static func push(_ ms: Double, into samples: inout [Double]) {
        samples.append(ms)
        if samples.count > latencyWindow { samples.removeFirst(samples.count - latencyWindow) }
    }

    private static func timed(_ body: () -> [Float]) -> ([Float], Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }

    /// The arg-max of one row of logits, whether the row is finite, and its softmax cross-entropy per label.
    private static func scores(_ logits: [Float], row: Int, classes: Int) -> (best: Int, finite: Bool, loss: (Int) -> Double) {
        let base = row * classes
        var best = 0
        var finite = true
        var top = -Float.infinity
        for c in 0..<classes {
            let v = logits[base + c]
            if !v.isFinite { finite = false }
            if v > top {
                top = v
                best = c
            }
        }
        let maximum = Double(top)
        var sum = 0.0
        for c in 0..<classes { sum += exp(Double(logits[base + c]) - maximum) }
        let logSum = maximum + log(sum)
        return (best, finite, { label in logSum - Double(logits[base + label]) })
    }

    enum CodingKeys: String, CodingKey {
        case bothRight = "both_right"
        case onlyServedRight = "only_served_right"
        case onlyComparedRight = "only_compared_right"
        case bothWrong = "both_wrong"
        case unlabelled, agreements
        case lossDifferenceSum = "loss_difference_sum"
        case lossDifferenceSquares = "loss_difference_squares"
        case servedErrors = "served_errors"
        case comparedErrors = "compared_errors"
        case servedLatencyMs = "served_latency_ms"
        case comparedLatencyMs = "compared_latency_ms"
    }
}
