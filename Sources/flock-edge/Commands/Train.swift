import ArgumentParser
import FlockCore
import FlockEdge
import Foundation

/// `flock-edge train`: central training on one machine.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a CSV data set on this machine.",
        discussion: """
            Shows progress per epoch (a bar on a terminal). With --json, prints one JSON object per epoch \
            and a final one with accuracy, loss, epochs, samples_per_second and parameters.
            With --checkpoint DIR, a checkpoint is written after every epoch and an interrupted run started \
            again with the same DIR resumes where it stopped and ends in the same weights.

            Example: flock-edge train --data data/mnist5k-train.csv --eval data/mnist5k-test.csv --model 2nn --epochs 5
            """)

    @Option(help: ArgumentHelp("Training data: header-less CSV, label first.", valueName: "TRAIN.csv"))
    var data: String

    @Option(help: ArgumentHelp("Evaluation data, scored after every epoch and at the end.", valueName: "TEST.csv"))
    var eval: String?

    @Option(help: ArgumentHelp("Model: 2nn | cnn | mlp:H1,H2,... | logreg.", valueName: "MODEL"))
    var model: String = "2nn"

    @Option(parsing: .unconditional, help: "Number of passes over the training data.")
    var epochs: Int = 5

    @Option(parsing: .unconditional, help: "Rows per mini-batch.")
    var batch: Int = 10

    @Option(parsing: .unconditional, help: "Base learning rate.")
    var lr: Double = 0.05

    @Option(help: "Optimizer.")
    var optimizer: OptimizerKind = .sgd

    @Option(parsing: .unconditional, help: "SGD momentum in [0, 1) (0 disables it).")
    var momentum: Double = 0

    @Flag(help: "Use Nesterov momentum (SGD with --momentum > 0).")
    var nesterov = false

    @Option(name: .customLong("weight-decay"), parsing: .unconditional, help: "Weight decay (L2 for sgd/adam, decoupled for adamw).")
    var weightDecay: Double = 0

    @Option(help: ArgumentHelp("Learning-rate schedule: constant | step:EVERY:GAMMA | cosine[:WARMUP_EPOCHS].", valueName: "SCHEDULE"))
    var schedule: String = "constant"

    @Option(name: .customLong("clip-norm"), parsing: .unconditional, help: "Clip the gradient's L2 norm to this bound before each step.")
    var clipNorm: Double?

    @Option(parsing: .unconditional, help: "Stop when the eval accuracy has not improved for this many epochs, and keep the best weights (needs --eval).")
    var patience: Int?

    @Option(help: "Feature scaling fitted on the training data (max: divide by the largest value; standardize: per-feature mean and deviation).")
    var scale: ScalingKind = .max

    @Option(parsing: .unconditional, help: "Number of classes (default: the largest training label plus one).")
    var classes: Int?

    @Option(parsing: .unconditional, help: "Random seed for initialization, shuffling and dropout.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "Threads for the matrix kernels (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("Save the trained model (spec, scaling, weights) to this file.", valueName: "MODEL.flock"))
    var save: String?

    @Option(help: ArgumentHelp("Checkpoint folder: resume from it if it holds a checkpoint; write one after every epoch.", valueName: "DIR"))
    var checkpoint: String?

    @Flag(help: "Print JSON lines instead of text (an error: {\"error\": …, \"code\": 1} on standard error).")
    var json = false

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number") }
        guard momentum >= 0, momentum < 1 else { throw ValidationError("--momentum must be in [0, 1)") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw ValidationError("--weight-decay must be 0 or more") }
        if let clipNorm, !(clipNorm > 0 && clipNorm.isFinite) { throw ValidationError("--clip-norm must be a positive number") }
        if let patience, patience < 1 { throw ValidationError("--patience must be at least 1") }
        do { _ = try ModelSpec.preset(model, inputFeatures: 784, classCount: 10) } catch where error.code == .invalidArgument {
            throw ValidationError("--model: \(error.message)")
        } catch {}
        do { _ = try LearningRateSchedule(parsing: schedule) } catch { throw ValidationError("--schedule: \(error.message)") }
        guard !nesterov || (optimizer == .sgd && momentum > 0) else { throw ValidationError("--nesterov needs --optimizer sgd and --momentum > 0") }
        if patience != nil, eval == nil { throw ValidationError("--patience needs --eval (early stopping watches the eval accuracy)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let classes, classes < 2 { throw ValidationError("--classes must be at least 2") }
    }

    func run() throws {
        let config: TrainingConfig
        do {
            config = TrainingConfig(
                epochs: epochs, batchSize: batch, learningRate: lr,
                optimizer: OptimizerConfig(kind: optimizer, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay),
                schedule: try LearningRateSchedule(parsing: schedule), clipNorm: clipNorm, patience: patience, seed: seed)
        } catch {
            throw ValidationError(error.message)
        }
        let options = CentralTraining.Options(
            trainPath: data, evalPath: eval, model: model, classes: classes, scaling: scale,
            config: config, savePath: save, checkpointFolder: checkpoint,
            threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)

        let progress = ProgressDisplay()
        let totalEpochs = epochs
        let asJSON = json
        var observer = CentralTraining.Observer()
        observer.started = { parameters, rows, resumed in
            if asJSON { return }
            let resumedText = resumed > 0 ? ", resuming after epoch \(resumed)" : ""
            ProgressDisplay.line("training \(options.model) (\(parameters) parameters) on \(rows) rows\(resumedText)")
        }
        observer.batch = { epoch, done, total in progress.update(epoch: epoch, of: totalEpochs, done: done, total: total) }
        observer.epoch = { report in
            progress.clear()
            if asJSON {
                print(JSONOutput.line(report))
                fflush(nil)
            } else {
                var line = "epoch \(report.epoch)/\(totalEpochs)  train loss \(fmt(report.trainLoss))  train acc \(fmt(report.trainAccuracy))"
                if let l = report.validationLoss, let a = report.validationAccuracy { line += "  eval loss \(fmt(l))  eval acc \(fmt(a))" }
                line += "  \(Int(report.samplesPerSecond.rounded())) samples/s"
                print(line)
                fflush(nil)
            }
        }

        let summary: CentralTraining.Summary
        do {
            summary = try CentralTraining(options: options).run(observer: observer)
        } catch {
            progress.clear()
            throw failure(error.message, json: json)
        }
        if json {
            print(JSONOutput.line(summary))
        } else {
            print("")
            print("model        \(summary.model) (\(summary.parameters) parameters)")
            print("epochs       \(summary.epochs)\(summary.stoppedEarly ? " (stopped early)" : "")")
            print("\(summary.evaluatedOn) accuracy \(fmt(summary.accuracy))")
            print("\(summary.evaluatedOn) loss     \(fmt(summary.loss))")
            print("throughput   \(Int(summary.samplesPerSecond.rounded())) samples/s")
            if let save, let hash = summary.modelHash { print("saved        \(save) (sha256 \(hash))") }
        }
    }
}

/// Four decimals.
func fmt(_ x: Double) -> String { String(format: "%.4f", x) }
