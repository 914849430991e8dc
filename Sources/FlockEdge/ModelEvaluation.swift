import FlockCore

/// Loading a saved model and using it on CSV data: `flock-edge evaluate` and `flock-edge predict`.
public struct SavedModel {
    /// The model file as read (spec, scaling, metadata, weights).
    public let file: ModelFile
    /// Its verified content hash (hex).
    public let hash: String
    /// The model, ready to run.
    public let model: Model

    /// Reads and verifies a model file.
    /// - Throws: ``CoreError`` when the file is missing, damaged or inconsistent.
    public init(path: String) throws(CoreError) {
        let (file, digest) = try ModelFile.read(from: path)
        self.file = file
        hash = digest.hex
        model = try file.makeModel()
    }

    /// Loads a CSV, checks it against the model, and applies the model's scaling.
    public func prepare(dataAt path: String) throws(CoreError) -> Dataset {
        var data = try Dataset.loadCSV(path: path)
        try data.validate(featureCount: file.spec.inputFeatures, classCount: file.spec.classCount)
        file.scaling.apply(to: &data)
        return data
    }

    /// Metrics on a labelled CSV.
    public func evaluate(dataAt path: String) throws(CoreError) -> EvaluationMetrics {
        model.evaluate(try prepare(dataAt: path))
    }

    /// Predicted class and its softmax probability for every row of a CSV.
    public func predict(dataAt path: String) throws(CoreError) -> [(label: Int, probability: Double)] {
        let data = try prepare(dataAt: path)
        return Self.answers(logits: model.logits(features: data.features, count: data.count), classes: file.spec.classCount)
    }

    /// The most likely class of each row of row-major `logits` and its softmax probability.
    public static func answers(logits: [Float], classes: Int) -> [(label: Int, probability: Double)] {
        (0..<(logits.count / classes)).map { r in
            let row = logits[(r * classes)..<((r + 1) * classes)]
            let top = row.indices.max { row[$0] < row[$1] }!
            let peak = row[top]
            let sum = row.reduce(0.0) { $0 + exp(Double($1 - peak)) }
            return (top - r * classes, 1 / sum)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
