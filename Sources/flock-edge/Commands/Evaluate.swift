import ArgumentParser
import FlockCore
import FlockEdge
import Foundation

/// `flock-edge evaluate`: metrics of a saved model on labelled data.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a saved model on a labelled CSV: loss, accuracy, per-class accuracy, confusion matrix.")

    @Option(help: ArgumentHelp("Model file written by `train --save`.", valueName: "MODEL.flock"))
    var model: String

    @Option(help: ArgumentHelp("Labelled data: header-less CSV, label first.", valueName: "DATA.csv"))
    var data: String

    @Flag(help: "Print one JSON object (an error: {\"error\": …, \"code\": 1} on standard error).")
    var json = false

    func run() throws {
        do {
            let saved = try SavedModel(path: model)
            let metrics = try saved.evaluate(dataAt: data)
            if json {
                print(JSONOutput.line(EvaluateJSON(model: saved.file.spec.name, hash: saved.hash, metrics: metrics)))
                return
            }
            print("model     \(saved.file.spec.name) (sha256 \(saved.hash))")
            print("rows      \(metrics.count)")
            print("accuracy  \(fmt(metrics.accuracy))")
            print("loss      \(fmt(metrics.loss))")
            print("")
            print("class  rows  accuracy")
            for (c, acc) in metrics.perClassAccuracy.enumerated() {
                let rows = metrics.confusion[c].reduce(0, +)
                let label = String(c).padding(toLength: 5, withPad: " ", startingAt: 0)
                let count = String(rows).padding(toLength: 4, withPad: " ", startingAt: 0)
                print("\(label)  \(count)  \(acc.map(fmt) ?? "-")")
            }
            print("")
            print("confusion (rows: true class, columns: predicted)")
            for row in metrics.confusion { print(row.map { String(format: "%5d", $0) }.joined()) }
        } catch {
            throw failure(error.message, json: json)
        }
    }

    /// `--json` output: the model's name and content hash, then the metrics.
    struct EvaluateJSON: Encodable {
        var model: String
        var hash: String
        var metrics: EvaluationMetrics

        enum CodingKeys: String, CodingKey { case model, hash }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(model, forKey: .model)
            try container.encode(hash, forKey: .hash)
            try metrics.encode(to: encoder)
        }
    }
}

/// `flock-edge predict`: the predicted class of every row.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict the class of every row of a CSV: with the deployed production model, or with a saved model.",
        discussion: """
            Without --model, answers with the production model that `flock-edge run` deployed in --state-dir (its \
            hash and the server's signature are checked first; a model that fails either is refused). When the \
            server runs a shadow or rollback analysis on this edge, the compared model runs on the same rows and \
            the paired counts (right/wrong pairs, agreement, latency) are left for `flock-edge run` to report. \
            Rows have the training layout (label first) unless --unlabelled; a label is used only for the comparison. \
            Prints one line per row: row, class, probability. With --json, one object: the answering model's \
            version and hash, and per row its number (from 1), class, probability and every class's probability.
            """)

    @Option(
        name: [.customLong("data"), .customLong("input")],
        help: ArgumentHelp("Rows to answer: header-less CSV, label first unless --unlabelled.", valueName: "FILE.csv"))
    var input: String

    @Option(help: ArgumentHelp("A model file written by `train --save` (instead of the deployment).", valueName: "MODEL.flock"))
    var model: String?

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("flock-edge run's state folder (the deployment).", valueName: "DIR"))
    var stateDir: String = "./flock-edge-state"

    @Option(help: ArgumentHelp("The edge whose deployment answers (default: the only one in --state-dir).", valueName: "NAME"))
    var id: String?

    @Flag(help: "Rows are features only, without a label column.")
    var unlabelled = false

    @Flag(help: "Print one JSON object: the version that answered and the answers (an error: {\"error\": …, \"code\": 1} on standard error).")
    var json = false

    func run() throws {
        do {
            if let model {
                let saved = try SavedModel(path: model)
                let answers = try saved.predict(dataAt: input, unlabelled: unlabelled)
                print(json ? JSONOutput.line(PredictJSON(version: nil, hash: saved.hash, comparedVersion: nil, agreement: nil, predictions: answers))
                           : lines(answers))
                return
            }
            let data = unlabelled ? try DeployedPrediction.loadUnlabelled(path: input) : try Dataset.loadCSV(path: input)
            let outcome = try DeployedPrediction.predict(stateDirectory: stateDir, id: id, data: data)
            if json {
                let agreement = outcome.comparison.map { $0.rows > 0 ? Double($0.agreements) / Double($0.rows) : 0 }
                print(JSONOutput.line(PredictJSON(
                    version: outcome.productionVersion, hash: outcome.productionHash, comparedVersion: outcome.comparedVersion,
                    agreement: agreement, predictions: outcome.answers)))
            } else {
                print(lines(outcome.answers))
                let note = outcome.comparedVersion.map { "; version \($0) compared beside it" } ?? ""
                ProgressDisplay.line("answered by production version \(outcome.productionVersion)\(note)")
            }
        } catch {
            throw failure(error.message, json: json)
        }
    }

    private func lines(_ answers: [DeployedPrediction.Answer]) -> String {
        answers.map { "\($0.row)\t\($0.label)\t\(String(format: "%.4f", $0.probability))" }.joined(separator: "\n")
    }

    /// `--json` output.
    struct PredictJSON: Encodable {
        var version: UInt64?
        var hash: String
        var comparedVersion: UInt64?
        var agreement: Double?
        var predictions: [DeployedPrediction.Answer]

        enum CodingKeys: String, CodingKey {
            case version, hash, agreement, predictions
            case comparedVersion = "compared_version"
        }
    }
}
