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

    /// Loads a CSV, checks it against the model, and applies the model's scaling. Labelled rows have the
    /// training layout (label first); `unlabelled` rows are features only.
    /// - Throws: ``CoreError`` for a bad file, or rows that do not fit the model (the message says when the
    ///   label column is the likely difference).
    public func prepare(dataAt path: String, unlabelled: Bool = false) throws(CoreError) -> Dataset {
        var data = unlabelled ? try DeployedPrediction.loadUnlabelled(path: path) : try Dataset.loadCSV(path: path)
        let expected = file.spec.inputFeatures
        if data.featureCount != expected {
            let hint: String
            switch (unlabelled, data.featureCount - expected) {
            case (false, -1): hint = "; if the rows have no label column, add --unlabelled"
            case (true, 1): hint = "; if the first column is a label, leave out --unlabelled"
            default: hint = ""
            }
            throw CoreError(
                .modelMismatch,
                "\(path): rows have \(data.featureCount) \(unlabelled ? "values" : "features") but the model expects \(expected) features\(hint)")
        }
        if !unlabelled { try data.validate(featureCount: expected, classCount: file.spec.classCount) }
        file.scaling.apply(to: &data)
        return data
    }

    /// Metrics on a labelled CSV.
    public func evaluate(dataAt path: String) throws(CoreError) -> EvaluationMetrics {
        model.evaluate(try prepare(dataAt: path))
    }

    /// The answer to every row of a CSV: labelled rows (label first, the label unused) or `unlabelled` ones.
    public func predict(dataAt path: String, unlabelled: Bool = false) throws(CoreError) -> [DeployedPrediction.Answer] {
        let data = try prepare(dataAt: path, unlabelled: unlabelled)
        return Self.answers(logits: model.logits(features: data.features, count: data.count), classes: file.spec.classCount)
    }

    /// The answer to each row of row-major `logits`: its 1-based row, most likely class, and softmax probabilities.
    public static func answers(logits: [Float], classes: Int) -> [DeployedPrediction.Answer] {
        (0..<(logits.count / classes)).map { r in
            let row = logits[(r * classes)..<((r + 1) * classes)]
            let top = row.indices.max { row[$0] < row[$1] }!
            let peak = row[top]
            let exps = row.map { exp(Double($0 - peak)) }
            let sum = exps.reduce(0, +)
            return DeployedPrediction.Answer(row: r + 1, label: top - r * classes, probabilities: exps.map { $0 / sum })
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
