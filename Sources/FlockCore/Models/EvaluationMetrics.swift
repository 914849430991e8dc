/// Classification metrics of a model on a data set: loss, accuracy, per-class accuracy, confusion matrix.
public struct EvaluationMetrics: Sendable, Codable, Equatable {
    /// Number of rows evaluated.
    public let count: Int
    /// Mean softmax cross-entropy.
    public let loss: Double
    /// Share of rows whose most likely class is the label.
    public let accuracy: Double
    /// Accuracy of the rows of each class (recall); `nil` for a class with no rows.
    public let perClassAccuracy: [Double?]
    /// `confusion[truth][predicted]` row counts.
    public let confusion: [[Int]]

    /// Derives the metrics from a confusion matrix and the summed loss.
    public init(confusion: [[Int]], totalLoss: Double) {
        self.confusion = confusion
        let count = confusion.reduce(0) { $0 + $1.reduce(0, +) }
        self.count = count
        loss = count > 0 ? totalLoss / Double(count) : .nan
        let right = confusion.indices.reduce(0) { $0 + confusion[$1][$1] }
        accuracy = count > 0 ? Double(right) / Double(count) : .nan
        perClassAccuracy = confusion.indices.map { c in
            let n = confusion[c].reduce(0, +)
            return n > 0 ? Double(confusion[c][c]) / Double(n) : nil
        }
    }

    enum CodingKeys: String, CodingKey {
        case count, loss, accuracy
        case perClassAccuracy = "per_class_accuracy"
        case confusion
    }
}
