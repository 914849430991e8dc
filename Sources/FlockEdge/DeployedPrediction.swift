import FlockCore
import Foundation

/// `flock-edge predict` on the deployed models: answers with production and, when the deployment compares
/// another model, runs it on the same rows and leaves the paired comparison for `flock-edge run` to report.
public enum DeployedPrediction {
    /// One answer.
    public struct Answer: Sendable, Codable, Equatable {
        /// The row it answers, counted from 1 in the file's order.
        public var row: Int
        /// The predicted class.
        public var label: Int
        /// Its softmax probability.
        public var probability: Double
        /// The softmax probability of every class, in class order.
        public var probabilities: [Double]

        /// An answer: the most likely class of `probabilities` is `label`.
        public init(row: Int, label: Int, probabilities: [Double]) {
            self.row = row
            self.label = label
            self.probability = probabilities[label]
            self.probabilities = probabilities
        }
    }

    /// What one call did.
    public struct Outcome: Sendable {
        /// The production version that answered.
        public var productionVersion: UInt64
        /// Its hash.
        public var productionHash: String
        /// One answer per row.
        public var answers: [Answer]
        /// The compared version, if the deployment compares one.
        public var comparedVersion: UInt64?
        /// The comparison of this call (nil without a compared model).
        public var comparison: PairedComparison?
        /// The inbox file the comparison was left in.
        public var recordedAt: String?
    }

    /// Reads a CSV of feature rows without labels (every column a feature).
    /// - Throws: ``CoreError/Code/invalidData`` naming the line of a ragged row or a value that is not a finite number.
    public static func loadUnlabelled(path: String) throws(CoreError) -> Dataset {
        let text = String(decoding: try FileIO.read(path), as: UTF8.self)
        var features: [Float] = []
        var width = 0
        var rows = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let values = trimmed.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard values.allSatisfy({ $0?.isFinite == true }) else {
                throw CoreError(.invalidData, "\(path):\(index + 1): every value must be a finite number")
            }
            if width == 0 { width = values.count }
            guard values.count == width else { throw CoreError(.invalidData, "\(path):\(index + 1): \(values.count) values; the first row has \(width)") }
            features += values.map { $0! }
            rows += 1
        }
        guard rows > 0 else { throw CoreError(.invalidData, "\(path): no rows") }
        return Dataset(features: features, labels: [Int32](repeating: -1, count: rows), featureCount: width, source: path)
    }

    /// Answers `data` (unscaled; labels of -1 mark unlabelled rows) with edge `id`'s production model, comparing
    /// the deployment's other model on the same rows.
    /// - Throws: ``CoreError`` when there is no deployment, a model fails its hash or signature check (it is not
    ///   served), or the rows do not fit the model.
    public static func predict(stateDirectory: String, id: String?, data: Dataset) throws(CoreError) -> Outcome {
        guard let (edge, deployment) = try ShadowDeployment.load(stateDirectory: stateDirectory, id: id) else {
            throw CoreError(.fileNotFound, "\(stateDirectory) holds no deployment: flock-edge run receives one once the server has a production model")
        }
        let served = try ShadowDeployment.loadModel(deployment.production, stateDirectory: stateDirectory)
        var rows = data
        guard rows.featureCount == served.spec.inputFeatures else {
            throw CoreError(.modelMismatch, "\(data.source): rows have \(rows.featureCount) features but the model expects \(served.spec.inputFeatures)")
        }
        if let bad = rows.labels.firstIndex(where: { Int($0) >= served.spec.classCount }) {
            throw CoreError(.invalidData, "\(data.source): row \(bad + 1): label \(rows.labels[bad]) is out of range for this model")
        }
        served.scaling.apply(to: &rows)
        let production = try served.makeModel()
        var outcome = Outcome(productionVersion: deployment.production.version, productionHash: deployment.production.hash, answers: [])
        let logits: [Float]
        if let comparedModel = deployment.compared, deployment.analysis > 0 {
            let compared = try ShadowDeployment.loadModel(comparedModel, stateDirectory: stateDirectory)
            guard compared.spec.inputFeatures == served.spec.inputFeatures, compared.spec.classCount == served.spec.classCount else {
                throw CoreError(.modelMismatch, "the compared model takes other inputs than production")
            }
            var comparison = PairedComparison()
            logits = comparison.add(served: production, compared: try compared.makeModel(), data: rows)
            let inbox = EvidenceLedger.inbox(stateDirectory: stateDirectory, id: edge)
            try? FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
            let name = "\(deployment.analysis)-\(UInt64(Date().timeIntervalSince1970 * 1e6))-\(UInt32.random(in: 0...UInt32.max)).json"
            let record = PredictRecord(served: deployment.production.hash, compared: comparedModel.hash, comparison: comparison)
            try FileIO.writeAtomically(Array(JSONOutput.data(record)), to: inbox + "/" + name)
            outcome.comparedVersion = comparedModel.version
            outcome.comparison = comparison
            outcome.recordedAt = inbox + "/" + name
        } else {
            logits = production.logits(features: rows.features, count: rows.count)
        }
        outcome.answers = SavedModel.answers(logits: logits, classes: served.spec.classCount)
        return outcome
    }
}
