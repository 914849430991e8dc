import ArgumentParser
import FlockCore
import FlockServer
import Foundation

/// `flock-server bench`: performance measurements on this machine.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Flock's performance on this machine.",
        subcommands: [Training.self]
    )

    /// `flock-server bench training`.
    struct Training: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Local-training throughput of the 2NN and CNN, beside PyTorch's when its results are given.",
            discussion: """
                Measures like scripts/peer_torch_bench.py: for each thread count, model and batch size, a fresh \
                model (seed 0) is trained with plain SGD (lr 0.05) on the --data CSV scaled by its maximum. \
                Epoch 1 is warm-up; samples/s = training rows / median time of epochs 2-4 (of those run); the \
                accuracy is measured on the --eval CSV after the last epoch. sgemm GFLOP/s is measured at each \
                thread count through a 1024-unit dense layer (2 x 1024^3 operations, median of 5 runs).
                Prints one progress line per configuration on standard error, then the table. Numbers are only \
                comparable on an otherwise idle machine; `make bench` runs the PyTorch peer and this command \
                one after the other.

                --json prints one object: {"rows": [{"threads", "model", "batch", "samples_per_second", \
                "test_accuracy", "epoch_seconds", "peer_samples_per_second", "peer_test_accuracy", "ratio"}], \
                "sgemm_gflops": {"THREADS": GFLOPS}}; the peer_* keys and ratio are null when the peer has no \
                matching row.
                """
        )

        @Option(help: ArgumentHelp("Training data: header-less CSV, label first.", valueName: "TRAIN.csv"))
        var data = "data/mnist5k-train.csv"

        @Option(help: ArgumentHelp("Test data, scored after the last epoch.", valueName: "TEST.csv"))
        var eval = "data/mnist5k-test.csv"

        @Option(help: ArgumentHelp("Thread counts of the matrix kernels, comma-separated.", valueName: "T,..."))
        var threads = "1,2"

        @Option(help: ArgumentHelp("Models, comma-separated: 2nn, cnn.", valueName: "MODEL,..."))
        var models = "2nn,cnn"

        @Option(
            name: .customLong("batch-sizes"),
            help: ArgumentHelp("Mini-batch sizes, comma-separated.", valueName: "B,...")
        )
        var batchSizes = "10,32,64"

        @Option(help: "Epochs per configuration, at least 2: 1 warm-up, then timed ones (the peer's default is 5).")
        var epochs = 5

        @Option(
            name: .customLong("peer-json"),
            help: ArgumentHelp("PyTorch results written by scripts/peer_torch_bench.py --out FILE.", valueName: "FILE")
        )
        var peerJSON: String?

        @Flag(help: "Print one JSON object instead of the table.")
        var json = false

        func validate() throws {
            _ = try CommaList.positiveIntegers(threads, option: "--threads")
            _ = try CommaList.choices(models, from: ["2nn", "cnn"], option: "--models")
            _ = try CommaList.positiveIntegers(batchSizes, option: "--batch-sizes")
            guard epochs >= 2 else {
                throw ValidationError("--epochs must be at least 2 (1 warm-up epoch, then at least 1 timed one)")
            }
        }

        func run() throws {
            let options = TrainingBenchmark.Options(
                trainPath: data,
                testPath: eval,
                threads: try CommaList.positiveIntegers(threads, option: "--threads"),
                models: try CommaList.choices(models, from: ["2nn", "cnn"], option: "--models"),
                batchSizes: try CommaList.positiveIntegers(batchSizes, option: "--batch-sizes"),
                epochs: epochs
            )
            var observer = TrainingBenchmark.Observer()
            observer.started = { trainRows, testRows, configurations in
                let noun = configurations == 1 ? "configuration" : "configurations"
                StandardError.line(
                    "bench: \(trainRows) training rows, \(testRows) test rows, \(configurations) \(noun)"
                )
            }
            observer.sgemm = { threads, gflops in
                StandardError.line("threads=\(threads) sgemm \(String(format: "%.1f", gflops)) GFLOP/s")
            }
            observer.measured = { r in
                let rate = String(format: "%.1f", r.samplesPerSecond)
                let median = String(format: "%.3f", TrainingBenchmark.timedMedian(r.epochSeconds))
                let warmUp = String(format: "%.3f", r.epochSeconds[0])
                StandardError.line(
                    "threads=\(r.threads) \(r.model) B=\(r.batch) \(rate) samples/s (median epoch \(median)s, "
                        + "warm-up \(warmUp)s) test acc after \(r.epochSeconds.count) epochs "
                        + String(format: "%.4f", r.testAccuracy)
                )
            }
            do {
                let peer = try peerJSON.map { path throws(CoreError) in try PeerResults.load(path: path) }
                let report = try TrainingBenchmark(options: options).run(peer: peer, observer: observer)
                print(json ? JSONOutput.line(report) : report.render())
            } catch {
                StandardError.line("error: \(error.message)")
                throw ExitCode(1)
            }
        }
    }
}
