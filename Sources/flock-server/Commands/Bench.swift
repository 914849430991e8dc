import ArgumentParser
import FlockCompression
import FlockCore
import FlockCrypto
import FlockServer
import FlockSimulation
import Foundation

/// `flock-server bench`: performance measurements on this machine.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Flock's performance on this machine.",
        subcommands: [Training.self, SecAgg.self, Codecs.self]
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

    /// `flock-server bench secagg`.
    struct SecAgg: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "secagg",
            abstract: "Cost of one secure-aggregation round per phase, client and server, beside ChaCha20's speed.",
            discussion: """
                For every combination of --n, --lengths, --drops and --graphs, n edges run the real protocol \
                (X25519 keys, Shamir shares sealed with XChaCha20-Poly1305, ChaCha20 masks) against the server; \
                the dropped share of edges leaves after sharing keys, before the masked input (the server's \
                costliest case, as in Bonawitz et al. 2017). Client times are medians over edges, each on one \
                core; server times are on one core. Every run checks that the unmasked sum equals the \
                survivors' plain sum exactly. "phase GB/s" is the bytes of mask keystream a client adds per \
                second of its masked-input phase, which also agrees a key with each neighbour (X25519); \
                "expand GB/s" is the expansion alone, one edge's k + 1 streams over d words on one core; \
                "of libsodium" divides that by libsodium's raw ChaCha20 keystream rate and "of libcrypto" by \
                OpenSSL libcrypto's, the faster of the two, which expands the masks (the same keystream).
                Where the default threshold (two thirds of a neighbourhood) would abort the round because a \
                neighbourhood keeps fewer survivors, t is lowered to the fewest survivors (the t column).
                The complete graph is skipped where n * n * d exceeds --complete-limit (it grows with n^2).
                --bonawitz adds the configurations beside Bonawitz et al. 2017's published costs (n = 500, \
                d = 100,000, complete graph, 0/10/30% drop-out: client 849 ms; server 2 s / 62 s / 143 s): \
                d = 100,000 with the complete graph at n = 255 (the most shares Shamir over GF(2^8) gives) and \
                with secagg+ at n = 500.
                """)

        @Option(help: ArgumentHelp("Edges per round, comma-separated.", valueName: "N,..."))
        var n = "10,100,500"

        @Option(help: ArgumentHelp("Words per input vector, comma-separated.", valueName: "D,..."))
        var lengths = "10000,200000,1600000"

        @Option(help: ArgumentHelp("Drop-out shares, comma-separated.", valueName: "F,..."))
        var drops = "0,0.1,0.3"

        @Option(help: ArgumentHelp("Graphs, comma-separated: secagg+, complete.", valueName: "G,..."))
        var graphs = "secagg+,complete"

        @Option(name: .customLong("complete-limit"), help: "Largest n * n * d run with the complete graph.")
        var completeLimit = 2_000_000_000

        @Flag(help: "Also run d = 100,000 at n = 255 (complete) and n = 500 (secagg+), beside Bonawitz et al. 2017.")
        var bonawitz = false

        @Option(help: "Edges run at once (default: all cores).")
        var workers: Int?

        @Flag(help: "Print one JSON object instead of the table.")
        var json = false

        func validate() throws {
            _ = try CommaList.positiveIntegers(n, option: "--n")
            _ = try CommaList.positiveIntegers(lengths, option: "--lengths")
            _ = try CommaList.choices(graphs, from: ["secagg+", "complete"], option: "--graphs")
            guard drops.split(separator: ",").allSatisfy({ Double($0).map { $0 >= 0 && $0 < 1 } ?? false }) else {
                throw ValidationError("--drops takes shares in [0, 1), comma-separated")
            }
            if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        }

        func run() throws {
            var configurations = [(Int, Int, Double, Bool)]()
            for graph in try CommaList.choices(graphs, from: ["secagg+", "complete"], option: "--graphs") {
                for count in try CommaList.positiveIntegers(n, option: "--n") {
                    for length in try CommaList.positiveIntegers(lengths, option: "--lengths") {
                        if graph == "complete", Double(count) * Double(count) * Double(length) > Double(completeLimit) { continue }
                        for drop in drops.split(separator: ",").compactMap({ Double($0) }) {
                            configurations.append((count, length, drop, graph == "complete"))
                        }
                    }
                }
            }
            if bonawitz {
                // Shamir over GF(2^8) gives at most 255 shares, so the complete graph stops at n = 255.
                for drop in [0, 0.1, 0.3] { configurations.append((255, 100_000, drop, true)) }
                for drop in [0, 0.1, 0.3] { configurations.append((500, 100_000, drop, false)) }
            }
            let chacha = MaskStream.keystreamBytesPerSecond(backend: .libsodium)
            let libcrypto = MaskStream.Backend.libcrypto.isAvailable ? MaskStream.keystreamBytesPerSecond(backend: .libcrypto) : nil
            StandardError.line(String(
                format: "bench secagg: ChaCha20 per core %.2f GB/s (libsodium), %@ (libcrypto); masks use %@; %d configurations",
                chacha / 1e9, libcrypto.map { String(format: "%.2f GB/s", $0 / 1e9) } ?? "not available",
                MaskStream.Backend.fastest.rawValue, configurations.count))
            var rows = [SecAggBenchmark.Row]()
            do {
                for (i, (count, length, drop, complete)) in configurations.enumerated() {
                    let cores = workers ?? ProcessInfo.processInfo.activeProcessorCount
                    let row = try SecAggBenchmark.run(n: count, length: length, dropFraction: drop, complete: complete, workers: cores)
                    StandardError.line(String(
                        format: "[%d/%d] n=%d d=%d drop=%.0f%% %@: client mask %.1f ms, server unmask %.1f ms",
                        i + 1, configurations.count, count, length, drop * 100, row.graph, row.clientSeconds[2] * 1000,
                        row.serverSeconds[3] * 1000))
                    rows.append(row)
                }
            } catch {
                StandardError.line("error: \(error.message)")
                throw ExitCode(1)
            }
            if json {
                struct Output: Encodable {
                    let chacha20BytesPerSecond: Double
                    let libcryptoChacha20BytesPerSecond: Double?
                    let maskBackend: String
                    let rows: [SecAggBenchmark.Row]
                    enum CodingKeys: String, CodingKey {
                        case chacha20BytesPerSecond = "chacha20_bytes_per_second"
                        case libcryptoChacha20BytesPerSecond = "libcrypto_chacha20_bytes_per_second"
                        case maskBackend = "mask_backend"
                        case rows
                    }
                }
                print(JSONOutput.line(Output(
                    chacha20BytesPerSecond: chacha, libcryptoChacha20BytesPerSecond: libcrypto,
                    maskBackend: MaskStream.Backend.fastest.rawValue, rows: rows)))
            } else {
                print(SecAggBenchmark.render(rows, chachaBytesPerSecond: chacha, libcryptoBytesPerSecond: libcrypto))
            }
        }
    }

    struct Codecs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "codecs",
            abstract: "Upload bytes, accuracy and coding time of each update codec on the mnist5k simulate run.",
            discussion: """
                Runs `flock-server simulate` with the rounds issue's settings (2nn, 20 clients, half per round, \
                E = 1, B = 10, lr 0.05) once per codec and partition: the --codecs without secure aggregation and \
                the --secure-codecs under it. "up KB/edge/round" is the median bytes one edge sends in a round \
                (under secure aggregation with its keys and shares); "x fewer than f32" divides 4 bytes per \
                parameter by it. Encode and decode times are medians of 5 runs on one core over an update of the \
                model's size; decode is one payload without secure aggregation and the round's sum with it.
                """)

        @Option(help: ArgumentHelp("Training data.", valueName: "TRAIN.csv"))
        var train = "data/mnist5k-train.csv"

        @Option(help: ArgumentHelp("Evaluation data.", valueName: "TEST.csv"))
        var eval = "data/mnist5k-test.csv"

        @Option(parsing: .upToNextOption, help: ArgumentHelp("Codecs run without secure aggregation, separated by spaces.", valueName: "ID"))
        var codecs = [
            "f32", "f32+deflate", "q8", "q4", "q4+deflate", "q2", "q2+deflate", "q1", "rot+q1", "topk:0.005", "topk:0.03,momentum=0.5,values=sign",
            "topk:0.03,momentum=0.5,values=sign+deflate", "sketch:5x7000,q2,k=1000",
        ]

        @Option(
            name: .customLong("secure-codecs"), parsing: .upToNextOption,
            help: ArgumentHelp("Codecs run under secure aggregation, separated by spaces.", valueName: "ID"))
        var secureCodecs = ["fixed32", "q8", "rot+q4", "rot+q2", "q1", "rot+q1", "sketch:5x10800,q1,k=1000"]

        @Option(help: ArgumentHelp("Partitions, comma-separated.", valueName: "P,..."))
        var partitions = "iid,shards"

        @Option(help: "Rounds per run.")
        var rounds = 20

        @Flag(help: "Print one JSON array instead of the table.")
        var json = false

        func validate() throws {
            guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
            do {
                for id in codecs { try CodecSpec(parsing: id).check(secureAggregation: false) }
                for id in secureCodecs { try CodecSpec(parsing: id).check(secureAggregation: true) }
                for p in partitions.split(separator: ",") { _ = try PartitionScheme(parsing: String(p)) }
            } catch let error as CodecError {
                throw ValidationError(error.message)
            } catch let error as CoreError {
                throw ValidationError(error.message)
            }
        }

        func run() throws {
            var runs = [(CodecSpec, Bool, PartitionScheme)]()
            for p in partitions.split(separator: ",") {
                let partition = try PartitionScheme(parsing: String(p))
                for id in codecs { runs.append((try CodecSpec(parsing: id), false, partition)) }
                for id in secureCodecs { runs.append((try CodecSpec(parsing: id), true, partition)) }
            }
            var rows = [CodecBenchmark.Row]()
            do throws(CoreError) {
                for (i, (codec, secure, partition)) in runs.enumerated() {
                    let row = try CodecBenchmark.run(
                        codec: codec, secure: secure, partition: partition, rounds: rounds, trainPath: train, evalPath: eval,
                        threads: ProcessInfo.processInfo.activeProcessorCount)
                    StandardError.line(String(
                        format: "[%d/%d] %@ (secure aggregation %@) on %@: accuracy %.4f, %.1fx fewer bytes than f32", i + 1, runs.count,
                        row.codec, secure ? "on" : "off", row.partition, row.accuracy, row.ratioToF32))
                    rows.append(row)
                }
            } catch {
                StandardError.line("error: \(error.message)")
                throw ExitCode(1)
            }
            print(json ? JSONOutput.line(rows) : CodecBenchmark.render(rows))
        }
    }
}
