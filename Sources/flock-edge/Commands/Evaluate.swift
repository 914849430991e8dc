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

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        do {
            let saved = try SavedModel(path: model)
            let metrics = try saved.evaluate(dataAt: data)
            if json {
                print(JSONOutput.line(metrics))
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
            ProgressDisplay.line("error: \(error.message)")
            throw ExitCode(1)
        }
    }
}

/// `flock-edge predict`: the predicted class of every row.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict the class of every row of a CSV with a saved model.",
        discussion: "Rows have the training layout (label first); the label column is ignored. Prints one line per row: row, class, probability.")

    @Option(help: ArgumentHelp("Model file written by `train --save`.", valueName: "MODEL.flock"))
    var model: String

    @Option(help: ArgumentHelp("Data: header-less CSV, label first (ignored).", valueName: "DATA.csv"))
    var data: String

    @Flag(help: "Print one JSON object per row.")
    var json = false

    func run() throws {
        do {
            let saved = try SavedModel(path: model)
            for (row, p) in try saved.predict(dataAt: data).enumerated() {
                if json {
                    print("{\"probability\":\(String(format: "%.6f", p.probability)),\"row\":\(row + 1),\"class\":\(p.label)}")
                } else {
                    print("\(row + 1)\t\(p.label)\t\(String(format: "%.4f", p.probability))")
                }
            }
        } catch {
            ProgressDisplay.line("error: \(error.message)")
            throw ExitCode(1)
        }
    }
}
