import FlockCore
import FlockEdge
import FlockServer
import FlockSimulation
import FlockTestSupport
import Testing

/// Federated averaging of many edges in one process, on the real mnist5k data.
@Suite struct SimulationTests {
    static func options(rounds: Int, partition: PartitionScheme = .iid, threads: Int = 2, strategy: AggregationStrategy = .fedAvg) -> Simulation.Options {
        Simulation.Options(
            trainPath: TestData.path("mnist5k-train.csv"), evalPath: TestData.path("mnist5k-test.csv"), clients: 20,
            partition: partition, fraction: 0.5, rounds: rounds, model: "2nn", strategy: strategy, seed: 0, threads: threads)
    }

    @Test func fedAvgLearnsAndAccountsForEveryRound() throws {
        var reports = [Simulation.RoundReport]()
        let summary = try Simulation(options: Self.options(rounds: 5)).run { reports.append($0) }
        #expect(reports.map(\.round) == [1, 2, 3, 4, 5])
        #expect(reports.allSatisfy { $0.participants == 10 })
        #expect(reports.allSatisfy { $0.uploadBytes == 10 * 199_210 * 4 && $0.downloadBytes == 10 * 199_210 * 4 })
        // iid FedAvg after 5 rounds of 1 local epoch is well past chance and improving.
        #expect(summary.accuracy > 0.80, "accuracy \(summary.accuracy)")
        #expect(reports.last!.accuracy > reports.first!.accuracy)
    }

    @Test func resultDoesNotDependOnTheThreadCount() throws {
        let one = try Simulation(options: Self.options(rounds: 2, partition: .shards, threads: 1)).run()
        let two = try Simulation(options: Self.options(rounds: 2, partition: .shards, threads: 2)).run()
        // Edges train single-threaded and are aggregated in edge order, so the global weights are identical;
        // only the evaluation is split over threads (other row counts per product), which moves float rounding.
        #expect(one.accuracy == two.accuracy)
        #expect(abs(one.loss - two.loss) < 1e-6)
    }

    @Test func roundsOfMoreGroupsThanAWorkerHoldsAddEveryUpdateOnce() throws {
        // 200 edges a round are 25 groups of 8: more than a worker's 8 group-sum slots, so workers add full
        // slots to their own sums mid-round (one thread three times, two threads at least once between them).
        var options = Self.options(rounds: 2, threads: 1)
        options.clients = 400
        var reports = [Simulation.RoundReport]()
        let one = try Simulation(options: options).run { reports.append($0) }
        #expect(reports.allSatisfy { $0.participants == 200 })
        options.threads = 2
        reports = []
        let two = try Simulation(options: options).run { reports.append($0) }
        #expect(reports.allSatisfy { $0.participants == 200 })
        // Other flush points, the same exact sum.
        #expect(one.accuracy == two.accuracy)
        #expect(abs(one.loss - two.loss) < 1e-6)
        // Edges of 10 rows take one step a round: slow, but learning.
        #expect(reports[1].accuracy > reports[0].accuracy && reports[1].loss < reports[0].loss, "accuracy \(reports.map(\.accuracy))")
    }

    @Test func fedProxAndAdaptiveServersRun() throws {
        for strategy: AggregationStrategy in [.fedProx(mu: 0.01), try AggregationStrategy(parsing: "fedadam:0.01")] {
            let summary = try Simulation(options: Self.options(rounds: 3, strategy: strategy)).run()
            #expect(summary.accuracy > 0.5, "\(strategy): \(summary.accuracy)")
        }
    }

    @Test func badOptionsAreRefused() {
        var o = Self.options(rounds: 1)
        o.clients = 5000  // more edges than rows
        #expect(throws: CoreError.self) { try Simulation(options: o).run() }
        o = Self.options(rounds: 0)
        #expect(throws: CoreError.self) { try Simulation(options: o).run() }
    }
}
