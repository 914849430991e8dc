import FlockCore
import FlockServer
import Foundation
import FlockTestSupport
import Testing

/// Serialized: the benchmark sets the process-wide thread count of the matrix kernels. The tests keep it at its
/// current value so that other suites running at the same time are not affected.
@Suite(.serialized) struct TrainingBenchmarkTests {
    @Test(arguments: [
        ([9.0, 1.0], 1.0),  // 2 epochs: the one timed epoch
        ([9.0, 1.0, 3.0], 2.0),  // 3 epochs: the mean of the two timed ones
        ([9.0, 4.0, 1.0, 2.0], 2.0),  // 4 epochs: the median of epochs 2-4
        ([9.0, 4.0, 1.0, 2.0, 0.1], 2.0),  // 5 epochs: epoch 5 is trained but not timed, like the peer
        ([9.0, 5.0, 3.0, 4.0, 0.1, 0.1, 0.1], 4.0),
    ])
    func timedMedianSkipsTheWarmUpAndUsesEpochsTwoToFour(seconds: [Double], expected: Double) {
        #expect(TrainingBenchmark.timedMedian(seconds) == expected)
    }

    /// 200 training rows and 100 test rows of the real data (every class; the files are sorted by label), as CSV files.
    static func smallFiles(in folder: String) throws -> (train: String, test: String) {
        let train = folder + "/train.csv"
        let test = folder + "/test.csv"
        try TestData.load("mnist5k-train.csv").subset(Array(stride(from: 0, to: 4000, by: 20))).writeCSV(path: train)
        try TestData.load("mnist5k-test.csv").subset(Array(stride(from: 0, to: 1000, by: 10))).writeCSV(path: test)
        return (train, test)
    }

    @Test func smokeRunOfTwoEpochsOnTwoHundredRows() throws {
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (train, test) = try Self.smallFiles(in: folder)
        let threads = ComputeThreads.count
        let options = TrainingBenchmark.Options(
            trainPath: train,
            testPath: test,
            threads: [threads],
            models: ["2NN"],
            batchSizes: [10, 32],
            epochs: 2,
            sgemmSize: 64
        )

        var observer = TrainingBenchmark.Observer()
        var measured = [BenchmarkResult]()
        var sizes = [Int]()
        observer.started = { sizes = [$0, $1, $2] }
        observer.measured = { measured.append($0) }
        let peer = PeerResults(rows: [
            .init(threads: threads, model: "2NN", batch: 10, samplesPerSecond: 1000, testAccuracy: 0.5)
        ])
        let report = try TrainingBenchmark(options: options).run(peer: peer, observer: observer)

        #expect(sizes == [200, 100, 2])
        #expect(ComputeThreads.count == threads)
        #expect(report.rows.map(\.result) == measured)
        #expect(report.rows.count == 2)
        for (row, batch) in zip(report.rows, [10, 32]) {
            let result = row.result
            #expect(result.threads == threads)
            #expect(result.model == "2nn")
            #expect(result.batch == batch)
            #expect(result.epochSeconds.count == 2)
            #expect(result.epochSeconds.allSatisfy { $0 > 0 })
            #expect(result.samplesPerSecond == 200 / result.epochSeconds[1])
            #expect((0...1).contains(result.testAccuracy))
        }
        #expect(report.rows[0].peer?.samplesPerSecond == 1000)
        #expect(report.rows[0].ratio == report.rows[0].result.samplesPerSecond / 1000)
        #expect(report.rows[1].peer == nil)
        #expect(report.rows[1].ratio == nil)
        #expect(report.sgemmGflops[threads].map { $0 > 0 } == true)

        let table = report.render()
        #expect(
            table.hasPrefix("threads  model  batch  Flock samples/s  PyTorch samples/s  ratio  Flock acc  PyTorch acc")
        )
        #expect(table.split(separator: "\n")[2].hasSuffix("-"))
        #expect(table.contains("sgemm 64x64x64"))
    }

    @Test func sameSeedGivesTheSameAccuracy() throws {
        let train = try TestData.load("mnist5k-train.csv").subset(Array(stride(from: 0, to: 4000, by: 20)))
        let test = try TestData.load("mnist5k-test.csv").subset(Array(stride(from: 0, to: 1000, by: 10)))
        let threads = ComputeThreads.count
        let first = try TrainingBenchmark.measure(
            model: "2nn",
            batch: 20,
            threads: threads,
            epochs: 2,
            training: train,
            test: test
        )
        let second = try TrainingBenchmark.measure(
            model: "2nn",
            batch: 20,
            threads: threads,
            epochs: 2,
            training: train,
            test: test
        )
        #expect(first.testAccuracy == second.testAccuracy)
    }

    @Test func jsonHasTheDocumentedKeysAndNullsForMissingPeerRows() throws {
        let result = BenchmarkResult(
            threads: 1,
            model: "2nn",
            batch: 10,
            samplesPerSecond: 2000,
            testAccuracy: 0.9,
            epochSeconds: [3, 2, 2]
        )
        let peer = PeerResults(rows: [
            .init(threads: 1, model: "2NN", batch: 10, samplesPerSecond: 1000, testAccuracy: 0.8)
        ])
        let withPeer = TrainingBenchmarkReport(
            results: [result],
            peer: peer,
            sgemmGflops: [1: 50, 2: 90.5],
            sgemmSize: 1024
        )
        #expect(
            JSONOutput.line(withPeer)
                == #"{"rows":[{"batch":10,"epoch_seconds":[3,2,2],"model":"2nn","peer_samples_per_second":1000,"#
                + #""peer_test_accuracy":0.8,"ratio":2,"samples_per_second":2000,"test_accuracy":0.9,"threads":1}],"#
                + #""sgemm_gflops":{"1":50,"2":90.5}}"#
        )
        let alone = TrainingBenchmarkReport(results: [result], peer: nil, sgemmGflops: [:], sgemmSize: nil)
        #expect(
            JSONOutput.line(alone).contains(#""peer_samples_per_second":null,"peer_test_accuracy":null,"ratio":null"#)
        )
        #expect(JSONOutput.line(alone).hasSuffix(#""sgemm_gflops":{}}"#))
    }

    @Test func fewerThanTwoEpochsAndUnknownModelsAreRefused() throws {
        let train = try TestData.load("mnist5k-train.csv").subset(Array(stride(from: 0, to: 4000, by: 80)))
        #expect {
            try TrainingBenchmark.measure(
                model: "2nn",
                batch: 10,
                threads: ComputeThreads.count,
                epochs: 1,
                training: train,
                test: train
            )
        } throws: { error in
            (error as? CoreError)?.code == .invalidArgument
        }
        #expect {
            try TrainingBenchmark.measure(
                model: "resnet",
                batch: 10,
                threads: ComputeThreads.count,
                epochs: 2,
                training: train,
                test: train
            )
        } throws: { error in
            guard let error = error as? CoreError else { return false }
            return error.code == .invalidArgument && error.message.contains("unknown model 'resnet'")
        }
        let options = TrainingBenchmark.Options(epochs: 1)
        #expect(throws: CoreError.self) { try TrainingBenchmark(options: options).validate() }
    }

    @Test func matrixMultiplyCountsTwoNCubedOperations() throws {
        let benchmark = MatrixMultiplyBenchmark(size: 32, runs: 2)
        #expect(benchmark.operations == 2 * 32 * 32 * 32)
        #expect(try benchmark.gigaflopsPerSecond() > 0)
    }
}
